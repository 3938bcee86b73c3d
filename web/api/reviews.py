"""Underwriter reviews of automated decisions, and the borrower-facing status of an application.

A review turns an automated decision (usually a referral) into the underwriter's decision. Rules:

- the reviewer holds the underwriter role (checked on the key's user; 403 otherwise);
- an override record is only ever made of an automated decision, once: a second review of the same decision is
  a 409, and so is a review of an override record;
- only an application's newest decision can be reviewed: once a newer one is recorded for the same
  application_id, reviewing (or confirming a review of) an older one is a 409 naming the newer;
- four eyes: any term more favourable to the borrower than the rules gave (approving a decline, a higher limit,
  a lower rate, dropping a condition the rules set) needs a second underwriter. The first review is recorded as
  requested (governance log `override-requested`, 202); a *different* underwriter sending the same outcome and
  terms confirms it, and only then is the override appended to the decision chain. Terms that differ from the
  pending request are a 409 naming them; the underwriter who asked may revise the request instead (logged as
  `override-revised`), and a revision that needs no second pair of eyes takes effect at once;
- a decline carries no limit or rate; approving a case that had no automated limit or rate needs one;
- a stored application (application_id given as the customer store's id, digits without leading zeros) follows
  an effective review only when the decided case asked for that application's amount, tenor and product: an id
  mistyped by a calling system must not change another borrower's application.

Everything runs in the endpoint's one write transaction (BEGIN IMMEDIATE on SQLite; on PostgreSQL the review row
is locked): the override record, the review state and the stored idempotent answer commit together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pony import orm

from audit import overrides, store
from audit.chain import canonical, parse_utc
from audit.db import db
from audit.governance import now
from audit.governance import record as governance_record
from web.api.errors import ApiError
from web.api.framework import MAX_ID, utc
from web.api.schemas import ReviewRequest
from web.models import Application
from web.services.users import require_role

APPLICATION_STATUS = {"approve": "approved", "decline": "declined"}


def _review_row(decision_id: str) -> dict[str, Any] | None:
    rows = db.select(
        "SELECT status, proposal, proposed_by, proposed_at, confirmed_by, override_id FROM decision_review"
        " WHERE decision_id = $decision_id" + store.for_update(),
        {"decision_id": decision_id},
    )
    if not rows:
        return None
    status, proposal, proposed_by, proposed_at, confirmed_by, override_id = rows[0]
    return {
        "status": status,
        "proposal": json.loads(proposal),
        "proposed_by": proposed_by,
        "proposed_at": proposed_at,
        "confirmed_by": confirmed_by,
        "override_id": override_id,
    }


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _rate(value: Any) -> float | None:
    # Rates are compared and stored to 1e-10: 0.0515 typed in is the rules' 0.051500000000000004.
    return None if value is None else round(float(value), 10)


def _more_favourable(terms: Mapping[str, Any], automated: Mapping[str, Any]) -> list[str]:
    """What in `terms` favours the borrower over the automated decision: each needs a second underwriter.

    Compared exactly: the automated values are the recorded doubles, and any raise, however small, is a raise.
    """
    if terms["outcome"] == "decline":
        return []
    favoured = []
    if automated["outcome"] == "decline":
        favoured.append("outcome")
    limit, rate = terms["limit"], terms["rate"]
    if limit is not None and (automated["limit"] is None or limit > automated["limit"]):
        favoured.append("limit")
    if rate is not None and automated["rate"] is not None and rate < automated["rate"]:
        favoured.append("rate")
    if set(automated["conditions"]) - set(terms["conditions"]):
        favoured.append("conditions")
    return favoured


def _newest_of_application(original: Mapping[str, Any]) -> None:
    """409 unless the decision is its application's newest record: an older one no longer speaks for it."""
    application_id = original.get("application_id")
    if not application_id:
        return
    latest = overrides.latest_for_application(str(application_id))
    if latest is not None and latest["decision_id"] != original["decision_id"]:
        raise ApiError(
            409,
            "superseded",
            f"decision {original['decision_id']} is no longer the newest of application {application_id}: "
            f"review {latest['decision_id']} instead",
        )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _required(term: str) -> ApiError:
    """An approval of a case whose automated decision had no `term` must give one."""
    return ApiError(
        422,
        f"{term}-required",
        f"the automated decision had no {term}: an approval must give one",
        [{"path": f"$.{term}", "code": "required", "message": f"give the approved {term}"}],
    )


