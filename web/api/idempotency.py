"""The `Idempotency-Key` header of every POST: stored answers, replayed byte for byte.

A key belongs to its caller: (caller, key) is unique. The request it was first used with is remembered as a
sha256 over the method, the path and the canonical JSON of the body:

- the same key and the same request again: the stored answer, status and bytes, once the first has finished;
- the same key with a different request: 422 `idempotency-key-reused`;
- the same key while the first request still runs (in any worker process): 409 `idempotency-key-in-use`.

The claim is committed on its own before the work starts, so that other processes see it. The answer is stored
in the work's own transaction where the endpoint has one (reviews, alerts, customer data: the effect and the
stored answer commit together); the decision service commits its record itself, and is handed the key as well,
so a retry after a crash between the two finds the recorded decision instead of deciding twice. A request that
fails with a 5xx gives its claim back: a retry runs again. A claim whose request died (its worker was killed)
can be taken over after a lease. Rows are purged after at least 7 days.

Raw SQL on purpose: this table is the API's own, and mapping it as a Pony entity would make every process that
binds the database import the API first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from pony import orm
from pony.orm.dbapiprovider import IntegrityError

from audit.db import db, write_session
from web.api.errors import ApiError

PURGE_EVERY_S = 600.0
_purged_at = 0.0
_purge_lock = threading.Lock()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    caller: str
    key: str
    token: str
    request_sha256: str


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes


def _as_datetime(value: Any) -> dt.datetime:
    # sqlite3 hands TIMESTAMP columns back as text, psycopg2 as datetime.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def _for_update() -> str:
    return " FOR UPDATE" if db.provider.dialect == "PostgreSQL" else ""


def claim(caller: str, key: str, request_sha256: str, *, lease_seconds: float, ttl_days: int) -> Claim | Stored:
    """Take the key for this request, or return the stored answer; raises ApiError 409/422."""
    _maybe_purge(ttl_days)
    for attempt in range(2):
        try:
            return _claim_once(caller, key, request_sha256, lease_seconds)
        except IntegrityError:
            # PostgreSQL: another process inserted the same key between our SELECT and INSERT. Look again.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _claim_once(caller: str, key: str, request_sha256: str, lease_seconds: float) -> Claim | Stored:
    stamp = now()
    # Pony evaluates each $name in this mapping (passed explicitly rather than read from the frame's locals).
    params = {"caller": caller, "key": key, "digest": request_sha256, "token": secrets.token_hex(16), "stamp": stamp}
    with write_session():
        rows = db.select(
            "SELECT request_sha256, status, response_status, response_body, updated_at FROM idempotency_key"
            " WHERE caller = $caller AND idem_key = $key" + _for_update(),
            params,
        )
        if not rows:
            db.execute(
                "INSERT INTO idempotency_key (caller, idem_key, request_sha256, status, claim, created_at, updated_at)"
                " VALUES ($caller, $key, $digest, 'in_progress', $token, $stamp, $stamp)",
                params,
            )
            token = params["token"]
            return Claim(caller, key, token, request_sha256)
        stored_hash, status, response_status, response_body, updated_at = rows[0]
        if stored_hash != request_sha256:
            raise ApiError(
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request; use a new key for a new request",
                [{"path": "header:Idempotency-Key", "code": "idempotency-key-reused", "message": "key reused"}],
            )
        if status == "done":
            return Stored(int(response_status), str(response_body).encode())
        if (stamp - _as_datetime(updated_at)).total_seconds() < lease_seconds:
            raise ApiError(
                409,
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        # The request that held it died without an answer: this one takes over.
        db.execute(
            "UPDATE idempotency_key SET claim = $token, updated_at = $stamp WHERE caller = $caller AND idem_key = $key",
            params,
        )
        return Claim(caller, key, params["token"], request_sha256)


def finish(held: Claim, status: int, body: bytes) -> None:
    """Store the answer. Inside a write transaction it joins it (the effect and its answer commit together)."""
    params = {
        "caller": held.caller,
        "key": held.key,
        "token": held.token,
        "status": status,
        "text": body.decode(),
        "stamp": now(),
    }
    with write_session():
        db.execute(
            "UPDATE idempotency_key SET status = 'done', response_status = $status, response_body = $text,"
            " updated_at = $stamp WHERE caller = $caller AND idem_key = $key AND claim = $token",
            params,
        )


def release(held: Claim) -> None:
    """Give the key back (the request failed with a 5xx): a retry runs again."""
    params = {"caller": held.caller, "key": held.key, "token": held.token}
    with write_session():
        db.execute(
            "DELETE FROM idempotency_key WHERE caller = $caller AND idem_key = $key AND claim = $token"
            " AND status = 'in_progress'",
            params,
        )


def purge(ttl_days: int) -> int:
    params = {"cutoff": now() - dt.timedelta(days=max(ttl_days, 7))}
    with write_session():
        cursor = db.execute("DELETE FROM idempotency_key WHERE created_at < $cutoff", params)
        return int(cursor.rowcount or 0)


def _maybe_purge(ttl_days: int) -> None:
    # At most once per PURGE_EVERY_S per process: the delete walks an index, but need not run on every request.
    global _purged_at
    if time.monotonic() - _purged_at < PURGE_EVERY_S or orm.core.local.db_session is not None:
        return
    with _purge_lock:
        if time.monotonic() - _purged_at < PURGE_EVERY_S:
            return
        _purged_at = time.monotonic()
    purge(ttl_days)


__all__ = ["Claim", "Stored", "claim", "finish", "purge", "release", "request_hash"]
