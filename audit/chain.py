"""What a decision record stores and how its hash is computed: the one definition every writer and verifier uses.

hash = "sha256:" + sha256(prev_hash + "\\n" + body), where body is the canonical JSON array (no spaces, UTF-8 as is)
of every stored column but `hash`, in the order of `HASHED` (the column names sorted), headed by the format's name:

    ["credo-decision-record/1", application_id, as_of, at, caller_id, ..., tier]

An array rather than an object with sorted keys: the same content and the same guarantees (a fixed schema, so the
names add nothing), encoded in half the time, which is what `verify` spends per record. The JSON columns (`input`,
`decision`, ...) are hashed as the exact text stored, so a change of a single stored byte changes the hash, even a
space that would leave the parsed value equal. Numbers in the DOUBLE PRECISION columns are hashed as floats and
whole-number columns as integers, whatever the driver hands back, so SQLite and PostgreSQL give the same hash for
the same record. `prev_hash` is in the body as well as in front of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

GENESIS = "sha256:" + "0" * 64

# Every stored column, in table order. `hash` is last and is not part of its own body.
COLUMNS: tuple[str, ...] = (
    "seq",
    "decision_id",
    "at",
    "caller_kind",
    "caller_id",
    "idempotency_key",
    "request_sha256",
    "application_id",
    "policy",
    "policy_version",
    "policy_digest",
    "library",
    "engine",
    "as_of",
    "input",
    "outcome",
    "tier",
    "score",
    "pd",
    "limit_amount",
    "rate",
    "decision",
    "latency_us",
    "masked",
    "sealed",
    "key_id",
    "prev_hash",
    "hash",
)
JSON_COLUMNS = frozenset({"library", "input", "decision", "masked"})
INT_COLUMNS = frozenset({"seq", "policy_version", "latency_us"})
FLOAT_COLUMNS = frozenset({"score", "pd", "limit_amount", "rate"})
HASHED: tuple[str, ...] = tuple(sorted(c for c in COLUMNS if c != "hash"))
SELECT_LIST = ", ".join(COLUMNS)

FORMAT = "credo-decision-record/1"
_INT_AT = tuple(i + 1 for i, name in enumerate(HASHED) if name in INT_COLUMNS)
_FLOAT_AT = tuple(i + 1 for i, name in enumerate(HASHED) if name in FLOAT_COLUMNS)
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is: the stored form of a JSON value.

    orjson writes it about six times faster than the json module (a decision with its trace is ~6 KB, encoded
    once per record); what orjson declines (an integer beyond 64 bits, a non-text key, a lone surrogate) goes
    through the json module, which refuses NaN and infinities. orjson would write those as null, so callers pass
    finite numbers only: a case is checked to be strict JSON before it is decided, and the engine's arithmetic
    yields no non-finite value. Stored texts are hashed as stored, so the encoder never has to be reproduced.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_HASHED_AT = operator.itemgetter(*(COLUMNS.index(name) for name in HASHED))
PREV_AT = COLUMNS.index("prev_hash")
HASH_AT = COLUMNS.index("hash")


def values_body(values: Sequence[Any]) -> str:
    """The hashed text of a record given as a row in COLUMNS order (the module's docstring says what it is)."""
    body: list[Any] = [FORMAT, *_HASHED_AT(values)]
    for i in _INT_AT:
        if body[i] is not None:
            body[i] = int(body[i])
    for i in _FLOAT_AT:
        if body[i] is not None:
            body[i] = float(body[i])
    return _encode(body)


def values_hash(values: Sequence[Any]) -> str:
    """The hash of a record given as a row in COLUMNS order (its `hash` is ignored): what verify runs per row."""
    return "sha256:" + hashlib.sha256(f"{values[PREV_AT]}\n{values_body(values)}".encode()).hexdigest()


def record_hash(row: Mapping[str, Any]) -> str:
    """The hash of a record given as a mapping by column name (`hash` may be absent: it is not hashed)."""
    return values_hash(tuple(row.get(name) for name in COLUMNS))


def row_dict(values: Sequence[Any]) -> dict[str, Any]:
    """A row selected with SELECT_LIST as a mapping by column name."""
    return dict(zip(COLUMNS, values, strict=True))


# --- time and ids ------------------------------------------------------------------------------------------------


def utc_text(moment: dt.datetime | None = None) -> str:
    """UTC as fixed-width ISO text with microseconds: sorts as it compares, on both databases."""
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_id_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_decision_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of Unix milliseconds and 80 random bits, 26 Crockford base32 characters.

    Ids sort by time; within one millisecond this process increments the random part, so its ids are strictly
    increasing (ids from different processes in the same millisecond are unique, not ordered).
    """
    global _last_ms, _last_random
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _id_lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_random = (_last_random + 1) & ((1 << 80) - 1)
        else:
            _last_ms = ms
            _last_random = secrets.randbits(79)  # leaves room to increment without wrapping in practice
        value = (ms << 80) | _last_random
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_decision_id(text: str) -> bool:
    return len(text) == 26 and all(c in _CROCKFORD for c in text)


__all__ = [
    "COLUMNS",
    "FORMAT",
    "GENESIS",
    "HASHED",
    "HASH_AT",
    "JSON_COLUMNS",
    "PREV_AT",
    "SELECT_LIST",
    "canonical",
    "is_decision_id",
    "new_decision_id",
    "parse_utc",
    "record_hash",
    "row_dict",
    "utc_text",
    "values_body",
    "values_hash",
]
