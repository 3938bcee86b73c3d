"""Governance events: who did what to the rules (and the accounts), and when, as a hash chain.

Each event carries `seq`, `prev_hash` and `hash` = sha256 over the previous hash and a canonical JSON of the
event, so the audit issue's verification can prove that no event was changed, removed or inserted afterwards.
Appends are serialised through one head row (`governance_head`, id 1) locked for the transaction:
`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the caller's `BEGIN IMMEDIATE` transaction already excludes
every other writer. The event commits in the caller's transaction, with the change it records, or not at all.

`detail` is for identifiers and reasons (versions, digests, codes): never a secret or customer data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pony import orm

from audit.db import db

GENESIS = "sha256:" + "0" * 64


class GovernanceHead(db.Entity):
    _table_ = "governance_head"
    id = orm.PrimaryKey(int)
    seq = orm.Required(int)
    hash = orm.Required(str)


class GovernanceEvent(db.Entity):
    _table_ = "governance_event"
    id = orm.PrimaryKey(int, auto=True)
    seq = orm.Required(int, unique=True)
    at = orm.Required(dt.datetime)
    actor = orm.Required(str, autostrip=False)
    action = orm.Required(str, autostrip=False)
    subject = orm.Required(str, autostrip=False)
    # Pony strips str values by default; the hash covers these exactly as given, so they are stored as given.
    detail = orm.Required(str, autostrip=False)  # canonical JSON text
    prev_hash = orm.Required(str)
    hash = orm.Required(str, unique=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": json.loads(self.detail),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, seq: int, at: dt.datetime, actor: str, action: str, subject: str, detail: str) -> str:
    body = canonical(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": json.loads(detail),
        }
    )
    return "sha256:" + hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def now() -> dt.datetime:
    """UTC, naive (both databases store it the same way), to the microsecond the hash covers."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record(actor: str, action: str, subject: str, detail: Mapping[str, Any] | None = None) -> GovernanceEvent:
    """Append one event in the current (write) transaction."""
    head = GovernanceHead.get_for_update(id=1)
    if head is None:  # the migration inserts it; a missing head means a damaged database
        raise RuntimeError("governance_head row 1 is missing")
    text = canonical(dict(detail or {}))
    seq = head.seq + 1
    at = now()
    digest = event_hash(head.hash, seq, at, actor, action, subject, text)
    event = GovernanceEvent(
        seq=seq, at=at, actor=actor, action=action, subject=subject, detail=text, prev_hash=head.hash, hash=digest
    )
    head.seq, head.hash = seq, digest
    return event


def verify_chain() -> list[str]:
    """Every break in the chain, as text; empty when intact. (The audit issue grows this into `credo audit verify`.)"""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    for event in orm.select(e for e in GovernanceEvent).order_by(GovernanceEvent.seq):
        if event.seq != expected_seq:
            problems.append(f"seq {expected_seq}: missing (found {event.seq})")
        if event.prev_hash != prev:
            problems.append(f"seq {event.seq}: prev_hash does not match the previous event")
        again = event_hash(event.prev_hash, event.seq, event.at, event.actor, event.action, event.subject, event.detail)
        if again != event.hash:
            problems.append(f"seq {event.seq}: hash does not match its content")
        prev = event.hash
        expected_seq = event.seq + 1
    head = GovernanceHead.get(id=1)
    if head is not None and (head.seq, head.hash) != (expected_seq - 1, prev):
        problems.append("head does not point at the last event")
    return problems


__all__ = ["GENESIS", "GovernanceEvent", "GovernanceHead", "record", "verify_chain"]
