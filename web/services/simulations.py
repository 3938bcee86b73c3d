"""Simulation runs in the background: queued by the console, run by a worker process, stored for drill-down.

A run compares two sides over a portfolio: the baseline (the active versions when the run was asked for, or a
chosen set) and the candidate (the baseline with chosen stored versions, drafts included, in place of the
documents of the same name). Both are frozen at enqueue time as (name, N, digest) triples: versions are
immutable, so the worker rebuilds exactly what was asked for, and checks each digest.

The worker (`python -m web.services.simulations`) claims one queued run at a time, runs the engine's chunk
function block by block (engine.simulate: the vectorised back-end), stores every case's pair of decisions as it
goes and reports progress after each block, then stores the report (engine.report's JSON). Its heartbeat is in
the run row and in `console_worker`; a run whose heartbeat stops is queued again (`requeue_stale`), so runs
survive a restart of the web server or of the worker. The console starts a worker when runs are queued and no
live worker is heard (`ensure_worker`), so `credo serve` alone is enough.

Reads and writes are plain SQL over audit.store (the `?` style, adapted for PostgreSQL): these tables are
created by migrations/0004_console.py and read in pages, like the decision log.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pony import orm

from audit import store
from audit.db import REPO, write_session
from audit.governance import now, record
from engine.errors import CredoError
from web import incidents
from web.models import RuleVersion
from web.services.active import ACTIVE
from web.services.errors import Refused
from web.services.rules import parse_ref
from web.services.users import require_role

log = logging.getLogger("credo.simulations")

DEMO_BOOK = REPO / "examples" / "portfolio.csv"
UPLOADS = REPO / "instance" / "uploads"
RUNNERS = ("author", "approver", "admin")
CHUNK_ROWS = 250  # small blocks: progress moves visibly and each block's cases commit together
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 30.0  # a claim silent this long belongs to a dead worker
MAX_ATTEMPTS = 3
WORKER_IDLE_EXIT = 300.0  # a worker started by the console leaves after this long with nothing to do
CASE_COLUMNS = (
    "row_number",
    "segment",
    "bad",
    "rejected",
    "b_outcome",
    "c_outcome",
    "b_tier",
    "c_tier",
    "b_score",
    "c_score",
    "b_limit",
    "c_limit",
    "b_rate",
    "c_rate",
    "b_rules",
    "c_rules",
    "b_reasons",
    "c_reasons",
)
RUN_COLUMNS = (
    "id",
    "status",
    "requested_by",
    "requested_at",
    "policy",
    "as_of",
    "baseline",
    "candidate",
    "portfolio_name",
    "portfolio_path",
    "params",
    "subject",
    "subject_digest",
    "progress",
    "note",
    "attempts",
    "claimed_by",
    "heartbeat_at",
    "started_at",
    "finished_at",
    "error",
)
Triple = tuple[str, int, str]


def _ts(value: Any) -> dt.datetime | None:
    """TIMESTAMP as a datetime on both databases (sqlite3 hands back the text it stored)."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --- asking for a run ------------------------------------------------------------------------------------------


def active_triples() -> list[Triple]:
    return [(name, number, digest) for name, number, digest in ACTIVE.current().versions]


def _resolve(refs: Sequence[str]) -> list[Triple]:
    out = []
    with orm.db_session:
        for ref in refs:
            name, number = parse_ref(ref)
            row = RuleVersion.get(name=name, number=number)
            if row is None:
                raise Refused("unknown-version", f"no version {ref}", "not-found")
            out.append((row.name, row.number, row.digest))
    return out


def overlay(base: Sequence[Triple], replace: Sequence[Triple]) -> list[Triple]:
    """`base` with every document named in `replace` swapped for the chosen version."""
    names = {name for name, _, _ in replace}
    return sorted([t for t in base if t[0] not in names] + list(replace))


