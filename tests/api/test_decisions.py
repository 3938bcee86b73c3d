"""Decisions over HTTP: the answer, the record, `credo audit verify`, replay, reviews and the application status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from engine.library import REPO
from tests.api.conftest import Api, decision_request, read_case


def decide(api: Api, name: str, key: str = "decide", **extra: Any) -> dict[str, Any]:
    response = api.post("/decisions", key, json=decision_request(name, **extra))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_decision_is_complete_explained_and_recorded(api: Api) -> None:
    decision = decide(api, "approve-energy.json", application_id="APP-ENERGY")
    assert decision["outcome"] == "approve" and decision["tier"] == "A"
    assert decision["limit"] == 48000000  # whole amounts stay integers
    assert decision["policy"]["name"] == "project-finance" and decision["policy"]["version"] == 1
    assert decision["fired"] and all({"rule", "ruleset", "outputs", "because"} <= set(f) for f in decision["fired"])
    assert len(decision["decision_id"]) == 26
    record = api.get(f"/decisions/{decision['decision_id']}", "read").json()
    assert record["decision"]["outcome"] == "approve" and record["application_id"] == "APP-ENERGY"
    assert record["caller"]["kind"] == "api_key" and record["caller"]["id"].startswith("client-decide/credo_")
    # A reader without an unmasking role sees the borrower's name masked; an underwriter sees it.
    assert record["input"]["borrower"]["name"] == "***" and not record["unmasked"]
    shown = api.get(f"/decisions/{decision['decision_id']}", "underwriter1").json()
    assert shown["input"]["borrower"]["name"].startswith("Example") and shown["unmasked"]


def test_round_trip_audit_verify_and_replay(api: Api) -> None:
    ids = [decide(api, name)["decision_id"] for name in ("approve-energy.json", "decline-arrears.json")]
    ids.append(decide(api, "corporate-refer-decline-stage.json")["decision_id"])
    verify = subprocess.run(
        [sys.executable, "-m", "web.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": api.url},
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "decisions:" in verify.stdout and "intact" in verify.stdout
    for decision_id in ids:
        replay = api.post(f"/decisions/{decision_id}/replay", "read")
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"decision_id": decision_id, "identical": True, "differences": [], "against": None}
    against = api.post(f"/decisions/{ids[0]}/replay", "read", json={"against": "limits-pricing@1"})
    assert against.status_code == 200 and against.json()["against"] == "limits-pricing@1"
    unknown = api.post(f"/decisions/{ids[0]}/replay", "read", json={"against": "limits-pricing@99"})
    assert unknown.status_code == 404
    missing = api.get("/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV", "read")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown-decision"


def test_replay_refuses_an_override_and_a_document_the_decision_did_not_use(api: Api) -> None:
    corporate = decide(api, "corporate-approve.json")
    unused = api.post(f"/decisions/{corporate['decision_id']}/replay", "read", json={"against": "pf-eligibility@1"})
    assert unused.status_code == 422 and unused.json()["error"]["code"] == "not-used"
    referred = decide(api, "refer-thin-coverage.json")
    override = review(api, referred["decision_id"], "underwriter1", outcome="decline").json()["review_id"]
    answer = api.post(f"/decisions/{override}/replay", "read")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "is-override"
    assert referred["decision_id"] in answer.json()["error"]["message"]


def review(api: Api, decision_id: str, key: str, **body: Any) -> Any:
    return api.post(f"/decisions/{decision_id}/review", key, json={"reason": "reviewed", **body})


def test_an_underwriter_decides_a_referred_case(api: Api) -> None:
    application = f"APP-{uuid.uuid4().hex[:8]}"
    referred = decide(api, "refer-thin-coverage.json", application_id=application)
    assert referred["outcome"] == "refer"
    status = api.get(f"/applications/{application}/status", "decide").json()
    assert status["status"] == "in-review" and status["outcome"] is None
    assert set(status) == {"application_id", "status", "outcome", "updated_at"}  # nothing internal

    assert review(api, referred["decision_id"], "decide", outcome="approve").status_code == 403  # not an underwriter
    conditions = [*referred["conditions"], "Sponsor guarantee"]  # the rules' conditions, and one more
    done = review(api, referred["decision_id"], "underwriter1", outcome="approve", conditions=conditions)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["status"] == "effective" and not answer["needs_confirmation"]
    assert (answer["outcome_from"], answer["outcome_to"]) == ("refer", "approve")
    assert answer["limit_to"] == referred["limit"] and answer["by"] == "underwriter1"
    assert answer["conditions"] == conditions
    status = api.get(f"/applications/{application}/status", "read").json()
    assert (status["status"], status["outcome"]) == ("decided", "approve")
    # The override is a record of the same chain, linked to the automated decision.
    override = api.get(f"/decisions/{answer['review_id']}", "read").json()
    assert override["engine"] == "override" and override["input"]["override_of"] == referred["decision_id"]
    assert override["input"]["from"]["outcome"] == "refer" and override["input"]["to"]["outcome"] == "approve"
    assert override["input"]["reason"] == "reviewed" and override["caller"] == {"kind": "user", "id": "underwriter1"}
    assert override["seq"] > api.get(f"/decisions/{referred['decision_id']}", "read").json()["seq"]
    record = api.get(f"/decisions/{referred['decision_id']}", "read").json()
    assert record["review"]["status"] == "effective" and record["review"]["review_id"] == answer["review_id"]
    again = review(api, referred["decision_id"], "underwriter2", outcome="decline")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already-reviewed"
    assert review(api, answer["review_id"], "underwriter2", outcome="decline").status_code == 409


def test_overriding_a_decline_needs_a_second_underwriter(api: Api) -> None:
    application = f"APP-{uuid.uuid4().hex[:8]}"
    declined = decide(api, "decline-arrears.json", application_id=application)
    assert declined["outcome"] == "decline" and declined["limit"] is None
    no_limit = review(api, declined["decision_id"], "underwriter1", outcome="approve")
    assert no_limit.status_code == 422 and no_limit.json()["error"]["problems"][0]["path"] == "$.limit"
    first = review(api, declined["decision_id"], "underwriter1", outcome="approve", limit=5_000_000, rate=0.07)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "awaiting-confirmation" and first.json()["review_id"] is None
    status = api.get(f"/applications/{application}/status", "read").json()
    assert status["status"] == "in-review"
    same_person = review(api, declined["decision_id"], "underwriter1", outcome="approve", limit=5_000_000, rate=0.07)
    assert same_person.status_code == 409 and same_person.json()["error"]["code"] == "needs-second-underwriter"
    other_terms = review(api, declined["decision_id"], "underwriter2", outcome="approve", limit=9_000_000, rate=0.07)
    assert other_terms.status_code == 409
    assert [p["path"] for p in other_terms.json()["error"]["problems"]] == ["$.limit"]
    confirmed = review(api, declined["decision_id"], "underwriter2", outcome="approve", limit=5_000_000, rate=0.07)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert (body["by"], body["confirmed_by"], body["status"]) == ("underwriter1", "underwriter2", "effective")
    status = api.get(f"/applications/{application}/status", "read").json()
    assert (status["status"], status["outcome"]) == ("decided", "approve")


def test_raising_the_limit_needs_a_second_underwriter_lowering_does_not(api: Api) -> None:
    raised = decide(api, "refer-thin-coverage.json")
    answer = review(api, raised["decision_id"], "underwriter1", outcome="approve", limit=raised["limit"] * 2)
    assert answer.status_code == 202 and answer.json()["needs_confirmation"]
    lowered = decide(api, "refer-thin-coverage.json")
    answer = review(api, lowered["decision_id"], "underwriter1", outcome="approve", limit=lowered["limit"] / 2)
    assert answer.status_code == 200 and answer.json()["status"] == "effective"
    declined = decide(api, "refer-thin-coverage.json")
    answer = review(api, declined["decision_id"], "underwriter2", outcome="decline")
    assert answer.status_code == 200 and answer.json()["limit_to"] is None
    assert (
        review(
            api, decide(api, "refer-thin-coverage.json")["decision_id"], "underwriter2", outcome="decline", limit=1.0
        ).status_code
        == 422
    )


def test_a_lower_rate_or_a_dropped_condition_needs_a_second_underwriter(api: Api) -> None:
    cheaper = decide(api, "refer-thin-coverage.json")
    answer = review(api, cheaper["decision_id"], "underwriter1", outcome="approve", rate=0)
    assert answer.status_code == 202 and answer.json()["needs_confirmation"]
    looser = decide(api, "refer-thin-coverage.json")
    assert looser["conditions"]
    answer = review(api, looser["decision_id"], "underwriter1", outcome="approve", conditions=looser["conditions"][1:])
    assert answer.status_code == 202 and answer.json()["status"] == "awaiting-confirmation"
    tiny_raise = decide(api, "refer-thin-coverage.json")  # any raise is a raise: no tolerance to slip through
    answer = review(api, tiny_raise["decision_id"], "underwriter1", outcome="approve", limit=tiny_raise["limit"] + 1e-6)
    assert answer.status_code == 202
    dearer = decide(api, "refer-thin-coverage.json")  # stricter than the rules: one underwriter suffices
    answer = review(api, dearer["decision_id"], "underwriter1", outcome="approve", rate=dearer["rate"] + 0.01)
    assert answer.status_code == 200 and answer.json()["status"] == "effective"


def test_approving_a_decline_needs_a_rate_as_well_as_a_limit(api: Api) -> None:
    declined = decide(api, "decline-arrears.json")
    answer = review(api, declined["decision_id"], "underwriter1", outcome="approve", limit=1_000_000)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "rate-required"
    assert answer.json()["error"]["problems"][0]["path"] == "$.rate"


def test_the_underwriter_who_asked_can_revise_a_pending_override(api: Api) -> None:
    declined = decide(api, "decline-arrears.json")
    asked = review(api, declined["decision_id"], "underwriter1", outcome="approve", limit=5_000_000, rate=0.0)
    assert asked.status_code == 202
    revised = review(api, declined["decision_id"], "underwriter1", outcome="approve", limit=5_000_000, rate=0.07)
    assert revised.status_code == 202 and revised.json()["rate_to"] == 0.07
    stale = review(api, declined["decision_id"], "underwriter2", outcome="approve", limit=5_000_000, rate=0.0)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "different-override-pending"
    confirmed = review(api, declined["decision_id"], "underwriter2", outcome="approve", limit=5_000_000, rate=0.07)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed_by"] == "underwriter2"
    # A revision needing no second pair of eyes (here: keep the decline) takes effect at once.
    other = decide(api, "decline-arrears.json")
    assert review(api, other["decision_id"], "underwriter1", outcome="approve", limit=1.0, rate=0.1).status_code == 202
    kept = review(api, other["decision_id"], "underwriter1", outcome="decline")
    assert kept.status_code == 200 and kept.json()["status"] == "effective" and kept.json()["confirmed_by"] is None


def test_only_the_newest_decision_of_an_application_can_be_reviewed(api: Api) -> None:
    application = f"APP-{uuid.uuid4().hex[:8]}"
    referred = decide(api, "refer-thin-coverage.json", application_id=application)
    declined = decide(api, "decline-arrears.json", application_id=application)
    # Approving the older referral would overturn the newer decline with one underwriter.
    older = review(api, referred["decision_id"], "underwriter1", outcome="approve")
    assert older.status_code == 409 and older.json()["error"]["code"] == "superseded"
    assert declined["decision_id"] in older.json()["error"]["message"]
    status = api.get(f"/applications/{application}/status", "read").json()
    assert (status["status"], status["outcome"]) == ("decided", "decline")
    # A pending request on a decision that a newer one then supersedes cannot be confirmed either.
    other = f"APP-{uuid.uuid4().hex[:8]}"
    first = decide(api, "decline-arrears.json", application_id=other)
    terms = {"outcome": "approve", "limit": 1_000_000, "rate": 0.08}
    assert review(api, first["decision_id"], "underwriter1", **terms).status_code == 202
    decide(api, "refer-thin-coverage.json", application_id=other)
    late = review(api, first["decision_id"], "underwriter2", **terms)
    assert late.status_code == 409 and late.json()["error"]["code"] == "superseded"


def test_application_status_of_an_unknown_application_is_404(api: Api) -> None:
    response = api.get("/applications/NEVER-SEEN/status", "read")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown-application"


def test_a_stored_application_without_a_decision_is_received(api: Api) -> None:
    from pony import orm

    from web.models import Application

    with orm.db_session:
        stored = orm.select(a for a in Application if a.status == "requested").first()
        assert stored is not None
        application = str(stored.id)
    status = api.get(f"/applications/{application}/status", "read").json()
    assert status["status"] == "received" and status["outcome"] is None


def test_decisions_under_both_policies_validate_against_the_response_model(api: Api) -> None:
    from web.api.schemas import Decision

    for line in (REPO / "examples" / "book.jsonl").read_text(encoding="utf-8").splitlines()[:6]:
        case = json.loads(line)
        for policy in ("project-finance", "corporate-term-loan"):
            response = api.post("/decisions", "decide", json={"policy": policy, "case": case, "as_of": "2026-06-30"})
            assert response.status_code in (200, 422), response.text
            if response.status_code == 200:
                Decision.model_validate_json(response.content)


def test_a_stored_application_follows_its_review(api: Api) -> None:
    from pony import orm

    from web.models import Application

    with orm.db_session:
        stored = orm.select(a for a in Application if a.status == "requested").order_by(Application.id).first()
        assert stored is not None
        number = stored.id
        stored_terms = {"amount": stored.amount, "tenor_months": stored.tenor_months, "product": stored.product}
    referred = decide(api, "refer-thin-coverage.json", application_id=str(number), case=case_for(stored_terms))
    assert referred["outcome"] == "refer"
    assert api.get(f"/applications/{number}/status", "read").json()["status"] == "in-review"
    done = review(api, referred["decision_id"], "underwriter1", outcome="decline")
    assert done.status_code == 200 and done.json()["application_status"]["outcome"] == "decline"
    with orm.db_session:
        assert Application[number].status == "declined"
    status = api.get(f"/applications/{number}/status", "read").json()
    assert (status["status"], status["outcome"]) == ("decided", "decline")


def case_for(application: dict[str, Any], name: str = "refer-thin-coverage.json") -> dict[str, Any]:
    """An example case asking for these application terms."""
    case = read_case(name)
    case["application"].update(application)
    return case


def test_a_review_leaves_another_borrowers_stored_application_alone(api: Api) -> None:
    from pony import orm

    from web.models import Application

    with orm.db_session:
        stored = orm.select(a for a in Application if a.status == "requested").order_by(Application.id).first()
        assert stored is not None
        number, amount = stored.id, stored.amount
    # The calling system sends the store's id of some other borrower's application: the case asks for other terms.
    case = case_for({"amount": amount + 1_000_000})
    referred = decide(api, "refer-thin-coverage.json", application_id=str(number), case=case)
    done = review(api, referred["decision_id"], "underwriter1", outcome="decline")
    assert done.status_code == 200 and done.json()["application_status"]["outcome"] == "decline"
    with orm.db_session:
        assert Application[number].status == "requested"  # untouched
    # "0008" is not the store's way of writing 8: it names no stored application.
    assert api.get(f"/applications/0{number}/status", "read").status_code == 404
