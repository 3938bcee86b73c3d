"""Purge (the one deleting path, above the retention floor, anchored by its checkpoint) and streaming export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from pony import orm

from audit import checkpoints as cps
from audit import store
from audit.chain import utc_text
from audit.governance import GovernanceEvent
from audit.purge import months_before, retention_floor
from audit.records import read_head
from audit.verify import verify
from tests.audit.audit_helpers import all_rows, build_chain, count_rows, tampering
from web.services.decisions import export, purge, write_checkpoint
from web.services.errors import Refused

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_months_before_keeps_the_day_or_the_month_end() -> None:
    assert months_before(dt.date(2026, 3, 31), 25) == dt.date(2024, 2, 29)
    assert months_before(dt.date(2026, 11, 29), 25) == dt.date(2024, 10, 29)


def test_purge_respects_the_floor_logs_checkpoints_and_verify_anchors(
    people: dict, audit_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_start = NOW - dt.timedelta(days=31 * 30)  # about 30 months ago
    build_chain(3000, seed=1, start=old_start)
    build_chain(500, seed=2)  # today's
    write_checkpoint()
    assert verify().ok

    with pytest.raises(Refused) as too_young:
        purge(retention_floor() + dt.timedelta(days=1), "root")
    assert too_young.value.code == "retention-floor"
    with pytest.raises(Refused) as not_admin:
        purge(dt.date(2000, 1, 1), "alice")
    assert not_admin.value.code == "missing-role"
    assert count_rows() == 3500

    result = purge(retention_floor(), "root")
    assert (result.purged, result.through_seq) == (3000, 3000)
    assert result.checkpoint is not None and result.checkpoint["kind"] == "purge"
    assert (result.checkpoint["base_seq"], result.checkpoint["base_hash"]) == (3000, result.base_hash)
    assert count_rows() == 500 and read_head().base_seq == 3000
    with orm.db_session:
        event = GovernanceEvent.get(action="audit-purged")
        assert event is not None and event.actor == "root"
        assert json.loads(event.detail)["through_seq"] == 3000
    report = verify()
    assert report.ok, report.to_dict()
    assert (report.decisions.first_seq, report.decisions.last_seq) == (3001, 3500)
    assert purge(retention_floor(), "root").purged == 0  # nothing older is left

    # The gate is shut again: a plain delete is still refused.
    with pytest.raises(Exception, match="insert-only"), orm.db_session:
        store.write_cursor().execute("DELETE FROM decision_record")

    # Someone removes more records from the start and moves the base as a purge would, without a checkpoint:
    # the checkpoint of the real purge says the chain starts after 3000, so 3001 is the first bad seq.
    hash_3100 = next(r["hash"] for r in all_rows() if r["seq"] == 3100)
    with tampering() as cursor:
        cursor.execute(store.adapt("DELETE FROM decision_record WHERE seq <= ?"), (3100,))
        cursor.execute(store.adapt("UPDATE audit_head SET base_seq = ?, base_hash = ? WHERE id = 1"), (3100, hash_3100))
        moved = verify().decisions
    assert moved.first_bad == 3001 and moved.findings[0].code == "unanchored-start"

    # With the periodic checkpoints of the purged range still in the file, nothing of them is misread.
    points = cps.read(read_head().chain_id)
    assert points is not None and {line["kind"] for line in points.lines} == {"periodic", "manual", "purge"}


def test_verify_without_the_purge_checkpoint_cannot_anchor_the_chain(people: dict, audit_env: Path) -> None:
    build_chain(1200, seed=1, start=NOW - dt.timedelta(days=31 * 30))
    build_chain(10, seed=2)
    purge(retention_floor(), "root")
    lines = audit_env.read_text().splitlines()
    audit_env.write_text("\n".join(line for line in lines if '"kind":"purge"' not in line) + "\n")
    report = verify()
    assert report.decisions.first_bad == 1  # the last checkpoint left vouches for records 1..1000, all gone
    assert report.decisions.findings[0].code == "unanchored-start"


def _export(fmt: str, **filters: Any) -> str:
    out = io.StringIO()
    export(out, "root", fmt=fmt, **filters)
    return out.getvalue()


def test_export_streams_csv_and_jsonl_with_filters_and_is_logged(people: dict) -> None:
    start = dt.datetime(2026, 1, 1)
    build_chain(600, seed=3, start=start, batch=200)  # one record a minute from 2026-01-01 00:00
    rows = all_rows()

    everything = list(csv.DictReader(io.StringIO(_export("csv"))))
    assert [int(r["seq"]) for r in everything] == [r["seq"] for r in rows]
    assert everything[0]["decision_id"] == rows[0]["decision_id"]

    day_one = dt.date(2026, 1, 1)
    expected = [
        r
        for r in rows
        if r["policy"] == "corporate-term-loan"
        and r["outcome"] == "refer"
        and r["at"] < utc_text(dt.datetime(2026, 1, 1, 23, 59, 59, 999999))
    ]
    chosen = _export("jsonl", start=day_one, end=day_one, policy="corporate-term-loan", outcome="refer")
    lines = [json.loads(line) for line in chosen.splitlines()]
    assert [line["seq"] for line in lines] == [r["seq"] for r in expected] and lines
    assert all(line["decision"]["outcome"] == "refer" for line in lines)
    assert _export("csv", start=dt.date(2027, 1, 1)).splitlines()[1:] == []

    with orm.db_session:
        events = orm.select(e for e in GovernanceEvent if e.action == "audit-exported")[:]
        assert len(events) == 3 and all(e.actor == "root" for e in events)
    with pytest.raises(Refused) as refused:
        export(io.StringIO(), "alice")
    assert refused.value.code == "missing-role"


class _Sink(io.TextIOBase):
    """Counts what is written and keeps nothing: the export's own memory is what is measured."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def _peak_export_memory() -> tuple[int, int]:
    sink = _Sink()
    tracemalloc.start()
    try:
        export(sink, "root", fmt="jsonl")
        return tracemalloc.get_traced_memory()[1], sink.lines
    finally:
        tracemalloc.stop()


def test_export_memory_stays_flat_as_the_log_grows(people: dict) -> None:
    build_chain(1_000, seed=4)
    small_peak, small_lines = _peak_export_memory()
    build_chain(9_000, seed=5, batch=3000)
    large_peak, large_lines = _peak_export_memory()
    assert (small_lines, large_lines) == (1_000, 10_000)
    # Ten times the records, about the same memory: pages are read, written and dropped.
    assert large_peak < 1.5 * small_peak + 256 * 1024, (small_peak, large_peak)
    assert large_peak < 8 * 1024 * 1024
