"""Evaluating a compiled unit on one case: the flow of design section 7.

validate → derive → scorecard → strata (match, then combine) → decision.

Matching is the back-end's job: the durable_rules network (`engine="rete"`,
the default) or the reference interpreter (`engine="reference"`), which walks
the conditions directly with three-valued logic. Everything else is shared, so
the two can be compared decision for decision.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import CredoError, Problem
from engine.outputs import DECISIONS
from engine.policy import VARIES, Activation, CompiledPolicy, Emit, ScoreBin, ScoreCharacteristic
from engine.texts import format_number
from engine.values import json_number, json_value

ENGINE_VERSION = "credo-engine/1"
_EMPTY: Mapping[str, Any] = {}


class EvaluationError(Exception):
    """A failure while evaluating a valid case; the policy's on_error decides the outcome."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def prepare(unit: CompiledPolicy, case: object, allow_conclusions: bool = False) -> tuple[dict, dict]:
    """Validate and derive: the facts every back-end starts from, and the conclusions a test may set."""
    facts, given = unit.validator.validate(case, allow_conclusions)
    for fact, name, fn in unit.derived:
        value = fn(facts, _EMPTY)  # derived fields read facts only
        if value is not None:
            facts[fact][name] = value
    return facts, given


def score(unit: CompiledPolicy, facts: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], list[dict]]:
    """The scorecard's conclusions (score, pd, score_reasons) and its trace entries."""
    if unit.scorecard is None:
        return {}, []
    scaling = unit.scorecard.scaling
    ruleset = unit.scorecard.name
    total = float(scaling.base_points)
    losses: list[tuple[float, int, str]] = []
    trace = []
    for index, char in enumerate(unit.characteristics):
        fact, name = char.path
        value = facts.get(fact, _EMPTY).get(name)  # what char.value gives, without the call
        chosen = _bin(char, value, facts)
        if chosen is None:
            test, points, points_json = "unbinned", 0.0, 0
        else:
            test, points, points_json = chosen.test, chosen.points, chosen.points_json
            if chosen.reason and char.best - points > 0:
                losses.append((char.best - points, index, chosen.reason))
        total += points
        trace.append(
            {
                "rule": char.rule,
                "ruleset": ruleset,
                "outputs": {"points": points_json},
                "because": [{"test": test, "values": {char.field: _json_value(value)}}],
            }
        )
    try:
        odds = scaling.base_odds * 2.0 ** ((total - scaling.base_points) / scaling.pdo)
        pd: float | None = 1.0 / (1.0 + odds)
    except OverflowError:
        pd = None  # a score so far from base_points that the odds leave the floats: no PD, like x / 0
    losses.sort(key=lambda x: (-x[0], x[1]))
    reasons = list(dict.fromkeys(code for _, _, code in losses))[:4]
    return {"score": total, "pd": pd, "score_reasons": reasons}, trace


def _bin(char: ScoreCharacteristic, value: Any, facts: Mapping[str, Mapping[str, Any]]) -> ScoreBin | None:
    """The first bin that takes `value` (the `missing` bin for None), else the `else` bin, else None."""
    for b in char.bins:
        if value is None:
            if b.missing:
                return b
        elif b.on_value is not None:
            if b.on_value(value):
                return b
        elif b.truth is not None and b.truth(facts, _EMPTY) is True:
            return b
    return char.otherwise


class ReferenceMatcher:
    """Walks each stratum's conditions directly: the plain reference semantics."""

    def __init__(self, unit: CompiledPolicy) -> None:
        self.by_stratum: list[list[Activation]] = [[] for _ in range(unit.strata)]
        for a in unit.activations:
            self.by_stratum[a.stratum].append(a)

    def stratum(self, s: int, facts: Mapping, conclusions: Mapping) -> set[str]:
        return {a.key for a in self.by_stratum[s] if a.truth(facts, conclusions) is True}