def _terms(body: ReviewRequest, automated: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome and terms the review asks for; what it leaves out keeps the automated value."""
    if body.outcome == "decline":
        given = [name for name in ("limit", "rate") if getattr(body, name) is not None]
        if given:
            raise ApiError(
                422,
                "decline-has-no-terms",
                "a decline carries no limit or rate",
                [{"path": f"$.{n}", "code": "not-allowed", "message": "leave it out for a decline"} for n in given],
            )
        return {"outcome": "decline", "limit": None, "rate": None, "conditions": list(body.conditions or [])}
    limit = body.limit if body.limit is not None else automated.get("limit")
    if limit is None:
        raise _required("limit")
    rate = _rate(body.rate if body.rate is not None else automated.get("rate"))
    if rate is None:
        raise _required("rate")
    conditions = body.conditions if body.conditions is not None else list(automated.get("conditions") or [])
    return {"outcome": "approve", "limit": _number(limit), "rate": _number(rate), "conditions": list(conditions)}


def review(decision_id: str, body: ReviewRequest, actor: str) -> dict[str, Any]:
    require_role(actor, "underwriter", doing="reviewing a decision")
    if store.dialect() == "postgresql":
        # Two first reviews of one decision would both find no review row; locking the decision's record (a lock,
        # not an update: its insert-only trigger does not fire) makes the second wait and then see the first.
        db.execute(
            "SELECT seq FROM decision_record WHERE decision_id = $decision_id FOR UPDATE", {"decision_id": decision_id}
        )
    original = overrides.load_row(decision_id)
    if original is None:
        raise ApiError(404, "unknown-decision", f"no decision {decision_id}")
    if overrides.is_override(original):
        raise ApiError(409, "is-override", f"{decision_id} is an override record: review the automated decision")
    decision = json.loads(str(original["decision"]))
    automated = {
        "outcome": original["outcome"],
        "limit": decision.get("limit"),
        "rate": _rate(decision.get("rate")),
        "conditions": list(decision.get("conditions") or []),
    }
    terms = _terms(body, automated)
    needs_two = bool(_more_favourable(terms, automated))
    state = _review_row(decision_id)
    stamp = now()
    proposal = {**terms, "reason": body.reason}
    if state is not None and state["status"] == "effective":
        raise ApiError(
            409, "already-reviewed", f"decision {decision_id} was already reviewed (override {state['override_id']})"
        )
    _newest_of_application(original)
    subject = f"decision:{decision_id}"
    by, confirmed_by, reason, kept = actor, None, body.reason, proposal
    if state is not None and actor == state["proposed_by"]:  # the underwriter who asked revises the request
        pending = state["proposal"]
        if all(pending.get(k) == terms.get(k) for k in ("outcome", "limit", "rate", "conditions")):
            raise ApiError(
                409,
                "needs-second-underwriter",
                f"{actor} requested this override; a different underwriter must confirm it",
            )
        old_terms = {k: pending.get(k) for k in ("outcome", "limit", "rate", "conditions")}
        governance_record(actor, "override-revised", subject, {"from": old_terms, "to": terms})
        if needs_two:
            db.execute(
                "UPDATE decision_review SET proposal = $proposal, proposed_at = $stamp, updated_at = $stamp"
                " WHERE decision_id = $decision_id",
                {"decision_id": decision_id, "proposal": canonical(proposal), "stamp": stamp},
            )
            return _answer(decision_id, "awaiting-confirmation", automated, terms, body.reason, actor, None, None, True)
    elif state is not None:  # a second underwriter confirms the pending request, with the same terms
        pending = state["proposal"]
        different = [k for k in ("outcome", "limit", "rate", "conditions") if pending.get(k) != terms.get(k)]
        if different:
            raise ApiError(
                409,
                "different-override-pending",
                f"an override with other terms awaits confirmation: {_listed(different)} "
                f"{'differs' if len(different) == 1 else 'differ'}; "
                "send the same outcome and terms to confirm it, or let its author revise it",
                [{"path": f"$.{k}", "code": "differs", "message": f"pending: {pending.get(k)!r}"} for k in different],
            )
        by, confirmed_by, reason, kept = state["proposed_by"], actor, pending["reason"], pending
    elif needs_two:
        db.execute(
            "INSERT INTO decision_review (decision_id, status, proposal, proposed_by, proposed_at, updated_at)"
            " VALUES ($decision_id, 'awaiting-confirmation', $proposal, $actor, $stamp, $stamp)",
            {"decision_id": decision_id, "proposal": canonical(proposal), "actor": actor, "stamp": stamp},
        )
        governance_record(actor, "override-requested", subject, {"from": automated, "to": terms})
        return _answer(decision_id, "awaiting-confirmation", automated, terms, body.reason, actor, None, None, True)
    appended = overrides.append_override(
        overrides.draft_override(
            original, decision, to=terms, reason=reason, by=by, confirmed_by=confirmed_by, actor=actor
        )
    )
    params = {
        "decision_id": decision_id,
        "proposal": canonical(kept),
        "by": by,
        "confirmed_by": confirmed_by,
        "override_id": appended.decision_id,
        "stamp": stamp,
    }
    if state is None:
        db.execute(
            "INSERT INTO decision_review (decision_id, status, proposal, proposed_by, proposed_at, confirmed_by,"
            " override_id, updated_at) VALUES ($decision_id, 'effective', $proposal, $by, $stamp, $confirmed_by,"
            " $override_id, $stamp)",
            params,
        )
    else:
        db.execute(
            "UPDATE decision_review SET status = 'effective', proposal = $proposal, proposed_by = $by,"
            " confirmed_by = $confirmed_by, override_id = $override_id, updated_at = $stamp"
            " WHERE decision_id = $decision_id",
            params,
        )
    status = _follow(original, terms["outcome"])
    return _answer(
        decision_id, "effective", automated, terms, reason, by, confirmed_by, appended.decision_id, needs_two, status
    )


def stored_id(application_id: str) -> int | None:
    """The customer store's application id an application_id names, if it can name one.

    Only the id as the store writes it (digits, no leading zero, 32 bits): "0008" is some other system's id.
    """
    if application_id.isascii() and application_id.isdigit() and len(application_id) <= 10:
        number = int(application_id)
        return number if 0 < number <= MAX_ID and str(number) == application_id else None
    return None


def _asked_for(stored: Application, case_application: Mapping[str, Any]) -> bool:
    """Whether the decided case asked for this stored application: the same amount, tenor and product."""
    return (
        case_application.get("amount") == stored.amount
        and case_application.get("tenor_months") == stored.tenor_months
        and case_application.get("product") == stored.product
    )


def _follow(original: Mapping[str, Any], outcome: str) -> dict[str, Any] | None:
    """The application's status follows an effective review; so does the stored application the case was for."""
    application_id = original.get("application_id")
    if not application_id:
        return None
    number = stored_id(str(application_id))
    if number is not None:
        stored = Application.get_for_update(id=number)
        case_application = json.loads(str(original["input"])).get("application") or {}
        followed = stored is not None and stored.status in ("requested", "approved", "declined")
        if followed and _asked_for(stored, case_application):
            stored.status = APPLICATION_STATUS[outcome]
    return {"application_id": application_id, "status": "decided", "outcome": outcome, "updated_at": utc(now())}


def _answer(
    decision_id: str,
    status: str,
    automated: Mapping[str, Any],
    terms: Mapping[str, Any],
    reason: str,
    by: str,
    confirmed_by: str | None,
    review_id: str | None,
    needs_two: bool,
    application_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "review_id": review_id,
        "decision_id": decision_id,
        "status": status,
        "outcome_from": automated["outcome"],
        "outcome_to": terms["outcome"],
        "limit_from": automated["limit"],
        "limit_to": terms["limit"],
        "rate_from": automated["rate"],
        "rate_to": terms["rate"],
        "conditions": list(terms["conditions"]),
        "reason": reason,
        "by": by,
        "confirmed_by": confirmed_by,
        "needs_confirmation": needs_two,
        "application_status": application_status,
    }


def review_state(decision_id: str) -> dict[str, Any] | None:
    """The review of a decision, for GET /decisions/{id}: its status, terms, who and the override's record id."""
    with orm.db_session:
        rows = db.select(
            "SELECT status, proposal, proposed_by, confirmed_by, override_id FROM decision_review"
            " WHERE decision_id = $decision_id",
            {"decision_id": decision_id},
        )
    if not rows:
        return None
    status, proposal, proposed_by, confirmed_by, override_id = rows[0]
    return {
        "status": status,
        **json.loads(proposal),
        "by": proposed_by,
        "confirmed_by": confirmed_by,
        "review_id": override_id,
    }


def application_status(application_id: str) -> dict[str, Any] | None:
    latest = overrides.latest_for_application(application_id)
    if latest is None:
        return _stored_application(application_id)
    updated = utc(parse_utc(str(latest["at"])))
    outcome = str(latest["outcome"])
    if overrides.is_override(latest):
        return {"application_id": application_id, "status": "decided", "outcome": outcome, "updated_at": updated}
    state = review_state(str(latest["decision_id"]))
    if outcome == "refer" or (state is not None and state["status"] == "awaiting-confirmation"):
        return {"application_id": application_id, "status": "in-review", "outcome": None, "updated_at": updated}
    return {"application_id": application_id, "status": "decided", "outcome": outcome, "updated_at": updated}


def _stored_application(application_id: str) -> dict[str, Any] | None:
    """An application in the customer store with no decision recorded yet: received."""
    number = stored_id(application_id)
    if number is None:
        return None
    with orm.db_session:
        stored = Application.get(id=number)
        if stored is None:
            return None
        if stored.status in APPLICATION_STATUS.values():
            outcome = "approve" if stored.status == "approved" else "decline"
            return {
                "application_id": application_id,
                "status": "decided",
                "outcome": outcome,
                "updated_at": utc(stored.created_at),
            }
        if stored.status == "withdrawn":
            return None
        return {
            "application_id": application_id,
            "status": "received",
            "outcome": None,
            "updated_at": utc(stored.created_at),
        }


__all__ = ["application_status", "review", "review_state"]
