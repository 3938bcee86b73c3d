"""Finding decisions and governance events for auditors: filtered, paged on the server, exported as a whole.

The decision log is read with plain SQL (like audit.export): filters become a WHERE clause with bound values,
pages are keyset pages on `seq` (newest first), so the hundredth page costs what the first does. A rule that
fired is found in the stored decision's canonical JSON (`"rule":"ID"`, no spaces, exactly as written).

Exports are governance events (who, which filters, which format), written before the first record leaves.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from pony import orm

from audit import store
from audit.chain import COLUMNS, SELECT_LIST, utc_text
from audit.db import write_session
from audit.export import CSV_COLUMNS
from audit.export import _csv_row as csv_row  # one CSV shape for every export of the log
from audit.governance import record
from audit.records import to_document
from web.models import Application, Customer
from web.services.users import require_role

READERS = ("auditor", "admin")
LIST_COLUMNS = ("seq", "decision_id", "at", "caller_kind", "caller_id", "application_id", "policy", "policy_version",
                "outcome", "tier", "score", "limit_amount", "rate", "engine", "latency_us")


@dataclass(frozen=True)
class DecisionFilter:
    start: dt.date | None = None
    end: dt.date | None = None
    outcome: str | None = None
    policy: str | None = None
    policy_version: int | None = None
    rule: str | None = None
    tier: str | None = None
    customer: str | None = None
    caller: str | None = None
    decision_id: str | None = None
    uses: tuple[str, int] | None = None  # any document version of the snapshot decided under (NAME@N)

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.start is not None:
            parts.append("at >= ?")
            params.append(utc_text(dt.datetime.combine(self.start, dt.time())))
        if self.end is not None:
            parts.append("at < ?")
            params.append(utc_text(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time())))
        for column in ("outcome", "policy", "tier", "policy_version", "decision_id"):
            value = getattr(self, column)
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if self.rule is not None:
            parts.append("decision LIKE ?")
            params.append('%"rule":' + json.dumps(self.rule, ensure_ascii=False) + "%")
        if self.uses is not None:
            # The library column is canonical JSON: [["name",N,"sha256:..."],...] with no spaces.
            parts.append("library LIKE ?")
            params.append("%[" + json.dumps(self.uses[0]) + f",{int(self.uses[1])}," + "%")
        if self.caller is not None:
            # A caller as the list shows it ("api_key: client-demo/credo_abc"), its id, the name before the key's
            # prefix ("client-demo"), or a kind alone ("cli").
            parts.append(
                "(caller_id = ? OR caller_id LIKE ? OR caller_kind = ? OR caller_kind || ': ' || caller_id = ?)"
            )
            params += [self.caller, self.caller + "/%", self.caller, self.caller]
        if self.customer is not None:
            ids = _applications_of(self.customer)
            marks = ", ".join("?" for _ in ids)
            parts.append(f"(application_id = ?{' OR application_id IN (' + marks + ')' if ids else ''})")
            params += [self.customer, *ids]
        return " AND ".join(parts), params

    def to_dict(self) -> dict[str, Any]:
        out = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items() if v is not None}
        if self.uses is not None:
            out["uses"] = f"{self.uses[0]}@{self.uses[1]}"
        return out


def _applications_of(code: str) -> list[str]:
    """A customer's stored applications, by the id a decision request carries as application_id."""
    with orm.db_session:
        customer = Customer.get(code=code)
        if customer is None:
            return []
        return [str(a.id) for a in orm.select(a for a in Application if a.customer == customer)][:500]