def policies_in(triples: Sequence[Triple]) -> list[str]:
    with orm.db_session:
        return sorted({name for name, number, _ in triples if _kind(name, number) == "policy"})


def _kind(name: str, number: int) -> str | None:
    row = RuleVersion.get(name=name, number=number)
    return row.kind if row else None


def _documents(triples: Sequence[Triple]) -> tuple[tuple[str, str], ...]:
    """(file, text) of each version, checked against its digest: what a worker compiles."""
    out = []
    with orm.db_session:
        for name, number, digest in triples:
            row = RuleVersion.get(name=name, number=number)
            if row is None:
                raise Refused("unknown-version", f"no version {name}@{number}", "not-found")
            if row.digest != digest:
                raise Refused("digest-mismatch", f"{name}@{number} no longer has digest {digest}")
            out.append((f"{name}@{number}", row.text))
    return tuple(out)


def _spec(label: str, policy: str, as_of: dt.date, triples: Sequence[Triple], source: str) -> Any:
    from engine.simulate import SideSpec  # imported late: numpy and the vector plan are heavy for a page view

    return SideSpec(label, policy, as_of, _documents(triples), source)


def describe(triples: Sequence[Triple], other: Sequence[Triple]) -> str:
    """A side in one line: the versions that differ from the other side (or 'active versions')."""
    differ = [f"{n}@{v}" for n, v, _ in triples if (n, v) not in {(a, b) for a, b, _ in other}]
    return ", ".join(differ) if differ else "the same versions as the other side"


