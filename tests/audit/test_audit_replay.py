"""Replay: 1,000 recorded decisions re-run identically after 20 newer versions, and --against shows the change."""

from __future__ import annotations

import random
import time

import pytest

from tests.audit.audit_helpers import AS_OF, limits_version, publish, varied_case
from web.services.decisions import Caller, decide_and_record, replay
from web.services.errors import Refused

DECISIONS = 1000
NEWER = 20


def test_a_thousand_decisions_replay_identically_after_twenty_newer_versions(baseline: list) -> None:
    rng = random.Random(1000)
    caller = Caller("api_key", "replay-test")
    ids: list[str] = []
    large: str | None = None
    started = time.perf_counter()
    for i in range(DECISIONS):
        policy = "project-finance" if i % 3 else "corporate-term-loan"
        case = varied_case(rng, i)
        # Some decisions take today's date (stored, so replay never depends on the day it runs), most a fixed one.
        answer = decide_and_record(policy, case, caller=caller, as_of=None if i % 10 == 0 else AS_OF)
        ids.append(answer["decision_id"])
        if large is None and policy == "project-finance" and case["application"]["amount"] > 300_000_000:
            large = answer["decision_id"]
    recorded = time.perf_counter() - started

    refs = [publish(limits_version(k)) for k in range(2, 2 + NEWER)]
    assert refs[-1] == f"limits-pricing@{NEWER + 1}"

    started = time.perf_counter()
    results = [replay(decision_id) for decision_id in ids]
    replayed = time.perf_counter() - started
    different = [r for r in results if not r["identical"]]
    assert different == [], different[:3]
    assert sum(r["identical"] for r in results) == DECISIONS
    print(f"\nrecorded {DECISIONS} decisions at {DECISIONS / recorded:.0f}/s; replayed at {DECISIONS / replayed:.0f}/s")

    # What the newest version would have decided for a large project loan: its syndication condition appears.
    assert large is not None
    against = replay(large, f"limits-pricing@{NEWER + 1}")
    assert against["identical"] is False and against["against"] == f"limits-pricing@{NEWER + 1}"
    paths = {d["path"] for d in against["differences"]}
    assert any(p.startswith("$.conditions") for p in paths)
    assert any(p.startswith("$.rulesets") for p in paths)  # the version and digest used differ too
    assert replay(large, "limits-pricing@1")["identical"] is True


def test_replay_refuses_versions_it_cannot_use(baseline: list) -> None:
    answer = decide_and_record("project-finance", varied_case(random.Random(1), 1), caller=Caller("cli", "me"))
    with pytest.raises(Refused) as unknown:
        replay(answer["decision_id"], "limits-pricing@9")
    assert unknown.value.http_status == 404
    with pytest.raises(Refused) as bad:
        replay(answer["decision_id"], "limits-pricing")
    assert bad.value.code == "bad-reference"
    with pytest.raises(Refused) as unused:
        replay(answer["decision_id"], "no-such-ruleset@1")
    assert unused.value.http_status == 404