def search(filters: DecisionFilter, *, before: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """A page of matching records, newest first (`before`: the seq the previous page ended at), and the total."""
    where, params = filters.sql()
    clause = f" WHERE {where}" if where else ""
    page_where = where + (" AND " if where else "") + "seq < ?" if before is not None else where
    page_params = [*params, before] if before is not None else params
    with orm.db_session:
        total = store.query_one(f"SELECT COUNT(*) FROM decision_record{clause}", params)
        rows = store.query(
            f"SELECT {', '.join(LIST_COLUMNS)} FROM decision_record"
            + (f" WHERE {page_where}" if page_where else "")
            + f" ORDER BY seq DESC LIMIT {int(limit)}",
            page_params,
        )
    return [dict(zip(LIST_COLUMNS, r, strict=True)) for r in rows], int(total[0]) if total else 0


def _matching(filters: DecisionFilter) -> Iterator[dict[str, Any]]:
    where, params = filters.sql()
    last = 0
    while True:
        with orm.db_session:
            rows = store.query(
                f"SELECT {SELECT_LIST} FROM decision_record WHERE seq > ?"
                + (f" AND {where}" if where else "")
                + " ORDER BY seq LIMIT 500",
                [last, *params],
            )
        for row in rows:
            yield dict(zip(COLUMNS, row, strict=True))
        if len(rows) < 500:
            return
        last = int(rows[-1][0])


def export(out: TextIO, actor: str, filters: DecisionFilter, fmt: str) -> int:
    """The matching records as CSV or JSON Lines (masked as stored); a governance event first."""
    require_role(actor, *READERS, doing="exporting decision records")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(fmt)
    with write_session():
        record(actor, "audit-exported", "decision_record", {**filters.to_dict(), "format": fmt, "via": "console"})
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    count = 0
    for row in _matching(filters):
        doc = to_document(row)
        if writer is not None:
            writer.writerow(csv_row(doc))
        else:
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


# --- the governance log -----------------------------------------------------------------------------------------

EVENT_COLUMNS = ("seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash")


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    action: str | None = None
    subject: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts, params = [], []
        for column in ("actor", "action"):
            value = getattr(self, column)
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if self.subject is not None:
            parts.append("subject LIKE ?")
            params.append(self.subject.replace("%", "").replace("_", r"_") + "%")
        return " AND ".join(parts), params


def events(filters: EventFilter, *, before: int | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    where, params = filters.sql()
    page_where = where + (" AND " if where else "") + "seq < ?" if before is not None else where
    page_params = [*params, before] if before is not None else params
    with orm.db_session:
        total = store.query_one("SELECT COUNT(*) FROM governance_event" + (f" WHERE {where}" if where else ""),
                                params)
        rows = store.query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM governance_event"
            + (f" WHERE {page_where}" if page_where else "")
            + f" ORDER BY seq DESC LIMIT {int(limit)}",
            page_params,
        )
    out = []
    for row in rows:
        item = dict(zip(EVENT_COLUMNS, row, strict=True))
        item["detail"] = json.loads(item["detail"]) if item["detail"] else {}
        out.append(item)
    return out, int(total[0]) if total else 0


def export_events(out: TextIO, actor: str, filters: EventFilter, fmt: str) -> int:
    require_role(actor, *READERS, doing="exporting the governance log")
    with write_session():
        record(actor, "governance-exported", "governance_event",
               {k: v for k, v in asdict(filters).items() if v is not None} | {"format": fmt})
    where, params = filters.sql()
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(EVENT_COLUMNS)
    last, count = 0, 0
    while True:
        with orm.db_session:
            rows = store.query(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM governance_event WHERE seq > ?"
                + (f" AND {where}" if where else "")
                + " ORDER BY seq LIMIT 1000",
                [last, *params],
            )
        for row in rows:
            item = dict(zip(EVENT_COLUMNS, row, strict=True))
            item["at"] = item["at"].isoformat() if isinstance(item["at"], dt.datetime) else str(item["at"])
            if writer is not None:
                writer.writerow([item[c] for c in EVENT_COLUMNS])
            else:
                item["detail"] = json.loads(item["detail"])
                out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        if len(rows) < 1000:
            return count
        last = int(rows[-1][0])


def override_history(decision_id: str) -> list[dict[str, Any]]:
    """Overrides recorded for a decision, and the governance events of its review (requests, confirmations)."""
    with orm.db_session:
        rows = store.query(
            f"SELECT {SELECT_LIST} FROM decision_record WHERE engine = 'override' AND input LIKE ? ORDER BY seq",
            ('%"override_of":' + json.dumps(decision_id) + "%",),
        )
        events_rows = store.query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM governance_event WHERE subject = ? ORDER BY seq",
            (f"decision:{decision_id}",),
        )
    history: list[dict[str, Any]] = []
    for row in rows:
        doc = to_document(dict(zip(COLUMNS, row, strict=True)))
        history.append({"kind": "override", "at": doc["at"], "decision_id": doc["decision_id"], **doc["input"]})
    for row in events_rows:
        item = dict(zip(EVENT_COLUMNS, row, strict=True))
        history.append({"kind": item["action"], "at": item["at"], "by": item["actor"],
                        "detail": json.loads(item["detail"])})
    return sorted(history, key=lambda h: str(h["at"]))


__all__ = [
    "DecisionFilter",
    "EventFilter",
    "events",
    "export",
    "export_events",
    "override_history",
    "search",
]