class ReteMatcher:
    """Asserts facts, conclusions and computed operands into the durable_rules network, stratum by stratum."""

    def __init__(self, unit: CompiledPolicy, session: Any) -> None:
        self.unit = unit
        self.session = session

    def stratum(self, s: int, facts: Mapping, conclusions: Mapping) -> set[str]:
        batch: dict[str, Mapping[str, Any]] = {}
        for tag, fields in self.unit.assertions[s]:
            if fields is None:  # a case fact the network reads as validated: no copy
                batch[tag] = facts.get(tag, _EMPTY)
                continue
            values = {}
            for name, getter in fields:
                value = getter(facts, conclusions)
                if value is not None:
                    values[name] = value
            batch[tag] = values
        return self.session.assert_facts(batch) if batch else set()


def decide(
    unit: CompiledPolicy,
    case: object,
    as_of: dt.date | None = None,
    engine: str = "rete",
) -> dict[str, Any]:
    """The Decision of design section 7. Raises CredoError (with JSON paths) when the case is invalid."""
    return _run(unit, case, as_of, engine, False)[0]


@dataclass
class Evaluation:
    decision: dict[str, Any]
    conclusions: dict[str, Any]
    fired: list[str]


def evaluate(
    unit: CompiledPolicy,
    case: object,
    as_of: dt.date | None = None,
    engine: str = "rete",
    allow_conclusions: bool = False,
) -> Evaluation:
    """A decision with the combined conclusions behind it (what embedded tests compare against)."""
    decision, state = _run(unit, case, as_of, engine, allow_conclusions)
    return Evaluation(decision, state.conclusions, [a.key for a, _ in state.resolved])


def _run(
    unit: CompiledPolicy, case: object, as_of: dt.date | None, engine: str, allow_conclusions: bool
) -> tuple[dict[str, Any], _State]:
    """The decision and the state behind it: `decide` needs only the first, `evaluate` both."""
    as_of = as_of or dt.date.today()
    facts, given = prepare(unit, case, allow_conclusions)
    conclusions, score_trace = score(unit, facts)
    conclusions.update(given)
    state = _State(unit, facts, conclusions)
    error: EvaluationError | None = None
    try:
        if engine == "reference":
            state.run(ReferenceMatcher(unit))
        else:
            try:
                with unit.network.session() as session:
                    state.run(ReteMatcher(unit, session))
            except _engine_fault() as fault:  # evaluated only when something was raised
                raise EvaluationError("engine-fault", "the rule engine failed on this case") from fault
    except EvaluationError as failure:
        error = failure
    return state.decision(as_of, score_trace, error), state


def _engine_fault() -> type[Exception]:
    """engine.runtime.EngineFault, imported when first needed: only the rete back-end loads durable_rules (an
    import statement in `evaluate` itself would cost about a microsecond on every decision)."""
    from engine.runtime import EngineFault

    return EngineFault


