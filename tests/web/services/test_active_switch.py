"""An atomic publish: decisions running in threads see the old set or the new one, never a mix, never a gap."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

from audit.db import db
from engine.library import REPO
from web.services import rules
from web.services.active import ACTIVE

CASE = json.loads((REPO / "examples" / "approve-energy.json").read_text(encoding="utf-8"))
AS_OF = dt.date(2026, 6, 30)
LIMITS = (REPO / "rulesets" / "limits-pricing.yaml").read_text(encoding="utf-8")
WARNINGS = (REPO / "rulesets" / "early-warning.yaml").read_text(encoding="utf-8")


def used(decision: dict) -> frozenset[tuple[str, int, str]]:
    docs = [*decision["rulesets"], decision["scorecard"], decision["policy"]]
    return frozenset((d["name"], d["version"], d["digest"]) for d in docs)


def test_publish_switches_atomically_while_eight_threads_decide(baseline: list) -> None:
    # Two changes, each published as one switch: the sets a decision may see are exactly S0, S1 and S2.
    limits_v2 = rules.save_draft(LIMITS.replace("Dynamic credit limits,", "Dynamic credit limits (v2),"), "alice").ref
    warnings_v2 = rules.save_draft(
        WARNINGS.replace("Early-warning triggers", "Early-warning triggers (v2)"), "alice"
    ).ref
    for ref in (limits_v2, warnings_v2):
        rules.submit(ref, "alice")
        rules.approve(ref, "bob")

    sets = [used(ACTIVE.decide("project-finance", CASE, AS_OF))]
    stop = threading.Event()
    seen: list[tuple[float, frozenset]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def decide_continuously() -> None:
        try:
            while not stop.is_set():
                started = time.monotonic()
                decision = ACTIVE.decide("project-finance", CASE, AS_OF)
                with lock:
                    seen.append((started, used(decision)))
        except Exception as exc:  # reported below: any failure is a gap in the switch
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            db.disconnect()  # this thread's connection

    threads = [threading.Thread(target=decide_continuously) for _ in range(8)]
    for t in threads:
        t.start()
    switched_at = []
    try:
        time.sleep(0.3)
        for ref in (limits_v2, warnings_v2):
            rules.publish(ref, "bob")
            switched_at.append(time.monotonic())
            sets.append(used(ACTIVE.decide("project-finance", CASE, AS_OF)))
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert errors == []
    assert len(set(sets)) == 3
    observed = {s for _, s in seen}
    assert observed <= set(sets), "a decision ran under a mix of versions"
    assert observed == set(sets)  # every set was really decided under while the threads ran
    # A decision that started after a publish returned runs under that publish's set or a later one.
    for started, s in seen:
        newest = sum(started > at for at in switched_at)
        assert sets.index(s) >= newest
    assert len(seen) > 30
