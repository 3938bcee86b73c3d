"""`credo audit purge --before DATE`: the one path that deletes decision records.

It deletes a prefix of the chain (every record before the first one stamped on or after DATE), never a record
younger than the retention floor (25 months by default), and only through the purge gate the triggers honour:
the gate is opened and closed inside the purge's own transaction, which also moves the chain's base to the last
purged record and appends a governance event saying what went. After the commit it writes a checkpoint carrying
the new base, from which `verify` anchors the remaining chain.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from audit import checkpoints, store
from audit.chain import utc_text
from audit.config import settings
from audit.db import write_session
from audit.governance import record


class PurgeRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PurgeResult:
    before: dt.date
    purged: int
    through_seq: int  # the new base: the last purged record
    base_hash: str
    checkpoint: dict[str, Any] | None
    checkpoint_error: str | None = None


def months_before(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def retention_floor(today: dt.date | None = None) -> dt.date:
    """The latest `--before` a purge accepts: records stamped on or after it are younger than the floor."""
    return months_before(today or dt.datetime.now(dt.UTC).date(), settings().retention_months)


def purge(before: dt.date, actor: str, *, today: dt.date | None = None) -> PurgeResult:
    floor = retention_floor(today)
    if before > floor:
        raise PurgeRefused(
            "retention-floor",
            f"records are kept for {settings().retention_months} months: "
            f"--before may be {floor.isoformat()} at the latest",
        )
    cutoff = utc_text(dt.datetime.combine(before, dt.time()))
    with write_session():
        cursor = store.write_cursor()
        cursor.execute(store.adapt("SELECT seq, hash, base_seq FROM audit_head WHERE id = 1" + store.for_update()))
        head_seq, head_hash, base_seq = cursor.fetchone()
        cursor.execute(store.adapt("SELECT MIN(seq) FROM decision_record WHERE at >= ?"), (cutoff,))
        first_kept = cursor.fetchone()[0]
        # Everything before the first record stamped on or after the cutoff: a prefix, so the rest stays a chain.
        through = int(head_seq) if first_kept is None else int(first_kept) - 1
        if through <= int(base_seq):
            return PurgeResult(before, 0, int(base_seq), "", None)
        if through == int(head_seq):
            through_hash = str(head_hash)
        else:
            cursor.execute(store.adapt("SELECT hash FROM decision_record WHERE seq = ?"), (through,))
            through_hash = str(cursor.fetchone()[0])
        cursor.execute("UPDATE audit_purge_gate SET open = 1 WHERE id = 1")
        cursor.execute(store.adapt("DELETE FROM decision_record WHERE seq <= ?"), (through,))
        purged = int(cursor.rowcount)
        cursor.execute("UPDATE audit_purge_gate SET open = 0 WHERE id = 1")
        cursor.execute(
            store.adapt("UPDATE audit_head SET base_seq = ?, base_hash = ? WHERE id = 1"), (through, through_hash)
        )
        record(
            actor,
            "audit-purged",
            "decision_record",
            {
                "before": before.isoformat(),
                "through_seq": through,
                "base_hash": through_hash,
                "purged": purged,
                "retention_months": settings().retention_months,
            },
        )
    try:
        line = checkpoints.write("purge")
    except checkpoints.CheckpointError as exc:
        # The purge is committed; without its checkpoint `verify` cannot anchor the chain until one is written.
        return PurgeResult(before, purged, through, through_hash, None, str(exc))
    return PurgeResult(before, purged, through, through_hash, line)


__all__ = ["PurgeRefused", "PurgeResult", "months_before", "purge", "retention_floor"]