class _State:
    """What one evaluation accumulates: fired activations, contributions and combined conclusions."""

    def __init__(self, unit: CompiledPolicy, facts: dict, conclusions: dict) -> None:
        self.unit = unit
        self.facts = facts
        self.conclusions = conclusions
        # Each chosen activation with its outputs as the trace shows them (JSON values).
        self.resolved: list[tuple[Activation, dict[str, Any]]] = []
        self.emitted: dict[str, list[tuple[int, Any, str]]] = {}
        self.cited: dict[str, str] = {}

    def run(self, matcher: ReferenceMatcher | ReteMatcher) -> None:
        unit = self.unit
        by_key = unit.by_key
        # Keys reported early (a branch that reads only facts fires at stratum 0) wait for their own stratum.
        pending: list[list[Activation]] = [[] for _ in range(unit.strata)]
        for s in range(unit.strata):
            for key in matcher.stratum(s, self.facts, self.conclusions):
                activation = by_key[key]
                pending[activation.stratum].append(activation)
            self._resolve(pending[s])
            for name in unit.combine_at[s]:
                self._combine(name)

    def _resolve(self, fired: list[Activation]) -> None:
        """Apply hit policies to this stratum's fired activations and record what each contributes."""
        fired.sort(key=_source_order)  # the back-ends report sets; errors must not depend on hash order
        firsts: dict[str, Activation] = {}
        uniques: dict[str, Activation] = {}
        chosen: list[Activation] = []
        for a in fired:
            hit = a.hit
            if hit == "first":
                best = firsts.get(a.table)  # type: ignore[arg-type]
                if best is None or a.row < best.row:
                    firsts[a.table] = a  # type: ignore[index]
                continue
            if hit == "unique":
                other = uniques.get(a.table)  # type: ignore[arg-type]
                if other is not None:
                    rows = sorted((other.row, a.row))
                    raise EvaluationError(
                        "unique-conflict", f"unique table {a.table} matched rows {rows[0]} and {rows[1]}"
                    )
                uniques[a.table] = a  # type: ignore[index]
            chosen.append(a)
        if firsts:
            chosen.extend(firsts.values())
            chosen.sort(key=_source_order)
        emitted = self.emitted
        resolved = self.resolved
        for a in chosen:
            outputs: dict[str, Any] = {}
            for emit in a.emits:
                value = emit.fixed
                if value is VARIES:
                    value = self._value(emit)
                outputs[emit.output] = _json_value(value)
                if value is not None:
                    found = emitted.get(emit.output)
                    if found is None:
                        emitted[emit.output] = [(a.order, value, a.key)]
                    else:
                        found.append((a.order, value, a.key))
            resolved.append((a, outputs))

    def _value(self, emit: Emit) -> Any:
        """The value of an emit that depends on the case (its `fixed` value is VARIES)."""
        if emit.number is not None:
            return emit.number(self.facts, self.conclusions)
        if emit.texts:
            return tuple(t.render(self._lookup) for t in emit.texts)
        if emit.alerts:
            return tuple({"code": c, "severity": s, "message": m.render(self._lookup)} for c, s, m in emit.alerts)
        return emit.constant

    def _lookup(self, path: str) -> Any:
        if "." in path:
            fact, name = path.split(".", 1)
            value = self.facts.get(fact, {}).get(name)
        else:
            value = self.conclusions.get(path)
        return value.isoformat() if isinstance(value, dt.date) else value

    def _combine(self, name: str) -> None:
        combine = self.unit.combines.get(name)
        if combine is None:
            return  # a conclusion nobody writes (score, or one a test sets): keep what is there
        found = self.emitted.get(name)
        if not found:
            # Nothing contributed (most outputs on most cases): what each way of combining makes of no values.
            if combine == "sum":
                self.conclusions[name] = 0.0
            elif combine in ("union", "collect"):
                self.conclusions[name] = []
            return
        contributions = sorted(found, key=_by_order) if len(found) > 1 else found
        values = [v for _, v, _ in contributions]
        if combine in ("worst", "best"):
            if values:
                rank = self.unit.ranks[name]
                pick = max if combine == "worst" else min
                self.conclusions[name] = pick(values, key=rank.__getitem__)
        elif combine in ("min", "max"):
            if values:
                self.conclusions[name] = min(values) if combine == "min" else max(values)
        elif combine == "sum":
            try:
                self.conclusions[name] = math.fsum(values) if values else 0.0
            except OverflowError:
                self.conclusions[name] = None  # the exact sum leaves the floats: null, like any overflow
        elif combine == "union":
            merged: dict[Any, None] = {}
            for order_value, key in ((v, k) for _, v, k in contributions):
                for item in order_value if isinstance(order_value, tuple) else (order_value,):
                    if item not in merged:
                        merged[item] = None
                        if name == "reasons":
                            self.cited[item] = key
            self.conclusions[name] = list(merged)
        elif combine == "collect":
            flat: list[Any] = []
            for v in values:
                flat.extend(v if isinstance(v, tuple) else (v,))
            self.conclusions[name] = flat
        elif combine == "unique":
            distinct = list(dict.fromkeys(values))
            if len(distinct) > 1:
                raise EvaluationError(
                    "unique-conflict", f"{name} has conflicting values from {', '.join(k for _, _, k in contributions)}"
                )
            if distinct:
                self.conclusions[name] = distinct[0]

    def decision(self, as_of: dt.date, score_trace: list[dict], error: EvaluationError | None) -> dict[str, Any]:
        unit, c = self.unit, self.conclusions
        defaults = unit.defaults
        reasons: list[dict[str, Any]] = []
        if error is not None:
            outcome, source = unit.on_error, "error"
        elif c.get("decision") is not None:
            outcome, source = c["decision"], "rules"
        else:
            outcome, source = defaults.get("decision", "refer"), "default"
        if error is None:
            for code in c.get("reasons", []):
                reasons.append({"code": code, "text": self._reason_text(code), "rule": self.cited.get(code)})
        if source == "error":
            reasons.append(
                {
                    "code": "R-ERROR",
                    "text": "The case could not be evaluated; the policy's on_error outcome applies",
                    "rule": None,
                }
            )
        elif source == "default" and outcome in ("refer", "decline"):
            reasons.append(
                {"code": "R-DEFAULT", "text": "No rule decided the case; the policy's default applies", "rule": None}
            )
        tier = None if error else (c.get("tier") if c.get("tier") is not None else defaults.get("tier"))
        limit = rate = None
        if outcome != "decline" and error is None:
            limit = self._limit()
            if unit.base_rate is not None:
                rate = unit.base_rate + float(c.get("rate_add_bps") or 0.0) / 10000.0
        out: dict[str, Any] = {
            "outcome": outcome,
            "tier": tier,
            "score": _number(c.get("score")),
            "pd": c.get("pd"),
            "limit": _number(limit),
            "rate": rate,
            "reasons": reasons,
            "conditions": [] if error else list(c.get("conditions", [])),
            "alerts": [] if error else list(c.get("alerts", [])),
            **unit.provenance(),
            "as_of": as_of.isoformat(),
            "engine": ENGINE_VERSION,
            "fired": score_trace + self._traces(),
        }
        if unit.extra_outputs:
            out["outputs"] = {n: _json_value(c.get(n)) for n in unit.extra_outputs}
        if error is not None:
            out["error"] = {"code": error.code, "message": error.message}
        return out

    def _limit(self) -> float | None:
        requested = self.unit.requested(self.facts, self.conclusions) if self.unit.requested else None
        cap = self.conclusions.get("limit_cap")
        if cap is None:
            cap = self.unit.defaults.get("limit_cap")
        candidates = [v for v in (requested, cap) if v is not None]
        return min(candidates) if candidates else None

    def _reason_text(self, code: str) -> str:
        template = self.unit.reason_texts.get(code)
        return template.render(self._lookup) if template else code

    def _traces(self) -> list[dict[str, Any]]:
        """The `fired` entries of the rules and rows: what each contributed and the tests that held."""
        facts, conclusions = self.facts, self.conclusions
        out = []
        for a, outputs in self.resolved:
            because = []
            for explain in a.explains:
                found = explain(facts, conclusions)
                if found is not None:
                    because.append(found)
            out.append({"rule": a.key, "ruleset": a.ruleset, "outputs": outputs, "because": because})
        return out


_number = json_number
_json_value = json_value


_source_order = operator.attrgetter("order")
_by_order = operator.itemgetter(0)  # contributions are (order, value, key)


def reject(problems: list[Problem]) -> dict[str, Any]:
    """The JSON shape of a rejected case (one line of `credo decide`)."""
    return {
        "error": {
            "code": "invalid-case",
            "message": "the case does not match the fact declarations",
            "problems": [{"path": p.path, "code": p.code, "message": p.message} for p in problems],
        }
    }


__all__ = ["DECISIONS", "CredoError", "EvaluationError", "decide", "format_number", "prepare", "reject", "score"]
