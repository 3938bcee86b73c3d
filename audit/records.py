"""Appending decision records to the hash chain, and reading them back.

An append locks the head row (`audit_head`, id 1) for its transaction: `SELECT ... FOR UPDATE` on PostgreSQL,
and on SQLite the BEGIN IMMEDIATE of `write_session()` already excludes every other writer, in any process. Under
that lock it numbers the record (head seq + 1), stamps its time and id, links it to the head hash, inserts it and
moves the head, so two writers can never both extend the same head: the chain cannot fork. Whatever fails on the
way (a locked or read-only database, a full disk, a broken connection, the commit itself) rolls the whole
transaction back and raises AuditUnavailable: the caller gets no decision and no partial record remains.

Every N appends a checkpoint goes outside the database (audit.checkpoints), after the commit it describes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pony import orm

from audit import store
from audit.chain import COLUMNS, SELECT_LIST, canonical, new_decision_id, record_hash, row_dict, utc_text
from audit.config import settings
from audit.crypto import seal
from audit.db import write_session
from audit.errors import AuditUnavailable
from audit.masking import mask
from engine.policy import CompiledPolicy

log = logging.getLogger(__name__)

INSERT = f"INSERT INTO decision_record ({SELECT_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)})"


@dataclass(frozen=True)
class Draft:
    """A record before it joins the chain: everything but seq, time, id, prev_hash and hash."""

    caller_kind: str
    caller_id: str
    idempotency_key: str | None
    request_sha256: str | None
    application_id: str | None
    policy: str
    policy_version: int | None
    policy_digest: str
    library: str  # canonical JSON: [[name, N, digest], ...] of every document of the snapshot decided under
    engine: str
    as_of: str
    input: str  # canonical JSON, sensitive values masked
    outcome: str
    tier: str | None
    score: float | None
    pd: float | None
    limit_amount: float | None
    rate: float | None
    decision: str  # canonical JSON of the decision (section 7), sensitive values masked
    latency_us: int
    masked: str  # canonical JSON list of masked paths
    sealed: str | None
    key_id: str | None
    at: str | None = None  # set only by bulk loads and tests; an append stamps the time under the lock
    decision_id: str | None = None


@dataclass(frozen=True)
class Appended:
    seq: int
    decision_id: str
    at: str
    hash: str
    existing: bool = False  # the idempotency key was already recorded: this is that earlier record


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@functools.lru_cache(maxsize=64)
def _library_text(library: tuple[tuple[str, int, str], ...]) -> str:
    # The same active snapshot names the same versions in every record it decides: encode it once.
    return canonical([list(v) for v in library])


def draft_for(
    unit: CompiledPolicy,
    case: Any,
    decision: Mapping[str, Any],
    *,
    caller_kind: str,
    caller_id: str,
    library: Sequence[tuple[str, int, str]],
    backend: str,
    latency_us: int,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    application_id: str | None = None,
) -> Draft:
    """The record of one decision: masked input and decision, the originals sealed."""
    masking = mask(unit, case, decision)
    sealed = key_id = None
    if masking.originals:
        sealed, key_id = seal(canonical(masking.originals))
    policy = decision.get("policy") or {}
    return Draft(
        caller_kind=caller_kind,
        caller_id=caller_id,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        application_id=application_id,
        policy=str(policy.get("name") or unit.name),
        policy_version=policy.get("version"),
        policy_digest=str(policy.get("digest") or unit.digest),
        library=_library_text(tuple(map(tuple, library))),
        engine=f"{decision.get('engine')} {backend}",
        as_of=str(decision["as_of"]),
        input=canonical(masking.input),
        outcome=str(decision["outcome"]),
        tier=decision.get("tier"),
        score=_float(decision.get("score")),
        pd=_float(decision.get("pd")),
        limit_amount=_float(decision.get("limit")),
        rate=_float(decision.get("rate")),
        decision=masking.decision_text if masking.decision_text is not None else canonical(masking.decision),
        latency_us=int(latency_us),
        masked=canonical(masking.paths),
        sealed=sealed,
        key_id=key_id,
    )


def _head_for_update(cursor: Any) -> tuple[int, str]:
    if store.dialect() == "postgresql":
        # Wait for the head at most this long, then fail closed (SQLite's equivalent is its busy timeout).
        cursor.execute(f"SET LOCAL lock_timeout = '{settings().lock_timeout_ms}ms'")
    cursor.execute(store.adapt("SELECT seq, hash FROM audit_head WHERE id = 1" + store.for_update()))
    row = cursor.fetchone()
    if row is None:  # the migration inserts it; a missing head means a damaged database
        raise RuntimeError("audit_head row 1 is missing")
    return int(row[0]), str(row[1])


def _existing(cursor: Any, draft: Draft) -> Appended | None:
    cursor.execute(
        store.adapt(
            "SELECT seq, decision_id, at, hash FROM decision_record "
            "WHERE caller_kind = ? AND caller_id = ? AND idempotency_key = ?"
        ),
        (draft.caller_kind, draft.caller_id, draft.idempotency_key),
    )
    row = cursor.fetchone()
    return None if row is None else Appended(int(row[0]), str(row[1]), str(row[2]), str(row[3]), existing=True)


def _append_locked(drafts: Sequence[Draft]) -> list[Appended]:
    cursor = store.write_cursor()
    seq, prev = _head_for_update(cursor)
    out: list[Appended] = []
    rows = []
    keyed: dict[tuple[str, str, str], Appended] = {}
    for draft in drafts:
        if draft.idempotency_key is not None:
            # Checked under the head lock, so two requests with one key cannot both be recorded; a group may
            # hold both, and then the second is answered with the first.
            key = (draft.caller_kind, draft.caller_id, draft.idempotency_key)
            found = keyed.get(key) or _existing(cursor, draft)
            if found is not None:
                out.append(dataclasses.replace(found, existing=True))
                continue
        seq += 1
        values = dict(draft.__dict__)
        values["seq"] = seq
        values["at"] = draft.at or utc_text()
        values["decision_id"] = draft.decision_id or new_decision_id()
        values["prev_hash"] = prev
        prev = values["hash"] = record_hash(values)
        rows.append(tuple(values[c] for c in COLUMNS))
        appended = Appended(seq, values["decision_id"], values["at"], prev)
        out.append(appended)
        if draft.idempotency_key is not None:
            keyed[key] = appended
    if rows:
        if store.dialect() == "postgresql" and len(rows) > 1:
            # psycopg2's executemany is one round trip per row; a bulk append sends pages of 500 instead.
            from psycopg2.extras import execute_values

            execute_values(cursor, f"INSERT INTO decision_record ({SELECT_LIST}) VALUES %s", rows, page_size=500)
        else:
            cursor.executemany(store.adapt(INSERT), rows)
        cursor.execute(store.adapt("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (seq, prev))
    return out


def append_many(drafts: Sequence[Draft], *, checkpoint: bool = True) -> list[Appended]:
    """Append records in one transaction, in order; all or none. Raises AuditUnavailable on any failure.

    A draft whose idempotency key is already recorded (or earlier in `drafts`) is not appended again: its place
    in the answer is that earlier record, marked `existing`. Inside a caller's db_session the records join the
    caller's transaction, and commit (or not) with it.
    """
    owned = orm.core.local.db_session is None
    try:
        with write_session():
            appended = _append_locked(drafts)
    except AuditUnavailable:
        raise
    except Exception as exc:
        # Any failure here means the record is not durable: fail closed. Only the type is shown; a driver's
        # text can quote SQL and values.
        log.error("decision record not written: %s", type(exc).__name__)
        raise AuditUnavailable(f"the decision record could not be written ({type(exc).__name__})") from exc
    new = [a.seq for a in appended if not a.existing]
    if owned and checkpoint and new:
        from audit.checkpoints import write_due

        write_due(min(new), max(new))
    return appended


@dataclass
class _Waiting:
    draft: Draft
    woken: threading.Event = dataclasses.field(default_factory=threading.Event)  # settled, or made the writer
    appended: Appended | None = None
    failure: AuditUnavailable | None = None

    @property
    def settled(self) -> bool:
        return self.appended is not None or self.failure is not None


class GroupCommit:
    """Appends from the threads of one process, committed in groups: one transaction (one fsync) per group.

    The first thread to arrive while no group is being written becomes the writer: it takes every draft waiting
    (its own included), appends them in one transaction and, once it has committed, wakes exactly the threads of
    that group, and hands the writer's turn to the oldest thread that queued meanwhile. So no thread returns before
    its own record is durable, a lone request is written at once (no timer, no added latency), under load one
    commit serves many records, and no thread is woken only to wait again. A failed group fails every request in
    it: none of them has a record, so none gets a decision.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._writing = False

    def append(self, draft: Draft) -> Appended:
        mine = _Waiting(draft)
        with self._lock:
            self._queue.append(mine)
            writer = not self._writing
            self._writing = True
        if not writer:
            mine.woken.wait()
        if not mine.settled:  # the writer's turn is ours: write everything queued, our own draft included
            with self._lock:
                group, self._queue = self._queue, []
            try:
                self._write(group)
            finally:
                with self._lock:
                    if self._queue:
                        self._queue[0].woken.set()  # the next writer; _writing stays True for it
                    else:
                        self._writing = False
                for waiting in group:
                    if waiting is not mine:
                        waiting.woken.set()
        if mine.failure is not None:
            # A fresh exception per thread: one raised object shared by threads would share its traceback.
            raise AuditUnavailable(mine.failure.message, mine.failure.code)
        assert mine.appended is not None
        return mine.appended

    @staticmethod
    def _write(group: list[_Waiting]) -> None:
        try:
            appended = append_many([w.draft for w in group])
        except AuditUnavailable as failure:
            for waiting in group:
                waiting.failure = failure
            return
        except BaseException:
            for waiting in group:
                waiting.failure = AuditUnavailable("the decision record could not be written")
            raise
        for waiting, result in zip(group, appended, strict=True):
            waiting.appended = result