def book_product(path: Path = DEMO_BOOK) -> str | None:
    """The most common application.product of a CSV book (None if it has no such column or cannot be read).

    The new-simulation form defaults to the policy of this product; read once per version of the file, since
    the demo book only changes with a release.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    return _book_product(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _book_product(path: str, mtime_ns: int, size: int) -> str | None:  # the stamp args key the cache
    counts: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                product = row.get("application.product") or ""
                if product:
                    counts[product] = counts.get(product, 0) + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return max(counts, key=lambda p: counts[p]) if counts else None


def store_upload(data: bytes, filename: str, folder: Path = UPLOADS) -> Path:
    """Keep an uploaded portfolio under its content hash: the worker reads it, maybe after a restart."""
    suffix = ".jsonl" if filename.lower().endswith((".jsonl", ".ndjson", ".json")) else ".csv"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:32] + suffix)
    if not path.exists():
        tmp = path.with_suffix(path.suffix + f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def enqueue(
    actor: str,
    *,
    policy: str,
    as_of: dt.date,
    candidate: Sequence[str],
    baseline: Sequence[str] = (),
    portfolio: Path = DEMO_BOOK,
    portfolio_name: str = "demo book",
    subject: str | None = None,
) -> int:
    """Queue a run; both sides are compiled here first, so a side that cannot run is refused at once.

    The same request by the same person while an identical run is still queued or running gets that run's id.
    """
    require_role(actor, *RUNNERS, doing="running a simulation")
    active = active_triples()
    base = overlay(active, _resolve(baseline)) if baseline else active
    cand = overlay(base, _resolve(candidate))
    if policy not in policies_in(cand) or policy not in policies_in(base):
        raise Refused("unknown-policy", f"'{policy}' is not a policy of both sides", "invalid")
    if not portfolio.is_file():
        raise Refused("no-portfolio", "the portfolio file is missing", "invalid")
    from engine.simulate import compile_side

    for label, triples in (("baseline", base), ("candidate", cand)):
        try:
            compile_side(_spec(label, policy, as_of, triples, label))
        except CredoError as error:
            raise Refused(
                "side-does-not-compile", f"the {label} does not compile for {policy}", "invalid", error.problems
            ) from None
    subject_digest = None
    if subject is not None:
        subject_digest = next((d for n, v, d in cand if f"{n}@{v}" == subject), None)
    stamp = now()
    params = {"candidate_refs": list(candidate), "baseline_refs": list(baseline), "chunk_rows": CHUNK_ROWS}
    with write_session():
        cursor = store.write_cursor()
        # The same request while its first run still waits or works (a double click, a resubmitted form) is
        # that run: a second would decide the whole book again for nothing.
        cursor.execute(
            store.adapt(
                "SELECT id FROM simulation_run WHERE status IN ('queued', 'running') AND requested_by = ?"
                " AND policy = ? AND as_of = ? AND baseline = ? AND candidate = ? AND portfolio_path = ?"
                " ORDER BY id LIMIT 1"
            ),
            (actor, policy, as_of, json.dumps(base), json.dumps(cand), str(portfolio)),
        )
        same = cursor.fetchone()
        if same is not None:
            return int(same[0])
        values = {
            "status": "queued",
            "requested_by": actor,
            "requested_at": stamp,
            "policy": policy,
            "as_of": as_of,
            "baseline": json.dumps(base),
            "candidate": json.dumps(cand),
            "portfolio_name": portfolio_name[:200],
            "portfolio_path": str(portfolio),
            "params": json.dumps(params),
            "subject": subject,
            "subject_digest": subject_digest,
            "progress": 0.0,
            "note": "waiting for a worker",
            "attempts": 0,
        }
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        returning = " RETURNING id" if store.dialect() == "postgresql" else ""
        cursor.execute(store.adapt(f"INSERT INTO simulation_run ({columns}) VALUES ({marks}){returning}"),
                       tuple(values.values()))
        run_id = int(cursor.fetchone()[0]) if returning else int(cursor.lastrowid)
        record(actor, "simulation-requested", f"simulation:{run_id}",
               {"policy": policy, "candidate": list(candidate), "subject": subject})
    return run_id


# --- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    id: int
    status: str
    requested_by: str
    requested_at: dt.datetime
    policy: str
    as_of: dt.date
    baseline: list[Triple]
    candidate: list[Triple]
    portfolio_name: str
    portfolio_path: str
    params: dict[str, Any]
    subject: str | None
    subject_digest: str | None
    progress: float
    note: str | None
    attempts: int
    claimed_by: str | None
    heartbeat_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    @property
    def candidate_changes(self) -> str:
        return describe(self.candidate, self.baseline)

    @property
    def baseline_changes(self) -> str:
        return describe(self.baseline, self.candidate)


def _run(row: Sequence[Any]) -> Run:
    data = dict(zip(RUN_COLUMNS, row, strict=True))
    return Run(
        id=int(data["id"]),
        status=str(data["status"]),
        requested_by=str(data["requested_by"]),
        requested_at=_ts(data["requested_at"]) or now(),
        policy=str(data["policy"]),
        as_of=_day(data["as_of"]),
        baseline=[tuple(t) for t in json.loads(data["baseline"])],  # type: ignore[misc]
        candidate=[tuple(t) for t in json.loads(data["candidate"])],  # type: ignore[misc]
        portfolio_name=str(data["portfolio_name"]),
        portfolio_path=str(data["portfolio_path"]),
        params=json.loads(data["params"]),
        subject=data["subject"],
        subject_digest=data["subject_digest"],
        progress=float(data["progress"]),
        note=data["note"],
        attempts=int(data["attempts"]),
        claimed_by=data["claimed_by"],
        heartbeat_at=_ts(data["heartbeat_at"]),
        started_at=_ts(data["started_at"]),
        finished_at=_ts(data["finished_at"]),
        error=data["error"],
    )


SELECT_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM simulation_run"


def get_run(run_id: int) -> Run:
    with orm.db_session:
        row = store.query_one(f"{SELECT_RUN} WHERE id = ?", (run_id,))
    if row is None:
        raise Refused("unknown-simulation", f"no simulation {run_id}", "not-found")
    return _run(row)


def get_report(run_id: int) -> dict[str, Any] | None:
    with orm.db_session:
        row = store.query_one("SELECT report FROM simulation_run WHERE id = ?", (run_id,))
    return json.loads(row[0]) if row and row[0] else None


def list_runs(subject: str | None = None, limit: int = 50) -> list[Run]:
    with orm.db_session:
        if subject is None:
            rows = store.query(f"{SELECT_RUN} ORDER BY id DESC LIMIT {int(limit)}")
        else:
            rows = store.query(f"{SELECT_RUN} WHERE subject = ? ORDER BY id DESC LIMIT {int(limit)}", (subject,))
    return [_run(r) for r in rows]


def latest_for(subject: str, digest: str) -> Run | None:
    """The newest run started for exactly this text of a version: what the approver should see."""
    for run in list_runs(subject):
        if run.subject_digest == digest:
            return run
    return None


@dataclass(frozen=True)
class CaseFilter:
    """Which cases a report cell stands for; every field optional. `none` stands for a missing tier."""

    b_outcome: str | None = None
    c_outcome: str | None = None
    b_tier: str | None = None
    c_tier: str | None = None
    rule: str | None = None
    rule_side: str | None = None  # baseline | candidate | either
    reason: str | None = None
    reason_side: str | None = None
    bad: int | None = None
    segment: str | None = None
    changed: bool = False
    score_side: str | None = None  # baseline | candidate: with score_min/score_max, a histogram bar's cases
    score_min: float | None = None
    score_max: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for column in ("b_outcome", "c_outcome", "segment"):
            value = getattr(self, column)
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        for column in ("b_tier", "c_tier"):
            value = getattr(self, column)
            if value == "none":
                parts.append(f"{column} IS NULL AND rejected = ?")
                params.append(False)
            elif value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        for value, side, (b, c) in (
            (self.rule, self.rule_side, ("b_rules", "c_rules")),
            (self.reason, self.reason_side, ("b_reasons", "c_reasons")),
        ):
            if value is None:
                continue
            pattern = f"% {value} %"
            if side == "baseline":
                parts.append(f"{b} LIKE ?")
                params.append(pattern)
            elif side == "candidate":
                parts.append(f"{c} LIKE ?")
                params.append(pattern)
            else:
                parts.append(f"({b} LIKE ? OR {c} LIKE ?)")
                params += [pattern, pattern]
        if self.bad is not None:
            parts.append("bad = ?")
            params.append(int(self.bad))
        if self.score_side in ("baseline", "candidate"):
            column = "b_score" if self.score_side == "baseline" else "c_score"
            if self.score_min is not None:
                parts.append(f"{column} >= ?")
                params.append(float(self.score_min))
            if self.score_max is not None:
                parts.append(f"{column} < ?")
                params.append(float(self.score_max))
        if self.changed:
            parts.append("(b_outcome <> c_outcome OR b_tier <> c_tier OR b_limit <> c_limit OR b_rate <> c_rate)")
        return " AND ".join(parts), params

    def query_args(self) -> dict[str, str]:
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value not in (None, False):
                out[name] = "1" if value is True else str(value)
        return out

    def describe(self) -> str:
        bits = [f"{k.replace('_', ' ')} = {v}" for k, v in self.query_args().items()]
        return "; ".join(bits) if bits else "every case"


def count_cases(run_id: int, where: CaseFilter) -> int:
    sql, params = where.sql()
    with orm.db_session:
        row = store.query_one(
            "SELECT COUNT(*) FROM simulation_case WHERE run = ?" + (f" AND {sql}" if sql else ""), [run_id, *params]
        )
    return int(row[0]) if row else 0


def cases(run_id: int, where: CaseFilter, *, offset: int = 0, limit: int | None = 100) -> list[dict[str, Any]]:
    sql, params = where.sql()
    page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
    with orm.db_session:
        rows = store.query(
            f"SELECT {', '.join(CASE_COLUMNS)} FROM simulation_case WHERE run = ?"
            + (f" AND {sql}" if sql else "")
            + " ORDER BY row_number"
            + page,
            [run_id, *params],
        )
    out = []
    for row in rows:
        item = dict(zip(CASE_COLUMNS, row, strict=True))
        for key in ("b_rules", "c_rules", "b_reasons", "c_reasons"):
            item[key] = item[key].split()
        out.append(item)
    return out


def case_detail(run_id: int, row_number: int) -> dict[str, Any]:
    with orm.db_session:
        row = store.query_one(
            f"SELECT {', '.join(CASE_COLUMNS)}, input, decisions FROM simulation_case WHERE run = ? AND row_number = ?",
            (run_id, row_number),
        )
    if row is None:
        raise Refused("unknown-case", f"simulation {run_id} has no row {row_number}", "not-found")
    item = dict(zip((*CASE_COLUMNS, "input", "decisions"), row, strict=True))
    item["input"] = json.loads(item["input"]) if item["input"] else None
    item["decisions"] = json.loads(item["decisions"])
    return item


def score_pairs(run_id: int) -> list[tuple[float | None, float | None, int | None]]:
    """(baseline score, candidate score, bad) per decided case: the cut-off curve is computed from these."""
    with orm.db_session:
        rows = store.query(
            "SELECT b_score, c_score, bad FROM simulation_case WHERE run = ? AND rejected = ? ORDER BY row_number",
            (run_id, False),
        )
    return [(r[0], r[1], r[2]) for r in rows]


# --- the worker ------------------------------------------------------------------------------------------------


def requeue_stale(stale_seconds: float = STALE_SECONDS) -> list[int]:
    """Runs whose worker stopped beating: queued again (or failed after MAX_ATTEMPTS)."""
    limit = now() - dt.timedelta(seconds=stale_seconds)
    moved = []
    with write_session():
        cursor = store.write_cursor()
        cursor.execute(
            store.adapt("SELECT id, attempts FROM simulation_run WHERE status = 'running' AND heartbeat_at < ?"),
            (limit,),
        )
        for run_id, attempts in cursor.fetchall():
            if int(attempts) >= MAX_ATTEMPTS:
                cursor.execute(
                    store.adapt(
                        "UPDATE simulation_run SET status = 'failed', finished_at = ?, claimed_by = NULL,"
                        " error = ? WHERE id = ?"
                    ),
                    (now(), f"the worker stopped {attempts} times while running it", run_id),
                )
            else:
                cursor.execute(
                    store.adapt(
                        "UPDATE simulation_run SET status = 'queued', claimed_by = NULL, progress = 0,"
                        " note = ? WHERE id = ?"
                    ),
                    ("queued again: its worker stopped", run_id),
                )
            moved.append(int(run_id))
    return moved


def claim(worker: str) -> int | None:
    """Take the oldest queued run; the write lock (BEGIN IMMEDIATE / SKIP LOCKED) keeps two workers apart."""
    with write_session():
        cursor = store.write_cursor()
        skip = " FOR UPDATE SKIP LOCKED" if store.dialect() == "postgresql" else ""
        cursor.execute(
            store.adapt(f"SELECT id FROM simulation_run WHERE status = 'queued' ORDER BY id LIMIT 1{skip}")
        )
        row = cursor.fetchone()
        if row is None:
            return None
        stamp = now()
        cursor.execute(
            store.adapt(
                "UPDATE simulation_run SET status = 'running', claimed_by = ?, heartbeat_at = ?, started_at = ?,"
                " attempts = attempts + 1, progress = 0, note = ? WHERE id = ? AND status = 'queued'"
            ),
            (worker, stamp, stamp, "starting", int(row[0])),
        )
        return int(row[0]) if cursor.rowcount == 1 else None


def _update(run_id: int, worker: str, **values: Any) -> bool:
    """Set columns of a run this worker still holds; False when the claim was lost (re-queued meanwhile)."""
    values["heartbeat_at"] = now()
    sets = ", ".join(f"{k} = ?" for k in values)
    with write_session():
        cursor = store.write_cursor()
        cursor.execute(
            store.adapt(f"UPDATE simulation_run SET {sets} WHERE id = ? AND claimed_by = ? AND status = 'running'"),
            (*values.values(), run_id, worker),
        )
        return cursor.rowcount == 1


def beat(worker: str) -> None:
    stamp = now()
    with write_session():
        cursor = store.write_cursor()
        cursor.execute(store.adapt("UPDATE console_worker SET heartbeat_at = ? WHERE id = ?"), (stamp, worker))
        if cursor.rowcount == 0:
            cursor.execute(
                store.adapt("INSERT INTO console_worker (id, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?)"),
                (worker, os.getpid(), stamp, stamp),
            )


def _leave(worker: str) -> None:
    with write_session():
        store.write_cursor().execute(store.adapt("DELETE FROM console_worker WHERE id = ?"), (worker,))


def _input_rows(fmt: str, header: Sequence[str], data: bytes) -> list[dict[str, Any]]:
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        return [dict(zip(header, r, strict=False)) for r in rows]
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError:
                value = {"(unreadable line)": line[:500]}
            out.append(value if isinstance(value, dict) else {"(value)": value})
    return out


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        else:
            out[key] = value
    return out


def _pad(items: Sequence[str]) -> str:
    return " " + " ".join(items) + " " if items else " "


def _case_row(run_id: int, number: int, pair: Mapping[str, Any], source: Mapping[str, Any] | None) -> tuple:
    b, c = pair.get("baseline") or pair, pair.get("candidate") or pair
    rejected = "error" in b and "outcome" not in b
    flat = _flat(source) if source is not None else {}
    bad_raw = flat.get("performance.bad")
    bad: int | None = None
    if bad_raw not in (None, ""):
        text = str(bad_raw).strip().lower()
        bad = 1 if text in ("1", "true", "1.0") else 0 if text in ("0", "false", "0.0") else None
    segment = flat.get("segment")

    def side(d: Mapping[str, Any]) -> tuple:
        if rejected:
            return (None, None, None, None, None, " ", " ")
        return (
            d.get("outcome"),
            d.get("tier"),
            d.get("score"),
            d.get("limit"),
            d.get("rate"),
            _pad([f["rule"] for f in d.get("fired") or []]),
            _pad([r["code"] for r in d.get("reasons") or []]),
        )

    bo, bt, bs, bl, br, brules, breasons = side(b)
    co, ct, cs, cl, cr, crules, creasons = side(c)
    return (
        run_id,
        number,
        None if segment in (None, "") else str(segment)[:200],
        bad,
        rejected,
        bo,
        co,
        bt,
        ct,
        bs,
        cs,
        bl,
        cl,
        br,
        cr,
        brules,
        crules,
        breasons,
        creasons,
        json.dumps(source, ensure_ascii=False) if source is not None else None,
        json.dumps(pair, ensure_ascii=False, separators=(",", ":")),
    )


INSERT_CASE = (
    f"INSERT INTO simulation_case (run, {', '.join(CASE_COLUMNS)}, input, decisions) "
    f"VALUES ({', '.join('?' for _ in range(len(CASE_COLUMNS) + 3))})"
)


class LostClaim(Exception):
    """The run was taken from this worker (its heartbeat looked dead): stop without writing more."""


def run_simulation(run_id: int, worker: str) -> None:
    """Run one claimed simulation to its end, storing cases block by block; the report last."""
    from engine.portfolio import Decoder, Portfolio
    from engine.report import Tally, build_report
    from engine.simulate import ChunkTask, Runner, compile_side, run_chunk

    run = get_run(run_id)
    with write_session():  # a re-run after a crash starts again from the first row
        store.write_cursor().execute(store.adapt("DELETE FROM simulation_case WHERE run = ?"), (run_id,))
    try:
        base = _spec("baseline", run.policy, run.as_of, run.baseline, "baseline: " + run.baseline_changes)
        cand = _spec("candidate", run.policy, run.as_of, run.candidate, "candidate: " + run.candidate_changes)
        specs = (base, cand)
        sides = [compile_side(s) for s in specs]
        # Problems name the portfolio as the user knows it: an upload's stored path is the server's business.
        portfolio = Portfolio(run.portfolio_path, int(run.params.get("chunk_rows", CHUNK_ROWS)), run.portfolio_name)
        Decoder(portfolio.format, portfolio.header, [s.unit for s in sides], portfolio.name)
    except (CredoError, Refused) as error:
        message = error.message if isinstance(error, Refused) else "; ".join(p.format() for p in error.problems)
        _update(run_id, worker, status="failed", finished_at=now(), error=message[:4000], note="failed")
        return
    total = Tally()
    done_bytes = 0
    row_number = 0
    blocks: deque[Any] = deque()

    def tasks() -> Iterator[Any]:
        for block in portfolio.blocks():
            blocks.append(block)
            yield ChunkTask("simulate", specs, portfolio.format, portfolio.header, block, True)

    last_beat = 0.0
    with Runner(workers=1) as runner:
        for result in runner.map(run_chunk, tasks()):
            block = blocks.popleft()
            assert result.tally is not None
            total.merge(result.tally)
            lines = [json.loads(line) for line in result.lines.splitlines() if line.strip()]
            sources: list[Any] = _input_rows(portfolio.format, portfolio.header, block.data)
            if len(sources) != len(lines):  # never guess which input a decision belongs to
                sources = [None] * len(lines)
            rows = []
            for pair, source in zip(lines, sources, strict=True):
                row_number += 1
                rows.append(_case_row(run_id, row_number, pair, source))
            done_bytes += result.size
            progress = min(done_bytes / portfolio.size, 0.999) if portfolio.size else 0.999
            with write_session():
                cursor = store.write_cursor()
                cursor.executemany(store.adapt(INSERT_CASE), rows)
            note = f"{row_number} rows decided"
            if not _update(run_id, worker, progress=progress, note=note):
                raise LostClaim(run_id)
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                beat(worker)
                last_beat = time.monotonic()
    meta = {
        "policy": run.policy,
        "as_of": run.as_of.isoformat(),
        "portfolio": run.portfolio_name,
        "reference_portfolio": None,
        "candidate_given": True,
    }
    report = build_report(total, sides[0].info, sides[-1].info, meta, None)
    report["versions"] = {
        "baseline": [f"{n}@{v}" for n, v, _ in run.baseline],
        "candidate": [f"{n}@{v}" for n, v, _ in run.candidate],
    }
    text = json.dumps(report, ensure_ascii=False, allow_nan=False, default=str)
    stamp = now()
    if not _update(run_id, worker, status="done", progress=1.0, finished_at=stamp, note=f"{row_number} rows",
                   report=text):
        raise LostClaim(run_id)
    with write_session():
        # The worker acts for no one in particular: the request already named who asked for the run.
        record("system", "simulation-finished", f"simulation:{run_id}", {"rows": row_number})


def _queued() -> bool:
    with orm.db_session:
        return store.query_one("SELECT id FROM simulation_run WHERE status = 'queued' LIMIT 1") is not None


def work(*, idle_exit: float | None = WORKER_IDLE_EXIT, once: bool = False, poll: float = 1.0) -> int:
    """Claim and run simulations until idle for `idle_exit` seconds (None: forever). Returns the runs done.

    An idle worker only reads (is anything queued?) between heartbeats: a write lock every poll would make the
    web server's own writes wait on SQLite.
    """
    worker = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(3)}"
    done = 0
    idle_since = time.monotonic()
    last_beat = last_sweep = -1e9
    try:
        while True:
            tick = time.monotonic()
            if tick - last_beat >= HEARTBEAT_SECONDS:
                beat(worker)
                last_beat = tick
            if tick - last_sweep >= STALE_SECONDS / 3:
                requeue_stale()
                last_sweep = tick
            run_id = claim(worker) if _queued() else None
            if run_id is None:
                if once or (idle_exit is not None and time.monotonic() - idle_since > idle_exit):
                    return done
                time.sleep(poll)
                continue
            try:
                run_simulation(run_id, worker)
            except LostClaim:
                log.warning("simulation %d was taken over by another worker", run_id)
            except Exception as exc:  # one bad run must not stop the worker; its row says what happened
                # The exception's text can quote a portfolio's values: the page shows the incident id only.
                incident = incidents.report(log, f"simulation {run_id} failed", exc)
                _update(run_id, worker, status="failed", finished_at=now(), note="failed",
                        error=f"the run failed unexpectedly ({type(exc).__name__}, incident {incident})")
            done += 1
            idle_since = time.monotonic()
            last_beat = -1e9
    finally:
        try:
            _leave(worker)
        except Exception as exc:  # leaving is a courtesy; a dead row ages out anyway
            log.debug("could not remove the worker row (%s)", type(exc).__name__)


def live_workers(within: float = STALE_SECONDS) -> int:
    limit = now() - dt.timedelta(seconds=within)
    with orm.db_session:
        row = store.query_one("SELECT COUNT(*) FROM console_worker WHERE heartbeat_at >= ?", (limit,))
    return int(row[0]) if row else 0


def pending() -> int:
    with orm.db_session:
        row = store.query_one("SELECT COUNT(*) FROM simulation_run WHERE status IN ('queued', 'running')")
    return int(row[0]) if row else 0


_spawned: list[subprocess.Popen[bytes]] = []


def ensure_worker(database_url: str | None) -> bool:
    """Start a worker process when runs wait and none is heard; True when one was started.

    The worker is a process of its own (numpy, the engine and the database connection stay out of the web
    server), detached from the request; it leaves by itself once idle.
    """
    for proc in list(_spawned):
        if proc.poll() is not None:
            _spawned.remove(proc)
    if not pending() or live_workers() or any(p.poll() is None for p in _spawned):
        return False
    env = dict(os.environ)
    if database_url:
        env["DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.services.simulations"],
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _spawned.append(proc)
    return True


def stop_spawned(timeout: float = 10.0) -> None:
    """End the workers this process started (tests; a server shutting down)."""
    for proc in _spawned:
        if proc.poll() is None:
            proc.terminate()
    for proc in _spawned:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    _spawned.clear()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    import web.models  # noqa: F401 - the entities must be declared before the database is bound
    from audit.db import bind_database

    parser = argparse.ArgumentParser(prog="python -m web.services.simulations", description="the simulation worker")
    parser.add_argument("--database", metavar="URL", help="database URL (default: $DATABASE_URL)")
    parser.add_argument("--forever", action="store_true", help="never leave when idle")
    parser.add_argument("--once", action="store_true", help="run what is queued now, then leave")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bind_database(args.database)
    done = work(idle_exit=None if args.forever else WORKER_IDLE_EXIT, once=args.once)
    log.info("worker leaving after %d run(s)", done)
    return 0


__all__ = [
    "DEMO_BOOK",
    "CaseFilter",
    "Run",
    "active_triples",
    "book_product",
    "case_detail",
    "cases",
    "claim",
    "count_cases",
    "enqueue",
    "ensure_worker",
    "get_report",
    "get_run",
    "latest_for",
    "list_runs",
    "policies_in",
    "requeue_stale",
    "run_simulation",
    "score_pairs",
    "stop_spawned",
    "store_upload",
    "work",
]

if __name__ == "__main__":
    sys.exit(main())
