"""The durable_rules back-end: compiled plans must fire exactly what a brute-force three-valued evaluation says."""

from __future__ import annotations

import math
import operator
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import compiler
from engine.compiler import compile_plan
from engine.errors import CredoError, SourceSpan
from engine.plan import COMPARISONS, Activation, Atom, Branch, FieldRef, Plan, calc_tag, conclusion_tag
from engine.runtime import EngineFault, Network

Facts = Mapping[str, Mapping[str, object]]

_OPS: dict[str, Callable[[object, object], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


# --- helpers -------------------------------------------------------------------------------------------------------


def atom(fact: str, field: str, op: str, value: object = None, other: str | None = None) -> Atom:
    return Atom(FieldRef(fact, field), op, value, FieldRef(fact, other) if other else None)  # type: ignore[arg-type]


def rule(key: str, *branches: Sequence[Atom]) -> Activation:
    return Activation(key, 0, 0, tuple(Branch(tuple(b)) for b in branches))


def plan_of(*activations: Activation) -> Plan:
    return Plan("test", tuple(activations), ())


def _comparable(value: object) -> object:
    return float(value) if isinstance(value, bool | int) else value


def holds(a: Atom, asserted: Facts) -> bool:
    """Three-valued truth of one atom, collapsed to 'fires or not': unknown never fires."""
    fact = asserted.get(a.ref.fact)
    if fact is None:
        return False
    value = fact.get(a.ref.field)
    if a.op == "present":
        return value is not None
    if a.op == "missing":
        return value is None
    against = fact.get(a.other.field) if a.other is not None else a.value
    if value is None or against is None:
        return False
    return _OPS[a.op](_comparable(value), _comparable(against))


def expected(plan: Plan, asserted: Facts) -> set[str]:
    return {
        act.key
        for act in plan.activations
        if any(all(holds(a, asserted) for a in branch.atoms) for branch in act.branches)
    }


def decide(network: Network, *calls: Facts) -> list[set[str]]:
    with network.session() as session:
        return [session.assert_facts(facts) for facts in calls]


def check_calls(plan: Plan, network: Network, *calls: Facts) -> None:
    """Each call reports exactly what became true with it, nothing reported twice."""
    got = decide(network, *calls)
    asserted: dict[str, Mapping[str, object]] = {}
    seen: set[str] = set()
    for facts, fired in zip(calls, got, strict=True):
        asserted.update(facts)
        now = expected(plan, asserted)
        assert fired == now - seen, (facts, fired, now - seen)
        seen |= now


@pytest.fixture
def networks() -> Iterable[Callable[[Plan], Network]]:
    made: list[Network] = []

    def build(plan: Plan) -> Network:
        made.append(Network(compile_plan(plan)))
        return made[-1]

    yield build
    for network in made:
        network.close()


# --- atoms ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", COMPARISONS)
def test_each_comparison_on_numbers(op: str, networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(rule("R", [atom("f", "x", op, 5)]), rule("Rf", [atom("f", "x", op, 2.5)]))
    network = networks(plan)
    for x in (4, 5, 5.0, 6, 2.5, -1e20, 1e20, 1e-7, -0.0, 10**6, float("inf"), float("-inf"), None):
        check_calls(plan, network, {"f": {"x": x}})


STRINGS = ["", "a", "ab", "ab!", "ab ", "ab#", 'a"b', "a\\b", "a\nb", "B", "é", "z", "日本", "😀", "a b"]


def test_strings_compare_like_python(networks: Callable[[Plan], Network]) -> None:
    # The engine's strncmp reads past a value into the JSON around it: '"ab" < "ab!"' is false on raw text.
    activations = [
        rule(f"{op}:{i}", [atom("f", "s", op, constant)]) for op in COMPARISONS for i, constant in enumerate(STRINGS)
    ]
    plan = plan_of(*activations)
    network = networks(plan)
    for value in [*STRINGS, "ab!!", "a", None]:
        check_calls(plan, network, {"f": {"s": value}})


def test_booleans_compare_like_python_numbers(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        rule("is-true", [atom("f", "b", "==", True)]),
        rule("not-false", [atom("f", "b", "!=", False)]),
        rule("eq-one", [atom("f", "b", "==", 1)]),
        rule("gt-half", [atom("f", "b", ">", 0.5)]),
        rule("le-false", [atom("f", "b", "<=", False)]),
    )
    network = networks(plan)
    for value in (True, False, 1, 0, 0.5, None):
        check_calls(plan, network, {"f": {"b": value}})


def test_missing_field_makes_every_comparison_false(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(*(rule(op, [atom("f", "x", op, 1)]) for op in COMPARISONS), rule("other", [atom("f", "y", ">", 0)]))
    network = networks(plan)
    assert decide(network, {"f": {"y": 1, "x": None}}) == [{"other"}]  # `!=` included
    assert decide(network, {"f": {"y": 1}}) == [{"other"}]
    assert decide(network, {"f": {}}) == [set()]


def test_present_and_missing(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        rule("has-x", [atom("f", "x", "present")]),
        rule("no-x", [atom("f", "x", "missing")]),
        rule("no-x-big-y", [atom("f", "x", "missing"), atom("f", "y", ">", 3)]),
        rule("no-c", [atom(conclusion_tag("tier"), "value", "missing")]),
    )
    network = networks(plan)
    for facts in ({"f": {"x": 0}}, {"f": {"x": "s"}}, {"f": {"y": 4}}, {"f": {"x": None, "y": 2}}, {"f": {}}):
        check_calls(plan, network, facts, {conclusion_tag("tier"): {}})
    # A fact that was never asserted is not "missing" anything: every declared fact must be asserted.
    assert decide(network, {}) == [set()]


def test_same_fact_field_comparison(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        *(rule(f"x{op}y", [atom("f", "x", op, other="y")]) for op in COMPARISONS),
        rule("s<t", [atom("f", "s", "<", other="t")]),
        rule("x>y>1", [atom("f", "x", ">", other="y"), atom("f", "y", ">", 1)]),
    )
    network = networks(plan)
    for x, y in ((1, 2), (2, 1), (2, 2), (None, 1), (1, None), (None, None), (True, 0)):
        check_calls(plan, network, {"f": {"x": x, "y": y}})
    for s, t in (("ab", "ab!"), ("b", "a"), ("", "a"), ("a", None)):
        check_calls(plan, network, {"f": {"s": s, "t": t}})


def test_number_encoding_round_trips(networks: Callable[[Plan], Network]) -> None:
    # json.dumps writes 1e+20, which the engine's scanner reads as the integer 1 (and then crashes).
    values = [1e20, -1e20, 1e-7, 1.5e-7, 1e300, -1e-300, 0.1 + 0.2, 2**53 + 1, 123456789.123456789, float("inf")]
    plan = plan_of(*(rule(f"eq{i}", [atom("f", "x", "==", v)]) for i, v in enumerate(values)))
    network = networks(plan)
    for i, value in enumerate(values):
        assert decide(network, {"f": {"x": value}}) == [expected(plan, {"f": {"x": value}})]
        assert f"eq{i}" in decide(network, {"f": {"x": float(value)}})[0]


def test_invalid_values_are_rejected_before_the_engine(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(rule("num", [atom("f", "x", ">", 1)]), rule("str", [atom("f", "s", "==", "a")]))
    network = networks(plan)
    with network.session() as session:
        with pytest.raises(ValueError):
            session.assert_facts({"f": {"x": float("nan")}})
        with pytest.raises(TypeError):
            session.assert_facts({"f": {"x": "2"}})  # "2" > 1 would compare as text in the engine
        with pytest.raises(TypeError):
            session.assert_facts({"f": {"s": 3}})
        with pytest.raises(TypeError):
            session.assert_facts({"f": {"x": [1]}})
        # Nothing was asserted by the failed calls: the session goes on.
        assert session.assert_facts({"f": {"x": 2, "s": "a"}}) == {"num", "str"}
        with pytest.raises(ValueError, match="already asserted"):
            session.assert_facts({"f": {"x": 3}})


# --- branches, joins, calls ----------------------------------------------------------------------------------------


def test_join_across_facts(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        rule("AB", [atom("a", "x", ">", 1), atom("b", "y", "==", "k")]),
        rule("ABC", [atom("a", "x", ">", 0), atom("b", "y", "present"), atom("c", "z", "<", 0)]),
    )
    network = networks(plan)
    check_calls(plan, network, {"a": {"x": 2}, "b": {"y": "k"}, "c": {"z": -1}})
    check_calls(plan, network, {"a": {"x": 2}, "b": {"y": "j"}, "c": {"z": 1}})
    check_calls(plan, network, {"a": {"x": 0}, "b": {"y": "k"}, "c": {"z": -1}})
    check_calls(plan, network, {"a": {"x": 2}}, {"b": {"y": "k"}}, {"c": {"z": -5}})


def test_branch_without_atoms_is_always_true(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        rule("always", []), rule("row-dash", [], [atom("f", "x", ">", 0)]), rule("x", [atom("f", "x", ">", 0)])
    )
    network = networks(plan)
    assert decide(network, {}, {"f": {"x": 1}}) == [{"always", "row-dash"}, {"x"}]
    assert decide(network, {"f": {"x": 1}}) == [{"always", "row-dash", "x"}]  # every decision, once
    # Such branches never reach the engine: a plan of nothing else needs no ruleset at all.
    assert compile_plan(plan).always == ("always", "row-dash")
    only = networks(plan_of(rule("always", []), rule("also", [], [])))
    assert only.partition_count == 0
    assert decide(only, {}, {"f": {"x": 1}}) == [{"always", "also"}, set()]


def test_dnf_branches_report_each_key_once(networks: Callable[[Plan], Network]) -> None:
    # `x in [1, 2]` and `x > 0 or y > 0`: several true branches are one firing.
    plan = plan_of(
        rule("in", [atom("f", "x", "==", 1)], [atom("f", "x", "==", 2)], [atom("f", "x", ">=", 1)]),
        rule("or", [atom("f", "x", ">", 0)], [atom("f", "y", ">", 0)], [atom("g", "z", "present")]),
        rule("same-as-in", [atom("f", "x", "==", 1)]),
    )
    compiled = compile_plan(plan)
    shared = [keys for p in compiled.partitions for _, keys in p.rules if len(keys) > 1]
    assert shared == [("in", "same-as-in")]  # identical branches share one engine rule
    origins = {origin for p in compiled.partitions for _, found in p.origins for origin in found}
    assert {("in", 1), ("same-as-in", 1), ("in", 3), ("or", 3)} <= origins
    network = networks(plan)
    assert decide(network, {"f": {"x": 1, "y": 1}, "g": {"z": 0}}) == [{"in", "or", "same-as-in"}]
    check_calls(plan, network, {"f": {"x": 2}}, {"g": {"z": 1}})


def test_conclusion_asserted_later_joins_earlier_facts(networks: Callable[[Plan], Network]) -> None:
    tier = conclusion_tag("tier")
    calc = calc_tag(1)
    plan = plan_of(
        rule("big", [atom("app", "amount", ">", 100)]),
        rule("tier-ab-big", [atom(tier, "value", "<=", "B"), atom("app", "amount", ">", 100)]),
        rule("tier-missing", [atom(tier, "value", "missing")]),
        rule("calc", [atom(calc, "v0", ">", 0), atom("app", "amount", "present")]),
    )
    network = networks(plan)
    assert decide(network, {"app": {"amount": 150}}, {tier: {"value": "A"}}, {calc: {"v0": 1.5}}) == [
        {"big"},
        {"tier-ab-big"},
        {"calc"},
    ]
    assert decide(network, {"app": {"amount": 150}}, {tier: {}}) == [{"big"}, {"tier-missing"}]
    check_calls(plan, network, {"app": {"amount": 50}}, {tier: {"value": "A"}})


def test_decisions_are_isolated(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(
        rule("AB", [atom("a", "x", ">", 0), atom("b", "y", ">", 0)]),
        rule("A", [atom("a", "x", ">", 0)]),
        rule("B-missing", [atom("b", "y", "missing")]),
    )
    network = networks(plan)
    assert decide(network, {"a": {"x": 1}, "b": {"y": 1}}) == [{"AB", "A"}]
    assert decide(network, {"b": {"y": 1}}) == [set()]  # yesterday's `a` is gone
    assert decide(network, {"a": {"x": 1}}) == [{"A"}]
    assert decide(network, {"b": {}}) == [{"B-missing"}]
    # The same facts in consecutive decisions (same ids modulo parity) fire every time.
    for _ in range(4):
        assert decide(network, {"a": {"x": 1}, "b": {"y": 1}}) == [{"AB", "A"}]


def test_an_exception_inside_a_decision_still_retracts(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(rule("AB", [atom("a", "x", ">", 0), atom("b", "y", ">", 0)]))
    network = networks(plan)
    with pytest.raises(KeyError), network.session() as session:
        session.assert_facts({"a": {"x": 1}})
        raise KeyError("caller failed")
    assert decide(network, {"b": {"y": 1}}) == [set()]


def test_sessions_are_guarded(networks: Callable[[Plan], Network]) -> None:
    plan = plan_of(rule("A", [atom("a", "x", ">", 0)]))
    network = networks(plan)
    other = networks(plan)
    with network.session() as session:
        with pytest.raises(RuntimeError), network.session():
            pass
        assert decide(other, {"a": {"x": 1}}) == [{"A"}]  # another network in the same thread is fine
        assert session.assert_facts({"a": {"x": 1}}) == {"A"}
    with pytest.raises(RuntimeError):
        session.assert_facts({"a": {"x": 1}})
    network.close()
    network.close()
    with pytest.raises(RuntimeError), network.session():
        pass


# --- limits --------------------------------------------------------------------------------------------------------


def _random_policy(rng: random.Random, count: int) -> tuple[Plan, dict[str, list[str]]]:
    tags = {f"t{i}": [f"f{j}" for j in range(5)] for i in range(4)}
    activations = []
    for number in range(count):
        branches = []
        for _ in range(1 if rng.random() < 0.9 else 2):
            atoms = []
            for _ in range(rng.randint(1, 4)):
                tag = rng.choice(list(tags))
                op = rng.choice([">", ">=", "<", "<=", ">", "<", "==", "!="])
                atoms.append(atom(tag, rng.choice(tags[tag]), op, float(rng.randint(0, 20))))
            branches.append(atoms)
        activations.append(rule(f"R{number}", *branches))
    return plan_of(*activations), tags


def _random_case(rng: random.Random, tags: Mapping[str, Sequence[str]]) -> dict[str, dict[str, object]]:
    return {
        tag: {name: (float(rng.randint(-1, 21)) if rng.random() < 0.9 else None) for name in fields}
        for tag, fields in tags.items()
    }


def test_thousand_rule_policy_never_overflows_the_engine(networks: Callable[[Plan], Network]) -> None:
    rng = random.Random(1000)
    plan, tags = _random_policy(rng, 1000)
    compiled = compile_plan(plan)
    assert len(compiled.partitions) > 1
    assert all(p.max_true_alpha <= compiler.MAX_TRUE_ALPHA for p in compiled.partitions)
    network = networks(plan)
    many = 0
    for _ in range(200):
        case = _random_case(rng, tags)
        fired = decide(network, case)[0]
        assert fired == expected(plan, case)
        many = max(many, len(fired))
    assert many > 100  # many rules true at once: without partitions this is error 303


def _full_bound(node: compiler._Node) -> int:
    """The packer's alpha-node bound recomputed from scratch, children first (the definition `_Node.refresh` keeps
    up to date incrementally)."""
    total = 1
    by_prop: dict[str, list[tuple[compiler._Node, int]]] = {}
    for child in node.children.values():
        assert child.test is not None
        if child.test.op in ("m", "join"):
            total += _full_bound(child)
        else:
            by_prop.setdefault(child.test.prop, []).append((child, _full_bound(child)))
    for kids in by_prop.values():
        absent = sum(b for k, b in kids if k.test is not None and k.test.op == "nex")
        present = sum(b for k, b in kids if k.test is not None and k.test.op == "ex")
        compared = [(k, b) for k, b in kids if k.test is not None and k.test.op not in ("nex", "ex")]
        if compared:
            best = 0
            for value in sorted({k.test.value for k, _ in compared}):  # type: ignore[union-attr,type-var]
                for probe in (value, _nudge(value, -1), _nudge(value, 1)):
                    held = sum(b for k, b in compared if _OPS[_op(k)](probe, k.test.value))  # type: ignore[union-attr]
                    best = max(best, held)
            present += best
        total += max(absent, present)
    return total


def _op(node: compiler._Node) -> str:
    assert node.test is not None
    return node.test.op


def _nudge(value: object, direction: int) -> object:
    """A value just beside `value` (strings: just after it, or the empty string before it)."""
    if isinstance(value, float):
        return math.nextafter(value, math.inf * direction)
    assert isinstance(value, str)
    return value + "\0" if direction > 0 else ""


def test_the_packers_incremental_bounds_equal_a_full_recount(monkeypatch: pytest.MonkeyPatch) -> None:
    models: list[compiler._PartitionModel] = []
    calls = 0
    original = compiler._PartitionModel.try_add

    def checked(self: compiler._PartitionModel, rule: compiler._Rule) -> str | None:
        nonlocal calls
        if self not in models:
            models.append(self)
        reason = original(self, rule)
        calls += 1
        if calls % 97 == 0:  # a sample as it goes (accepted and rolled-back additions alike), everything at the end
            assert all(root.bound == _full_bound(root) for root in self.roots.values())
        return reason

    monkeypatch.setattr(compiler._PartitionModel, "try_add", checked)
    plan, _ = _random_policy(random.Random(1000), 1000)
    compile_plan(plan)
    assert calls > len(plan.activations) and len(models) > 2
    for model in models:
        assert all(root.bound == _full_bound(root) for root in model.roots.values())


def test_wide_alpha_nodes_and_shared_conditions_are_split(networks: Callable[[Plan], Network]) -> None:
    # 600 children on one node would hang create_ruleset; 300 rules ending on one node is error 108.
    sectors = [rule(f"S{i}", [atom("b", "sector", "==", f"s{i}")]) for i in range(600)]
    joins = [rule(f"J{i}", [atom("a", "x", ">", 0), atom("c", "k", "==", float(i))]) for i in range(300)]
    plan = plan_of(*sectors, *joins)
    compiled = compile_plan(plan)
    assert len(compiled.partitions) >= 3
    network = networks(plan)
    assert decide(network, {"b": {"sector": "s599"}, "a": {"x": 1}, "c": {"k": 299.0}}) == [{"S599", "J299"}]
    assert decide(network, {"b": {"sector": "s0"}, "a": {"x": 0}, "c": {"k": 1.0}}) == [{"S0"}]


def test_engine_fault_resets_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(*(rule(f"R{i}", [atom("f", "x", ">", float(i))]) for i in range(70)))
    split = compile_plan(plan)
    assert len(split.partitions) >= 2
    safe = Network(split)
    try:
        assert decide(safe, {"f": {"x": 1000}}) == [{f"R{i}" for i in range(70)}]
    finally:
        safe.close()

    # Lift the compiler's guard: one fact now satisfies 71 alpha tests, which is error 303 at run time.
    monkeypatch.setattr(compiler, "MAX_TRUE_ALPHA", 10_000)
    unsafe = compile_plan(plan)
    assert len(unsafe.partitions) == 1
    network = Network(unsafe)
    try:
        with network.session() as session:
            with pytest.raises(EngineFault) as fault:
                session.assert_facts({"f": {"x": 1000}})
            assert fault.value.code == 303
            with pytest.raises(EngineFault):
                session.assert_facts({"g": {}})
        assert decide(network, {"f": {"x": 3}}) == [{"R0", "R1", "R2"}]
        with pytest.raises(EngineFault), network.session() as session:
            session.assert_facts({"f": {"x": 1000}})
        assert decide(network, {"f": {"x": 1.5}}, {}) == [{"R0", "R1"}, set()]
    finally:
        network.close()


def _problems(plan: Plan, spans: Mapping[str, SourceSpan] | None = None) -> list[tuple[str, str, SourceSpan]]:
    with pytest.raises(CredoError) as error:
        compile_plan(plan, spans)
    return [(p.code, p.message, p.span) for p in error.value.problems]


def test_engine_limits_are_compile_problems() -> None:
    too_many_tests = rule("LONG", [atom("f", f"x{i}", ">", 0) for i in range(compiler.MAX_PATTERN_TESTS)])
    too_many_facts = rule("WIDE", [atom(f"t{i}", "x", ">", 0) for i in range(17)])
    too_many_fields = [rule(f"F{i}", [atom("g", f"y{i}", ">", 0)]) for i in range(251)]
    spans = {"LONG": SourceSpan("p.yaml", 3, 5), "WIDE": SourceSpan("p.yaml", 9, 5), "F250": SourceSpan("q.yaml", 1, 1)}
    problems = _problems(plan_of(too_many_tests, too_many_facts, *too_many_fields), spans)
    assert {code for code, _, _ in problems} == {"engine-limit"}
    by_span = {span: message for _, message, span in problems}
    assert len(problems) == 3
    assert "per-pattern expression cap is 31 (over by 1)" in by_span[spans["LONG"]]
    assert "joins 17 facts" in by_span[spans["WIDE"]] and "over by 1" in by_span[spans["WIDE"]]
    assert "253 properties" in by_span[spans["F250"]] and "over by 1" in by_span[spans["F250"]]


def test_limits_hold_at_the_boundary(networks: Callable[[Plan], Network]) -> None:
    # 250 fields + t + d fit exactly; the engine would silently drop a fact with one more.
    wide = [rule(f"F{i}", [atom("g", f"y{i}", ">", 0)]) for i in range(250)]
    joined = rule("J16", [atom(f"t{i:02}", "x", ">", 0) for i in range(16)])
    longest = rule("L", [atom("h", f"x{i}", ">", 0) for i in range(compiler.MAX_PATTERN_TESTS - 1)])
    plan = plan_of(*wide, joined, longest)
    network = networks(plan)
    facts: dict[str, dict[str, object]] = {"g": {f"y{i}": 1 for i in range(250)}}
    facts.update({f"t{i:02}": {"x": 1} for i in range(16)})
    facts["h"] = {f"x{i}": 1 for i in range(30)}
    assert decide(network, facts) == [{*(f"F{i}" for i in range(250)), "J16", "L"}]


def test_unsupported_plans_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        compile_plan(plan_of(rule("R", [atom("f", "x", "~", 1)])))
    with pytest.raises(ValueError):
        compile_plan(plan_of(rule("R", [atom("f", "x", "==", 1)]), rule("S", [atom("f", "x", "==", "a")])))
    with pytest.raises(ValueError):
        compile_plan(plan_of(rule("R", [Atom(FieldRef("f", "x"), "<", None, FieldRef("g", "y"))])))
    with pytest.raises(ValueError):
        compile_plan(plan_of(rule("R", [atom("f", "x", "<", float("nan"))])))


# --- processes and threads -----------------------------------------------------------------------------------------


def _forty(rng: random.Random) -> tuple[Plan, dict[str, list[str]]]:
    return _random_policy(rng, 40)


def test_threads_never_see_each_others_facts(networks: Callable[[Plan], Network]) -> None:
    rng = random.Random(8)
    plan, tags = _forty(rng)
    network = networks(plan)
    cases = [[_random_case(rng, tags) for _ in range(200)] for _ in range(8)]
    failures: list[str] = []

    def work(mine: list[dict[str, dict[str, object]]]) -> None:
        try:
            for case in mine:
                first = {tag: case[tag] for tag in list(case)[:2]}
                rest = {tag: case[tag] for tag in list(case)[2:]}
                got = decide(network, first, rest)
                if got[0] | got[1] != expected(plan, case) or got[0] != expected(plan, first):
                    failures.append(f"{case}: {got}")
        except Exception as error:  # reported below, not lost in a thread
            failures.append(repr(error))

    threads = [threading.Thread(target=work, args=(mine,)) for mine in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_thousands_of_sequential_decisions(networks: Callable[[Plan], Network]) -> None:
    # One reused session per ruleset: the engine's 1,024-session cap never comes into play.
    rng = random.Random(5000)
    plan, tags = _forty(rng)
    network = networks(plan)
    cases = [_random_case(rng, tags) for _ in range(50)]
    wanted = [expected(plan, case) for case in cases]
    for number in range(5000):
        assert decide(network, cases[number % 50]) == [wanted[number % 50]]


def test_fork_after_building(networks: Callable[[Plan], Network]) -> None:
    rng = random.Random(2)
    plan, tags = _forty(rng)
    network = networks(plan)
    cases = [_random_case(rng, tags) for _ in range(100)]
    assert decide(network, cases[0]) == [expected(plan, cases[0])]
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            status = 0 if all(decide(network, case) == [expected(plan, case)] for case in cases) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert decide(network, cases[1]) == [expected(plan, cases[1])]


# --- property: random small plans ----------------------------------------------------------------------------------

NUMBERS = st.sampled_from([-2.0, -1, 0, 0.5, 1, 2, 3.25, 1e20, 1e-7, True, False])
TEXTS = st.one_of(st.sampled_from(["", "a", "ab", "ab!", "b", "é", "a b", 'q"']), st.text(max_size=3))


@st.composite
def plans_and_cases(draw: st.DrawFn) -> tuple[Plan, list[list[dict[str, dict[str, object]]]]]:
    tags = [f"tag{i}" for i in range(draw(st.integers(2, 3)))]
    fields = {
        tag: {f"{tag}_f{j}": draw(st.sampled_from(["num", "str"])) for j in range(draw(st.integers(1, 4)))}
        for tag in tags
    }

    def constant(kind: str) -> st.SearchStrategy[object]:
        return NUMBERS if kind == "num" else TEXTS

    @st.composite
    def atoms(draw: st.DrawFn) -> Atom:
        tag = draw(st.sampled_from(tags))
        name, kind = draw(st.sampled_from(sorted(fields[tag].items())))
        op = draw(st.sampled_from([*COMPARISONS, "present", "missing", "other"]))
        if op in ("present", "missing"):
            return atom(tag, name, op)
        if op == "other":
            peers = sorted(n for n, k in fields[tag].items() if k == kind)
            return atom(tag, name, draw(st.sampled_from(COMPARISONS)), other=draw(st.sampled_from(peers)))
        return atom(tag, name, op, draw(constant(kind)))

    activations = [
        rule(f"R{i}", *draw(st.lists(st.lists(atoms(), max_size=4), min_size=1, max_size=3)))
        for i in range(draw(st.integers(1, 8)))
    ]

    def case() -> list[dict[str, dict[str, object]]]:
        facts = {
            tag: {name: draw(st.one_of(st.none(), constant(kind))) for name, kind in fields[tag].items()}
            for tag in tags
            if draw(st.booleans()) or tag != tags[-1]
        }
        split = draw(st.integers(0, len(facts)))
        items = list(facts.items())
        return [dict(items[:split]), dict(items[split:])]

    return plan_of(*activations), [case() for _ in range(4)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans_and_cases())
def test_random_plans_match_brute_force(example: tuple[Plan, list[list[dict[str, dict[str, object]]]]]) -> None:
    plan, cases = example
    network = Network(compile_plan(plan))
    try:
        for calls in cases:
            check_calls(plan, network, *calls)
    finally:
        network.close()