_GROUPS = GroupCommit()


def append(draft: Draft) -> Appended:
    """Append one record; outside a db_session it joins the process's group commit (see GroupCommit)."""
    if orm.core.local.db_session is not None:
        return append_many([draft])[0]
    return _GROUPS.append(draft)


# --- reading ---------------------------------------------------------------------------------------------------


def load(decision_id: str) -> dict[str, Any] | None:
    with orm.db_session:
        row = store.query_one(f"SELECT {SELECT_LIST} FROM decision_record WHERE decision_id = ?", (decision_id,))
    return None if row is None else row_dict(row)


def find_idempotent(caller_kind: str, caller_id: str, key: str) -> dict[str, Any] | None:
    with orm.db_session:
        row = store.query_one(
            f"SELECT {SELECT_LIST} FROM decision_record "
            "WHERE caller_kind = ? AND caller_id = ? AND idempotency_key = ?",
            (caller_kind, caller_id, key),
        )
    return None if row is None else row_dict(row)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    base_seq: int
    base_hash: str
    chain_id: str


def read_head() -> Head:
    with orm.db_session:
        row = store.query_one("SELECT seq, hash, base_seq, base_hash, chain_id FROM audit_head WHERE id = 1")
    if row is None:
        raise RuntimeError("audit_head row 1 is missing")
    return Head(int(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]))


