"""Decisions: decide and record, read back, review (underwriter overrides), replay; and an application's status.

The decision service (web/services/decisions.py) owns the audit transaction: a decision is answered only once
its record is durable, and the service may commit records in groups, so these endpoints run without a session
of the framework's (`transaction="service"`).
"""

from __future__ import annotations

from typing import Any

from engine.errors import CredoError
from web.api import reviews
from web.api.auth import UNMASK_ROLES
from web.api.errors import ApiError, from_credo_error
from web.api.framework import Call, PathParam, endpoint
from web.api.schemas import (
    ApplicationStatus,
    Decision,
    DecisionRecord,
    DecisionRequest,
    Replay,
    ReplayRequest,
    Review,
    ReviewRequest,
)
from web.services import decisions

# A ULID, as the audit trail issues and stores them (audit/chain.py new_decision_id): Crockford base32, which is
# case-insensitive, so either case is admitted and the id is looked up in upper case.
DECISION = PathParam(
    r"[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}",
    "a decision id (26 characters, as POST /decisions returned it; either case)",
    upper=True,
)
APPLICATION = PathParam(
    r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", "the application_id sent with its decisions", example="APP-2026-0001"
)
FROM_ANSWER = {"decision_id": "$response.body#/decision_id"}


def caller_of(call: Call) -> decisions.Caller:
    auth = call.auth
    assert auth is not None
    can_unmask = "admin" in auth.scopes or bool(auth.principal.roles & UNMASK_ROLES)
    return decisions.Caller(kind="api_key", id=auth.caller_id, can_unmask=can_unmask)


@endpoint(
    "POST",
    "/decisions",
    summary="Decide a case and record the decision",
    tag="decisions",
    scopes=("decide",),
    body=DecisionRequest,
    response=Decision,
    errors=(404,),
    transaction="service",
    links={
        "GetDecision": ("get_decision", FROM_ANSWER),
        "ReplayDecision": ("replay_decision", FROM_ANSWER),
        "ReviewDecision": ("review_decision", FROM_ANSWER),
        "ApplicationStatus": ("application_status", {"application_id": "$request.body#/application_id"}),
    },
)
def create_decision(call: Call) -> dict[str, Any]:
    """Evaluates the case under the policy's versions in force on `as_of` and answers the Decision (design section
    7): outcome, tier, score and PD, limit, rate, reasons with their texts, conditions, alerts, the versions and
    digests used, and `fired`, every rule that fired with the values that made it fire. The answer leaves only once
    the audit trail holds the decision. An evaluation failure follows the policy's `on_error` and is recorded too.

    An unknown policy is a 404; a case that does not match the fact declarations is a 422 listing every problem by
    JSON path (`$.case.financials.ebitda`)."""
    body: DecisionRequest = call.body
    try:
        return decisions.decide_and_record(
            body.policy,
            body.case,
            caller=caller_of(call),
            as_of=body.as_of,
            idempotency_key=call.idempotency_key,
            request_sha256=call.request_sha256,
            application_id=body.application_id,
        )
    except CredoError as error:
        raise from_credo_error(error) from None


@endpoint(
    "GET",
    "/decisions/{decision_id}",
    summary="A recorded decision",
    tag="decisions",
    scopes=("read", "decide"),
    response=DecisionRecord,
    transaction="service",
    params={"decision_id": DECISION},
)
def get_decision(call: Call) -> dict[str, Any]:
    """The record as the audit trail holds it (caller, time, versions, input, decision, chain hashes) and the
    underwriter's review, if any. Sensitive case values are masked (`***`) unless the key's user is an
    underwriter, auditor or admin."""
    decision_id = call.params["decision_id"]
    document = decisions.get_decision(decision_id, caller_of(call))
    keep = set(DecisionRecord.model_fields)
    return {**{k: v for k, v in document.items() if k in keep}, "review": reviews.review_state(decision_id)}


@endpoint(
    "POST",
    "/decisions/{decision_id}/replay",
    summary="Re-evaluate a recorded decision",
    tag="decisions",
    scopes=("read",),
    body=ReplayRequest,
    body_required=False,
    response=Replay,
    errors=(404, 409),
    transaction="service",
    params={"decision_id": DECISION},
)
def replay_decision(call: Call) -> dict[str, Any]:
    """Runs the recorded case again under exactly the recorded versions (or with `against`, NAME@N, in place of the
    recorded NAME) and reports whether the decision is identical, and every difference when it is not. Nothing
    is recorded. A record whose rules can no longer be loaded as stored is a 409, and so is an underwriter's override
    (no rules made it: replay the automated decision); `against` a document the decision did not use is a 422."""
    body: ReplayRequest = call.body
    return decisions.replay(call.params["decision_id"], against=body.against)


@endpoint(
    "POST",
    "/decisions/{decision_id}/review",
    summary="An underwriter decides a referred case (or overrides a decision)",
    tag="decisions",
    scopes=("decide",),
    body=ReviewRequest,
    response=Review,
    errors=(404, 409),
    alternate=(202,),
    transaction="write",
    params={"decision_id": DECISION},
)
def review_decision(call: Call) -> tuple[int, dict[str, Any]]:
    """Stored as an override record linked to the automated decision, in the audit chain: who, from, to, why.
    The key's user must hold the underwriter role.

    Any term more favourable to the borrower than the rules gave (approving a decline, a higher limit, a lower
    rate, dropping a condition) needs a second underwriter: the first review answers 202 `awaiting-confirmation`;
    a different underwriter sending the same review confirms it (200 `effective`), and its author may revise it
    meanwhile. Another underwriter sending different terms is a 409. Only an application's newest decision can be
    reviewed (409 `superseded` otherwise). Once effective, the application's status follows the reviewed
    outcome."""
    result = reviews.review(call.params["decision_id"], call.body, call.username)
    return (200 if result["status"] == "effective" else 202), result


@endpoint(
    "GET",
    "/applications/{application_id}/status",
    summary="The borrower-facing status of an application",
    tag="decisions",
    scopes=("read", "decide"),
    response=ApplicationStatus,
    params={"application_id": APPLICATION},
    transaction="service",
)
def application_status(call: Call) -> dict[str, Any]:
    """`received` (recorded, not yet decided), `in-review` (referred to an underwriter, or an override awaiting its
    second underwriter) or `decided` with the outcome. Nothing internal: no score, reasons or rule names."""
    application_id = call.params["application_id"]
    found = reviews.application_status(application_id)
    if found is None:
        raise ApiError(404, "unknown-application", f"no decision was recorded for application '{application_id}'")
    return found


__all__ = ["application_status", "create_decision", "get_decision", "replay_decision", "review_decision"]
