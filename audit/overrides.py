"""Underwriter overrides as records of the decision chain: who, from, to, why, linked to the automated decision.

An effective override is appended to the same hash chain as the decisions (audit.records.append), so
`credo audit verify` covers it like any decision, and an application's latest record is its current outcome.
It is told from an automated decision by its `engine` column (`override`) and by its `input`, which holds the
override itself instead of a case:

    input    = {"override_of": "<decision id>", "from": {outcome, limit, rate, conditions},
                "to": {outcome, limit, rate, conditions}, "reason": "...", "by": "<user>", "confirmed_by": ...}
    decision = the automated decision (as stored, masked) with outcome, limit, rate and conditions replaced,
               plus an `override` member holding the same facts as `input`

Policy, versions, `as_of`, tier, score and PD are the automated decision's: an underwriter changes the
outcome and terms, not the rules that were applied. The caller is the underwriter who made the override
effective (`caller_kind` = `user`). Nothing here is sealed: the automated record keeps the sealed originals.

This module lives in audit/ because it writes the chain; the review workflow (roles, four eyes, the state of a
pending review) is the web layer's (web/api/reviews.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pony import orm

from audit import store
from audit.chain import SELECT_LIST, canonical, row_dict
from audit.records import Appended, Draft, append

ENGINE = "override"


def is_override(row: Mapping[str, Any]) -> bool:
    return str(row.get("engine") or "") == ENGINE


def draft_override(
    original: Mapping[str, Any],
    decision: Mapping[str, Any],
    *,
    to: Mapping[str, Any],
    reason: str,
    by: str,
    confirmed_by: str | None,
    actor: str,
) -> Draft:
    """The record of an override of `original` (a stored decision row; `decision` its decision JSON, parsed)."""
    before = {
        "outcome": original["outcome"],
        "limit": decision.get("limit"),
        "rate": decision.get("rate"),
        "conditions": list(decision.get("conditions") or []),
    }
    facts = {
        "override_of": original["decision_id"],
        "from": before,
        "to": dict(to),
        "reason": reason,
        "by": by,
        "confirmed_by": confirmed_by,
    }
    changed = dict(decision)
    changed.update(
        outcome=to["outcome"],
        limit=to.get("limit"),
        rate=to.get("rate"),
        conditions=list(to.get("conditions") or []),
        override=facts,
    )
    return Draft(
        caller_kind="user",
        caller_id=actor,
        idempotency_key=None,
        request_sha256=None,
        application_id=original.get("application_id"),
        policy=str(original["policy"]),
        policy_version=original.get("policy_version"),
        policy_digest=str(original["policy_digest"]),
        library=str(original["library"]),
        engine=ENGINE,
        as_of=str(original["as_of"]),
        input=canonical(facts),
        outcome=str(to["outcome"]),
        tier=original.get("tier"),
        score=original.get("score"),
        pd=original.get("pd"),
        limit_amount=None if to.get("limit") is None else float(to["limit"]),
        rate=None if to.get("rate") is None else float(to["rate"]),
        decision=canonical(changed),
        latency_us=0,
        # The copied decision keeps the automated record's masked spots; its input (the override) has none.
        masked=canonical(
            [p for p in json.loads(str(original.get("masked") or "[]")) if str(p).startswith("$.decision")]
        ),
        sealed=None,
        key_id=None,
    )


def append_override(draft: Draft) -> Appended:
    """Append in the caller's transaction when there is one (the review's state commits with its record)."""
    return append(draft)


def load_row(decision_id: str) -> dict[str, Any] | None:
    with orm.db_session:
        row = store.query_one(f"SELECT {SELECT_LIST} FROM decision_record WHERE decision_id = ?", (decision_id,))
    return None if row is None else row_dict(row)


def latest_for_application(application_id: str) -> dict[str, Any] | None:
    """The application's newest record, automated or override (its current outcome)."""
    with orm.db_session:
        row = store.query_one(
            f"SELECT {SELECT_LIST} FROM decision_record WHERE application_id = ? ORDER BY seq DESC LIMIT 1",
            (application_id,),
        )
    return None if row is None else row_dict(row)


def override_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(str(row["input"])))


__all__ = [
    "ENGINE",
    "append_override",
    "draft_override",
    "is_override",
    "latest_for_application",
    "load_row",
    "override_facts",
]