def stream(
    after: int = 0,
    until: int | None = None,
    *,
    where: str = "",
    params: Sequence[Any] = (),
    page: int = 1000,
    columns: str = SELECT_LIST,
) -> Iterator[tuple[Any, ...]]:
    """Rows in seq order, read in pages by seq (keyset paging): memory stays flat however long the chain.

    `where` is an extra SQL condition with `?` marks (the callers' own text, never user input).
    """
    last = after
    extra = f" AND ({where})" if where else ""
    bound = " AND seq <= ?" if until is not None else ""
    sql = f"SELECT {columns} FROM decision_record WHERE seq > ?{bound}{extra} ORDER BY seq LIMIT {int(page)}"
    while True:
        args: list[Any] = [last]
        if until is not None:
            args.append(until)
        args.extend(params)
        with orm.db_session:
            rows = store.query(sql, args)
        if not rows:
            return
        yield from rows
        if len(rows) < page:
            return
        last = int(rows[-1][0])


# --- the record as a document ------------------------------------------------------------------------------------


def originals(row: Mapping[str, Any]) -> list[list[Any]]:
    """The sealed originals of a record's masked spots (needs the audit key when there are any)."""
    if not row.get("sealed"):
        return []
    from audit.crypto import unseal

    return list(json.loads(unseal(str(row["sealed"]))))


def to_document(row: Mapping[str, Any], *, unmask: bool = False) -> dict[str, Any]:
    """A stored record as JSON: masked as stored, or with the sealed values put back (`unmask`, needs the key)."""
    doc: dict[str, Any] = {
        "decision_id": row["decision_id"],
        "seq": int(row["seq"]),
        "at": row["at"],
        "caller": {"kind": row["caller_kind"], "id": row["caller_id"]},
        "idempotency_key": row["idempotency_key"],
        "request_sha256": row["request_sha256"],
        "application_id": row["application_id"],
        "policy": {"name": row["policy"], "version": row["policy_version"], "digest": row["policy_digest"]},
        "library": json.loads(row["library"]),
        "engine": row["engine"],
        "as_of": row["as_of"],
        "input": json.loads(row["input"]),
        "decision": json.loads(row["decision"]),
        "latency_ms": int(row["latency_us"]) / 1000.0,
        "masked": json.loads(row["masked"]),
        "unmasked": False,
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }
    if unmask and doc["masked"]:
        from audit.masking import unmask as put_back

        put_back(doc, originals(row))
        doc["unmasked"] = True
    return doc


__all__ = [
    "Appended",
    "Draft",
    "GroupCommit",
    "Head",
    "append",
    "append_many",
    "draft_for",
    "find_idempotent",
    "load",
    "originals",
    "read_head",
    "stream",
    "to_document",
]
