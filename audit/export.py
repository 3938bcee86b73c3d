"""Streaming decision records out as CSV or JSON Lines, with flat memory however many there are.

The date range is turned into a seq range once (an indexed MIN/MAX over `at`); records are then read in pages by
seq, each page written and dropped before the next is read. Sensitive values stay masked unless the caller asks
for them and holds the key (the web layer decides who may, and logs every export as a governance event).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from pony import orm

from audit import store
from audit.chain import COLUMNS, utc_text
from audit.records import stream, to_document

CSV_COLUMNS = (
    "seq",
    "decision_id",
    "at",
    "caller_kind",
    "caller_id",
    "application_id",
    "idempotency_key",
    "request_sha256",
    "policy",
    "policy_version",
    "policy_digest",
    "rulesets",
    "scorecard",
    "engine",
    "as_of",
    "outcome",
    "tier",
    "score",
    "pd",
    "limit",
    "rate",
    "reasons",
    "reason_texts",
    "fired",
    "latency_ms",
    "masked",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class ExportFilter:
    start: dt.date | None = None  # first day, inclusive (UTC)
    end: dt.date | None = None  # last day, inclusive (UTC)
    policy: str | None = None
    outcome: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts, params = [], []
        if self.start is not None:
            parts.append("at >= ?")
            params.append(utc_text(dt.datetime.combine(self.start, dt.time())))
        if self.end is not None:
            parts.append("at < ?")
            params.append(utc_text(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time())))
        if self.policy is not None:
            parts.append("policy = ?")
            params.append(self.policy)
        if self.outcome is not None:
            parts.append("outcome = ?")
            params.append(self.outcome)
        return " AND ".join(parts), params

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "policy": self.policy,
            "outcome": self.outcome,
        }


def _seq_range(filters: ExportFilter) -> tuple[int, int] | None:
    """The seq range the dates cover (seq and time grow together; the filter still checks `at` on each row)."""
    dates = ExportFilter(filters.start, filters.end)
    where, params = dates.sql()
    with orm.db_session:
        row = store.query_one(
            "SELECT MIN(seq), MAX(seq) FROM decision_record" + (f" WHERE {where}" if where else ""), params
        )
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def rows(filters: ExportFilter, page: int = 500) -> Iterable[dict[str, Any]]:
    bounds = _seq_range(filters)
    if bounds is None:
        return
    where, params = filters.sql()
    for values in stream(bounds[0] - 1, bounds[1], where=where, params=params, page=page):
        yield dict(zip(COLUMNS, values, strict=True))


def _csv_row(doc: dict[str, Any]) -> list[Any]:
    decision = doc["decision"]
    rulesets = " ".join(f"{r['name']}@{r['version']}" for r in decision.get("rulesets") or [])
    card = decision.get("scorecard")
    return [
        doc["seq"],
        doc["decision_id"],
        doc["at"],
        doc["caller"]["kind"],
        doc["caller"]["id"],
        doc["application_id"] or "",
        doc["idempotency_key"] or "",
        doc["request_sha256"] or "",
        doc["policy"]["name"],
        "" if doc["policy"]["version"] is None else doc["policy"]["version"],
        doc["policy"]["digest"],
        rulesets,
        f"{card['name']}@{card['version']}" if card else "",
        doc["engine"],
        doc["as_of"],
        decision.get("outcome"),
        decision.get("tier") or "",
        _cell(decision.get("score")),
        _cell(decision.get("pd")),
        _cell(decision.get("limit")),
        _cell(decision.get("rate")),
        " ".join(r["code"] for r in decision.get("reasons") or []),
        " | ".join(r.get("text") or "" for r in decision.get("reasons") or []),
        " ".join(f["rule"] for f in decision.get("fired") or []),
        doc["latency_ms"],
        " ".join(doc["masked"]),
        doc["prev_hash"],
        doc["hash"],
    ]


def _cell(value: Any) -> Any:
    return "" if value is None else value


def export(out: TextIO, filters: ExportFilter, fmt: str = "jsonl", *, unmask: bool = False) -> int:
    """Write the matching records to `out`; returns how many."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}")
    count = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    for row in rows(filters):
        doc = to_document(row, unmask=unmask)
        if writer is not None:
            writer.writerow(_csv_row(doc))
        else:
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    out.flush()
    return count


__all__ = ["CSV_COLUMNS", "ExportFilter", "export", "rows"]
