"""The version lifecycle and its four-eyes refusals, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pony import orm

from audit.db import db
from audit.governance import GovernanceEvent, verify_chain
from engine.documents import digest_of
from engine.library import REPO
from web.models import RulesState, RuleVersion
from web.services import rules
from web.services.active import ACTIVE
from web.services.errors import Refused

LIMITS = (REPO / "rulesets" / "limits-pricing.yaml").read_text(encoding="utf-8")
CASE = json.loads((REPO / "examples" / "approve-energy.json").read_text(encoding="utf-8"))
AS_OF = dt.date(2026, 6, 30)


def variant(*replacements: tuple[str, str], text: str = LIMITS) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# A change every test still passes: only the description.
BENIGN = variant(("Dynamic credit limits,", "Dynamic credit limits (revised),"))
# Tier A's spread raised: its own test expects 60 bp, so it fails at submit.
OWN_TEST_FAILS = variant(("""- ["'A'", 60]""", """- ["'A'", 70]"""))
# The same raise with its own test updated: it passes alone but breaks both policies' tier-A tests.
POLICY_TESTS_FAIL = variant(
    ("""- ["'A'", 60]""", """- ["'A'", 70]"""),
    ("      rate_add_bps: 60\n      conditions:", "      rate_add_bps: 70\n      conditions:"),
)
INVALID = variant(("hit: first", "hit: firts"))


def events(subject: str) -> list[tuple[str, str]]:
    with orm.db_session:
        rows = orm.select(e for e in GovernanceEvent if e.subject == subject).order_by(GovernanceEvent.seq)
        return [(e.actor, e.action) for e in rows]


def generation() -> int:
    with orm.db_session:
        return RulesState[1].generation


def versions_used(decision: dict) -> set[tuple[str, int, str]]:
    docs = [*decision["rulesets"], decision["scorecard"], decision["policy"]]
    return {(d["name"], d["version"], d["digest"]) for d in docs}


def approved(text: str, author: str = "alice", approver: str = "bob") -> str:
    ref = rules.save_draft(text, author).ref
    rules.submit(ref, author)
    rules.approve(ref, approver)
    return ref


def test_system_import_makes_every_baseline_document_active_version_1(baseline: list) -> None:
    assert {v.ref for v in baseline} >= {"credo-facts@1", "limits-pricing@1", "project-finance@1"}
    assert all(v.status == "active" and v.author == "system" and v.approval_valid for v in baseline)
    assert generation() == 1
    assert events("limits-pricing@1") == [("system", "system-import")]
    with pytest.raises(Refused) as again:
        rules.import_documents([REPO / "rulesets"])
    assert again.value.code == "already-imported"


def test_the_whole_lifecycle(baseline: list, tmp_path: Path) -> None:
    before = ACTIVE.decide("project-finance", CASE, AS_OF)
    assert ("limits-pricing", 1, digest_of(LIMITS)) in versions_used(before)

    draft = rules.save_draft(BENIGN, "alice")
    assert (draft.ref, draft.status, draft.parent, draft.errors) == ("limits-pricing@2", "draft", "limits-pricing@1", 0)
    assert rules.submit(draft.ref, "alice").status == "submitted"
    approval = rules.approve(draft.ref, "bob")
    assert (approval.status, approval.approver, approval.approval_valid) == ("approved", "bob", True)
    assert generation() == 1  # nothing changes for decisions until the publish
    published = rules.publish(draft.ref, "bob")
    assert published.status == "active" and published.published_by == "bob"
    assert generation() == 2

    # v2 covers every date of v1, so v1 is retired in the same switch.
    assert rules.show("limits-pricing@1").status == "retired"
    assert rules.show("limits-pricing").ref == "limits-pricing@2"
    after = ACTIVE.decide("project-finance", CASE, AS_OF)
    assert ("limits-pricing", 2, digest_of(BENIGN)) in versions_used(after)
    assert (after["outcome"], after["limit"], after["rate"]) == (before["outcome"], before["limit"], before["rate"])

    assert events("limits-pricing@2") == [
        ("alice", "draft-saved"),
        ("alice", "submitted"),
        ("bob", "approved"),
        ("bob", "published"),
    ]
    assert events("limits-pricing@1")[-1] == ("bob", "retired")
    with orm.db_session:
        assert verify_chain() == []

    changed = [line for line in rules.diff("limits-pricing@1", "limits-pricing@2").splitlines() if line[:1] in "+-"]
    assert changed[2:] == [
        "-  Dynamic credit limits, risk-based pricing and approval conditions for corporate and",
        "+  Dynamic credit limits (revised), risk-based pricing and approval conditions for corporate and",
    ]

    written = rules.export(tmp_path)
    exported = tmp_path / "rulesets" / "limits-pricing.yaml"
    assert exported in written and digest_of(exported.read_text(encoding="utf-8")) == digest_of(BENIGN)
    assert (tmp_path / "policies" / "project-finance.yaml").exists()
    assert len(written) == len(baseline)


def test_self_approval_is_refused(baseline: list) -> None:
    ref = rules.save_draft(BENIGN, "dave").ref  # dave holds both author and approver
    rules.submit(ref, "dave")
    with pytest.raises(Refused) as caught:
        rules.approve(ref, "dave")
    assert caught.value.code == "four-eyes" and "dave wrote limits-pricing@2" in caught.value.message
    assert caught.value.http_status == 409
    assert rules.show(ref).status == "submitted"
    assert events(ref)[-1] == ("dave", "refused")  # the attempt is in the log too
    assert rules.approve(ref, "carol").status == "approved"


def test_an_editor_cannot_approve_and_approving_needs_the_role(baseline: list) -> None:
    ref = rules.save_draft(BENIGN, "alice").ref
    rules.edit_draft(ref, BENIGN.replace("(revised)", "(revised twice)"), "dave")
    rules.submit(ref, "alice")
    with pytest.raises(Refused) as editor:
        rules.approve(ref, "dave")
    assert editor.value.code == "four-eyes"
    with pytest.raises(Refused) as role:
        rules.approve(ref, "alice")
    assert (role.value.code, role.value.http_status) == ("missing-role", 403)


def test_an_edit_after_approval_voids_it(baseline: list) -> None:
    ref = approved(BENIGN)
    edited = rules.edit_draft(ref, BENIGN.replace("(revised)", "(revised again)"), "alice")
    assert (edited.status, edited.approver, edited.approval_valid) == ("draft", None, False)
    with pytest.raises(Refused) as caught:
        rules.publish(ref, "bob")
    assert caught.value.code == "not-approved" and "voids the approval" in caught.value.message
    assert ("alice", "draft-edited") in events(ref)

    # An edit that bypasses the service (straight into the table) voids it just the same: the digest is checked.
    rules.submit(ref, "alice")
    rules.approve(ref, "bob")
    with orm.db_session:
        db.execute(
            "UPDATE rule_version SET text = $text WHERE name = 'limits-pricing' AND number = 2", {"text": LIMITS}
        )
    with pytest.raises(Refused) as tampered:
        rules.publish(ref, "bob")
    assert tampered.value.code == "approval-void"
    assert rules.show("limits-pricing").ref == "limits-pricing@1"


def test_a_submit_with_failing_tests_is_refused(baseline: list) -> None:
    ref = rules.save_draft(OWN_TEST_FAILS, "alice").ref
    with pytest.raises(Refused) as caught:
        rules.submit(ref, "alice")
    assert caught.value.code == "tests-failed" and caught.value.http_status == 422
    assert any("tier A project loan is capped" in d and "rate_add_bps" in d for d in caught.value.details)
    assert rules.show(ref).status == "draft"


def test_an_invalid_draft_is_kept_with_its_problems_but_never_submitted(baseline: list) -> None:
    draft = rules.save_draft(INVALID, "alice")
    assert draft.status == "draft" and draft.errors >= 1
    assert any("firts" in p["message"] for p in draft.problems)
    with pytest.raises(Refused) as caught:
        rules.submit(draft.ref, "alice")
    assert caught.value.code == "invalid-draft" and caught.value.problems
    fixed = rules.edit_draft(draft.ref, BENIGN, "alice")
    assert fixed.errors == 0 and rules.submit(draft.ref, "alice").status == "submitted"


def test_publish_is_refused_when_a_dependent_policy_fails_its_tests(baseline: list) -> None:
    ref = approved(POLICY_TESTS_FAIL)  # its own tests pass, so submit and approve go through
    with pytest.raises(Refused) as caught:
        rules.publish(ref, "bob")
    assert caught.value.code == "dependent-tests-failed"
    failures = "\n".join(caught.value.details)
    assert "corporate-term-loan" in failures and "project-finance" in failures and "rate: expected" in failures
    assert rules.show(ref).status == "approved"
    assert rules.show("limits-pricing").ref == "limits-pricing@1" and generation() == 1


def test_rollback_takes_two_people(baseline: list) -> None:
    rules.publish(approved(BENIGN), "bob")
    assert rules.show("limits-pricing@1").status == "retired"

    asked = rules.rollback("limits-pricing@1", "alice")
    assert (asked.status, asked.rollback_requested_by) == ("retired", "alice")
    with pytest.raises(Refused) as same:
        rules.rollback("limits-pricing@1", "alice")
    assert same.value.code == "four-eyes"
    with pytest.raises(Refused) as role:
        rules.rollback("limits-pricing@1", "root")
    assert role.value.code == "missing-role"  # admins ask; only approvers confirm
    done = rules.rollback("limits-pricing@1", "bob")
    assert done.status == "active" and rules.show("limits-pricing@2").status == "retired"
    assert generation() == 3
    decision = ACTIVE.decide("project-finance", CASE, AS_OF)
    assert ("limits-pricing", 1, digest_of(LIMITS)) in versions_used(decision)
    assert events("limits-pricing@1")[-4:] == [
        ("alice", "rollback-requested"),
        ("alice", "refused"),
        ("root", "refused"),
        ("bob", "rolled-back"),
    ]
    with pytest.raises(Refused) as never:
        rules.rollback(rules.save_draft(BENIGN, "alice").ref, "bob")
    assert never.value.code == "never-published"


def test_the_same_text_is_not_saved_twice(baseline: list) -> None:
    with pytest.raises(Refused) as unchanged:
        rules.save_draft(LIMITS, "alice")  # the active version's text, saved without an edit
    assert unchanged.value.code == "unchanged" and "limits-pricing@1 (active)" in unchanged.value.message
    first = rules.save_draft(BENIGN, "alice")
    with pytest.raises(Refused) as twice:  # a double submit
        rules.save_draft(BENIGN, "alice")
    assert twice.value.code == "unchanged" and first.ref in twice.value.message
    assert [v.ref for v in rules.list_versions("limits-pricing")] == ["limits-pricing@1", first.ref]


def test_a_rollback_request_lapses_after_a_week(baseline: list) -> None:
    rules.publish(approved(BENIGN), "bob")
    rules.rollback("limits-pricing@1", "alice")

    def age_request(days: float) -> None:
        with orm.db_session:
            row = RuleVersion.get(name="limits-pricing", number=1)
            row.rollback_requested_at = rules.now() - dt.timedelta(days=days)

    age_request(6.9)  # still standing: shown as pending, and bob could confirm it
    assert rules.show("limits-pricing@1").rollback_requested_by == "alice"

    age_request(7.1)
    assert rules.show("limits-pricing@1").rollback_requested_by is None  # the console offers to ask anew
    renewed = rules.rollback("limits-pricing@1", "bob")  # bob's call does not confirm alice's lapsed request
    assert (renewed.status, renewed.rollback_requested_by) == ("retired", "bob")
    assert generation() == 2
    assert events("limits-pricing@1")[-2:] == [("bob", "rollback-request-lapsed"), ("bob", "rollback-requested")]
    with orm.db_session:
        lapsed = orm.select(
            e for e in GovernanceEvent if e.subject == "limits-pricing@1" and e.action == "rollback-request-lapsed"
        ).first()
        assert json.loads(lapsed.detail)["requested_by"] == "alice"

    done = rules.rollback("limits-pricing@1", "carol")
    assert done.status == "active" and done.rollback_requested_by is None and generation() == 3
    with orm.db_session:
        assert verify_chain() == []


def test_retire_is_refused_while_a_policy_needs_the_version(baseline: list) -> None:
    with pytest.raises(Refused) as caught:
        rules.retire("credo-facts@1", "bob")
    assert caught.value.code == "in-use" and any("credo-facts" in d for d in caught.value.details)
    assert rules.show("credo-facts@1").status == "active"
    withdrawn = rules.retire(rules.save_draft(BENIGN, "alice").ref, "bob")
    assert withdrawn.status == "retired" and generation() == 1  # a withdrawn draft never touched the active set


def test_active_versions_form_a_timeline_picked_by_business_date(baseline: list) -> None:
    later = variant(("effective_from: 2026-01-01", "effective_from: 2027-01-01"), text=BENIGN)
    rules.publish(approved(later), "bob")
    assert rules.show("limits-pricing@1").status == "active"  # v2 covers only 2027 on: both stay active
    this_year = versions_used(ACTIVE.decide("project-finance", CASE, dt.date(2026, 6, 30)))
    next_year = versions_used(ACTIVE.decide("project-finance", CASE, dt.date(2027, 3, 1)))
    assert ("limits-pricing", 1, digest_of(LIMITS)) in this_year
    assert ("limits-pricing", 2, digest_of(later)) in next_year
    with orm.db_session:
        assert orm.count(v for v in RuleVersion if v.name == "limits-pricing" and v.status == "active") == 2


def test_other_refusals_give_their_reason(baseline: list) -> None:
    with pytest.raises(Refused) as kind:
        rules.save_draft(LIMITS.replace("ruleset: limits-pricing", "policy: limits-pricing"), "alice")
    assert kind.value.code == "kind-mismatch"
    with pytest.raises(Refused) as nameless:
        rules.save_draft("just: text\n", "alice")
    assert nameless.value.code == "no-name"
    with pytest.raises(Refused) as published:
        rules.edit_draft("limits-pricing@1", BENIGN, "alice")
    assert published.value.code == "immutable"
    with pytest.raises(Refused) as unknown:
        rules.submit("limits-pricing@9", "alice")
    assert (unknown.value.code, unknown.value.http_status) == ("unknown-version", 404)
    with pytest.raises(Refused) as stranger:
        rules.save_draft(BENIGN, "mallory")
    assert stranger.value.code == "unknown-user"
    ref = approved(BENIGN)
    with pytest.raises(Refused) as author_publishes:
        rules.publish(ref, "alice")
    assert author_publishes.value.code == "missing-role"
