"""Shared pieces of the audit tests: cases, bulk chains built through the real append code, trigger bypasses."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pony import orm

from audit import records, store
from audit.chain import COLUMNS, SELECT_LIST, canonical, row_dict, utc_text
from engine.library import REPO

BOOK = [json.loads(line) for line in (REPO / "examples" / "book.jsonl").read_text(encoding="utf-8").splitlines()]
AS_OF = dt.date(2026, 6, 30)


def varied_case(rng: random.Random, index: int) -> dict[str, Any]:
    """A book case with numbers moved about, so decisions differ in outcome, tier, limit and trace."""
    case = copy.deepcopy(BOOK[index % len(BOOK)])
    case["application"]["amount"] = round(case["application"]["amount"] * rng.uniform(0.5, 1.6))
    fin = case["financials"]
    fin["ebitda"] = round(fin["ebitda"] * rng.uniform(0.6, 1.4))
    fin["debt_service"] = max(1, round(fin["debt_service"] * rng.uniform(0.7, 1.3)))
    case["credit"]["max_dpd_12m"] = rng.choice([0, 0, 0, 5, 20, 45])
    case["borrower"]["name"] = f"Borrower {index} Ltd."
    case["borrower"]["legal_representative"] = f"Person {index}"
    return case


def draft(rng: random.Random, index: int) -> records.Draft:
    """A small, plausible record for chains that test integrity rather than decisions (fast to hash and read)."""
    outcome = rng.choice(["approve", "refer", "decline"])
    decision = {
        "outcome": outcome,
        "tier": rng.choice("ABCDE"),
        "score": rng.randint(500, 720),
        "reasons": [] if outcome == "approve" else [{"code": "R-TEST", "text": "test", "rule": "T-1"}],
    }
    return records.Draft(
        caller_kind="api_key",
        caller_id=f"key-{index % 7}",
        idempotency_key=None,
        request_sha256=None,
        application_id=f"APP-{index}",
        policy=rng.choice(["project-finance", "corporate-term-loan"]),
        policy_version=1,
        policy_digest="sha256:" + "ab" * 32,
        library=canonical([["credo-facts", 1, "sha256:" + "cd" * 32]]),
        engine="credo-engine/1 rete",
        as_of="2026-06-30",
        input=canonical({"application": {"amount": rng.randint(1, 10**8)}}),
        outcome=outcome,
        tier=decision["tier"],
        score=float(decision["score"]),
        pd=rng.random() / 10,
        limit_amount=None if outcome == "decline" else float(rng.randint(1, 10**8)),
        rate=None if outcome == "decline" else 0.04,
        decision=canonical(decision),
        latency_us=rng.randint(300, 3000),
        masked="[]",
        sealed=None,
        key_id=None,
    )


def build_chain(n: int, seed: int = 7, batch: int = 1000, start: dt.datetime | None = None) -> None:
    """n records through `append_many` (the real numbering, linking, hashing and checkpoints), in batches.

    With `start`, record k is stamped start + k minutes (for purge and export tests); otherwise now.
    """
    rng = random.Random(seed)
    done = 0
    while done < n:
        size = min(batch, n - done)
        batch_drafts = []
        for i in range(done, done + size):
            d = draft(rng, i)
            if start is not None:
                d = dataclasses.replace(d, at=utc_text(start + dt.timedelta(minutes=i)))
            batch_drafts.append(d)
        records.append_many(batch_drafts)
        done += size


def all_rows() -> list[dict[str, Any]]:
    with orm.db_session:
        return [row_dict(r) for r in store.query(f"SELECT {SELECT_LIST} FROM decision_record ORDER BY seq")]


def count_rows() -> int:
    with orm.db_session:
        row = store.query_one("SELECT COUNT(*) FROM decision_record")
    assert row is not None
    return int(row[0])


def head_row() -> tuple[Any, ...]:
    with orm.db_session:
        row = store.query_one("SELECT seq, hash, base_seq, base_hash FROM audit_head WHERE id = 1")
    assert row is not None
    return row


SQLITE_TRIGGERS = (
    "decision_record_no_update",
    "decision_record_no_delete",
    "governance_event_no_update",
    "governance_event_no_delete",
)


def bypass_triggers(cursor: Any) -> None:
    """What an attacker with the owner's rights does first, inside the current transaction (rolled back later)."""
    if store.dialect() == "sqlite":
        for name in SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}")
    else:
        cursor.execute("SET LOCAL session_replication_role = replica")


class Undo(Exception):
    """Raised to roll a tampering transaction back."""


@contextmanager
def tampering() -> Iterator[Any]:
    """A write transaction with the triggers out of the way; everything in it is rolled back at the end."""
    try:
        with orm.db_session:
            cursor = store.write_cursor()
            bypass_triggers(cursor)
            yield cursor
            raise Undo
    except Undo:
        pass


def insert_row(cursor: Any, row: dict[str, Any]) -> None:
    marks = ", ".join("?" for _ in COLUMNS)
    cursor.execute(
        store.adapt(f"INSERT INTO decision_record ({SELECT_LIST}) VALUES ({marks})"), tuple(row[c] for c in COLUMNS)
    )


def memoized_values_hash(monkeypatch: Any) -> None:
    """Memoise the record hash that verify() computes, for campaigns that walk the same clean rows hundreds of times.

    `values_hash` is a pure function of the row, so a memo returns exactly what recomputation would: every row a
    mutation touched is a new tuple and is hashed afresh; what the memo saves is re-hashing the untouched prefix
    on each of the hundreds of walks (minutes on a 2-core machine). The verification logic itself runs unchanged.
    """
    import functools

    from audit import chain, verify

    cached = functools.lru_cache(maxsize=200_000)(chain.values_hash)

    def values_hash(values: Any) -> str:
        return cached(values) if isinstance(values, tuple) else chain.values_hash(values)

    monkeypatch.setattr(verify, "values_hash", values_hash)


EARLY_WARNING = (REPO / "rulesets" / "early-warning.yaml").read_text(encoding="utf-8")
LIMITS = (REPO / "rulesets" / "limits-pricing.yaml").read_text(encoding="utf-8")
WATCHED = "Person Watch"
WATCH_RULE = """rules:
  - id: EW-WATCHLIST
    description: A legal representative on the bank's watch list (reads a sensitive field, for the masking tests).
    when: "borrower.legal_representative == 'Person Watch'"
    then:
      alerts:
        - code: EW-WATCHLIST
          severity: critical
          message: "Legal representative {borrower.legal_representative} of {borrower.name} is on the watch list"
"""


def watchlist_text() -> str:
    """early-warning with one more rule, whose test, trace and alert text all carry sensitive values."""
    return EARLY_WARNING.replace("rules:\n", WATCH_RULE, 1)


def limits_version(k: int) -> str:
    """limits-pricing with a syndication condition above a threshold that moves with k: each version decides some
    large cases differently, and no embedded test reaches the threshold."""
    rule = f"""rules:
  - id: LIM-SYNDICATION
    description: Very large facilities are syndicated (version {k} of the threshold).
    when: "application.amount > {260_000_000 + k * 1_000_000}"
    then:
      conditions: ["Syndication with at least one other bank (threshold {260 + k} million)"]
"""
    return LIMITS.replace("rules:\n", rule, 1)


def publish(text: str, author: str = "alice", approver: str = "bob") -> str:
    from web.services import rules

    ref = rules.save_draft(text, author).ref
    rules.submit(ref, author)
    rules.approve(ref, approver)
    rules.publish(ref, approver)
    return ref
