"""What a simulation counts, how partial counts merge, and the report built from them.

A chunk of the portfolio becomes a `Tally`: counts, counters keyed by value, and exact sums. Merging two
tallies adds them field by field, so merging is associative and commutative, and the report does not
depend on how the portfolio was cut into chunks or in which order the chunks finished. Floating-point
sums (exposure, rates, PD) would break that (`(a + b) + c != a + (b + c)`), so they are kept exactly
(`ExactSum`) and rounded once, when the report is built. The score is kept as a count per distinct value
(a points scorecard has few), which makes KS, Gini and PSI exact too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.outputs import DECISIONS

NONE = "none"  # the label of a missing tier
MAX_PROBLEMS = 100  # row problems kept in the report (all of them are printed as they are found)
PSI_BINS = 10
PSI_FLOOR = 1e-4  # the share used for an empty bin, so ln(a/e) stays finite
REPORT_FORMAT = "credo-simulation/1"


class ExactSum:
    """A sum of float64 values kept exactly, as integer mantissa sums per binary exponent."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: dict[int, int] = {}

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values) & (values != 0.0)]
        if not values.size:
            return
        mantissa, exponent = np.frexp(values)
        ints = np.ldexp(mantissa, 53).astype(np.int64)  # exact: a double has a 53-bit mantissa
        # Split so that int64 sums of a chunk cannot overflow (2**27 per term, far fewer than 2**36 terms).
        high = ints >> 26
        low = ints - (high << 26)
        order = np.argsort(exponent, kind="stable")
        exponent = exponent[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(exponent)) + 1))
        highs = np.add.reduceat(high[order], starts)
        lows = np.add.reduceat(low[order], starts)
        for e, h, lo in zip(exponent[starts].tolist(), highs.tolist(), lows.tolist(), strict=True):
            self.parts[e] = self.parts.get(e, 0) + (h << 26) + lo

    def merge(self, other: ExactSum) -> None:
        for e, v in other.parts.items():
            self.parts[e] = self.parts.get(e, 0) + v

    def value(self) -> float:
        parts = {e: v for e, v in self.parts.items() if v}
        if not parts:
            return 0.0
        low = min(parts)
        total = sum(v << (e - low) for e, v in parts.items())
        shift = low - 53
        # Python's int / int is correctly rounded, however large the operands: one rounding, at the end.
        return float(total << shift) if shift >= 0 else total / (1 << -shift)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExactSum) and self.value() == other.value()

    def __repr__(self) -> str:
        return f"ExactSum({self.value()!r})"


@dataclass
class SideTally:
    outcomes: list[int] = field(default_factory=lambda: [0, 0, 0])
    tiers: Counter[str] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    approved_limit: ExactSum = field(default_factory=ExactSum)
    with_limit: int = 0
    approved_rate: ExactSum = field(default_factory=ExactSum)
    with_rate: int = 0
    limit_times_rate: ExactSum = field(default_factory=ExactSum)
    limit_for_rate: ExactSum = field(default_factory=ExactSum)
    pd: ExactSum = field(default_factory=ExactSum)
    with_pd: int = 0
    scores: Counter[float] = field(default_factory=Counter)
    scores_good: Counter[float] = field(default_factory=Counter)
    scores_bad: Counter[float] = field(default_factory=Counter)
    known: list[int] = field(default_factory=lambda: [0, 0, 0])
    bad: list[int] = field(default_factory=lambda: [0, 0, 0])

    def merge(self, other: SideTally) -> None:
        for i in range(3):
            self.outcomes[i] += other.outcomes[i]
            self.known[i] += other.known[i]
            self.bad[i] += other.bad[i]
        for mine, theirs in (
            (self.tiers, other.tiers),
            (self.fired, other.fired),
            (self.reasons, other.reasons),
            (self.scores, other.scores),
            (self.scores_good, other.scores_good),
            (self.scores_bad, other.scores_bad),
        ):
            mine.update(theirs)  # update, not +: Counter's + drops zero counts
        self.errors += other.errors
        self.with_limit += other.with_limit
        self.with_rate += other.with_rate
        self.with_pd += other.with_pd
        self.approved_limit.merge(other.approved_limit)
        self.approved_rate.merge(other.approved_rate)
        self.limit_times_rate.merge(other.limit_times_rate)
        self.limit_for_rate.merge(other.limit_for_rate)
        self.pd.merge(other.pd)


@dataclass
class SegmentTally:
    cases: int = 0
    known: int = 0
    bad: int = 0
    baseline: list[int] = field(default_factory=lambda: [0, 0, 0])
    candidate: list[int] = field(default_factory=lambda: [0, 0, 0])

    def merge(self, other: SegmentTally) -> None:
        self.cases += other.cases
        self.known += other.known
        self.bad += other.bad
        for i in range(3):
            self.baseline[i] += other.baseline[i]
            self.candidate[i] += other.candidate[i]


@dataclass
class Tally:
    """Everything a report needs from some rows of a portfolio; `merge` is associative and commutative."""

    rows: int = 0  # records read
    cases: int = 0  # records decided
    skipped: int = 0
    known: int = 0
    bads: int = 0
    problems: list[Any] = field(default_factory=list)  # the first MAX_PROBLEMS RowProblems, by row
    problem_count: int = 0
    baseline: SideTally = field(default_factory=SideTally)
    candidate: SideTally = field(default_factory=SideTally)
    swap: list[int] = field(default_factory=lambda: [0] * 9)
    swap_known: list[int] = field(default_factory=lambda: [0] * 9)
    swap_bad: list[int] = field(default_factory=lambda: [0] * 9)
    migration: Counter[tuple[str, str]] = field(default_factory=Counter)
    segments: dict[str, SegmentTally] = field(default_factory=dict)

    def merge(self, other: Tally) -> Tally:
        self.rows += other.rows
        self.cases += other.cases
        self.skipped += other.skipped
        self.known += other.known
        self.bads += other.bads
        # The first N problems of a union are the first N of the first N of each part: associative.
        self.problems = sorted([*self.problems, *other.problems], key=_problem_order)[:MAX_PROBLEMS]
        self.problem_count += other.problem_count
        self.baseline.merge(other.baseline)
        self.candidate.merge(other.candidate)
        for i in range(9):
            self.swap[i] += other.swap[i]
            self.swap_known[i] += other.swap_known[i]
            self.swap_bad[i] += other.swap_bad[i]
        self.migration.update(other.migration)
        for name, seg in other.segments.items():
            self.segments.setdefault(name, SegmentTally()).merge(seg)
        return self


def _problem_order(p: Any) -> tuple[int, str, str, str]:
    return (p.row, p.column, p.code, p.message)


def merge_all(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.merge(t)
    return total


# -- counting one chunk ---------------------------------------------------------------------------------------------


def _value_counts(values: np.ndarray) -> Counter[float]:
    if not values.size:
        return Counter()
    unique, counts = np.unique(values, return_counts=True)
    return Counter(dict(zip(unique.tolist(), counts.tolist(), strict=True)))


def side_tally(result: Any, tiers: Sequence[str], keys: Sequence[str], bad: np.ndarray) -> SideTally:
    """Counts of one side's VectorResult; `bad` is 1.0 / 0.0 / NaN (unknown) per case."""
    t = SideTally()
    outcome = result.outcome.astype(np.int64)
    t.outcomes = np.bincount(outcome, minlength=3)[:3].tolist()
    tier_counts = np.bincount(result.tier.astype(np.int64) + 1, minlength=len(tiers) + 1).tolist()
    t.tiers = Counter({label: c for label, c in zip([NONE, *tiers], tier_counts, strict=False) if c})
    if result.fired.size:
        t.fired = Counter(dict(zip(keys, result.fired.sum(axis=0).tolist(), strict=True)))
    if result.reasons.size:
        t.reasons = Counter({c: n for c, n in zip(result.reason_codes, result.reasons.sum(axis=0).tolist(), strict=True)
                             if n})
    t.errors = int(result.error.sum())
    approved = outcome == 0
    limit = result.limit[approved]
    rate = result.rate[approved]
    has_limit = ~np.isnan(limit)
    has_rate = ~np.isnan(rate)
    both = has_limit & has_rate
    t.approved_limit.add(limit[has_limit])
    t.with_limit = int(has_limit.sum())
    t.approved_rate.add(rate[has_rate])
    t.with_rate = int(has_rate.sum())
    t.limit_times_rate.add(limit[both] * rate[both])
    t.limit_for_rate.add(limit[both])
    has_pd = ~np.isnan(result.pd)
    t.pd.add(result.pd[has_pd])
    t.with_pd = int(has_pd.sum())
    score = result.score
    scored = ~np.isnan(score)
    t.scores = _value_counts(score[scored])
    t.scores_good = _value_counts(score[scored & (bad == 0.0)])
    t.scores_bad = _value_counts(score[scored & (bad == 1.0)])
    known = ~np.isnan(bad)
    t.known = np.bincount(outcome[known], minlength=3)[:3].tolist()
    t.bad = np.bincount(outcome[bad == 1.0], minlength=3)[:3].tolist()
    return t


def chunk_tally(
    baseline: Any,
    candidate: Any | None,
    tiers: tuple[Sequence[str], Sequence[str]],
    keys: tuple[Sequence[str], Sequence[str]],
    bad: np.ndarray,
    segment: np.ndarray | None,
) -> Tally:
    """The tally of one chunk's decided rows. Without a candidate, the candidate side is the baseline."""
    t = Tally()
    n = int(baseline.n)
    t.cases = n
    known = ~np.isnan(bad)
    t.known = int(known.sum())
    t.bads = int((bad == 1.0).sum())
    t.baseline = side_tally(baseline, tiers[0], keys[0], bad)
    other = candidate if candidate is not None else baseline
    t.candidate = side_tally(other, tiers[1], keys[1], bad) if candidate is not None else _copy(t.baseline)
    ob = baseline.outcome.astype(np.int64)
    oc = other.outcome.astype(np.int64)
    pair = ob * 3 + oc
    t.swap = np.bincount(pair, minlength=9)[:9].tolist()
    t.swap_known = np.bincount(pair[known], minlength=9)[:9].tolist()
    t.swap_bad = np.bincount(pair[bad == 1.0], minlength=9)[:9].tolist()
    width = len(tiers[1]) + 1
    cells = np.bincount((baseline.tier.astype(np.int64) + 1) * width + (other.tier.astype(np.int64) + 1),
                        minlength=(len(tiers[0]) + 1) * width).tolist()
    labels_b = [NONE, *tiers[0]]
    labels_c = [NONE, *tiers[1]]
    t.migration = Counter(
        {(labels_b[i // width], labels_c[i % width]): c for i, c in enumerate(cells) if c}
    )
    if segment is not None:
        labelled = np.flatnonzero(segment != None)  # noqa: E711 (elementwise: rows that name a segment)
        if labelled.size:
            names, which = np.unique(segment[labelled].astype(str), return_inverse=True)
            k = len(names)
            cases = np.bincount(which, minlength=k).tolist()
            by_b = np.bincount(which * 3 + ob[labelled], minlength=3 * k).tolist()
            by_c = np.bincount(which * 3 + oc[labelled], minlength=3 * k).tolist()
            known_in = np.bincount(which[known[labelled]], minlength=k).tolist()
            bad_in = np.bincount(which[bad[labelled] == 1.0], minlength=k).tolist()
            for i, name in enumerate(names.tolist()):
                t.segments[name] = SegmentTally(
                    cases[i], known_in[i], bad_in[i], by_b[3 * i : 3 * i + 3], by_c[3 * i : 3 * i + 3]
                )
    return t


def _copy(side: SideTally) -> SideTally:
    out = SideTally()
    out.merge(side)
    return out


# -- measures -------------------------------------------------------------------------------------------------------


def ks_gini(good: Mapping[float, int], bad: Mapping[float, int]) -> tuple[float, float] | None:
    """KS and Gini of a score where a higher score means a better (less likely bad) case.

    KS is the largest gap between the cumulative score distributions of bads and goods. Gini is
    2·AUC − 1, AUC being the chance that a random good outscores a random bad (a tie counts half).
    Both are computed in integers and divided once, so they are exact whatever the chunking.
    """
    goods, bads = sum(good.values()), sum(bad.values())
    if not goods or not bads:
        return None
    cum_good = cum_bad = 0
    ks_num = 0
    auc_num = 0  # sum over values of good(v) * (2 * bads below v + bads at v)
    for value in sorted(set(good) | set(bad)):
        g, b = good.get(value, 0), bad.get(value, 0)
        auc_num += g * (2 * cum_bad + b)
        cum_good += g
        cum_bad += b
        ks_num = max(ks_num, abs(cum_bad * goods - cum_good * bads))
    ks = ks_num / (goods * bads)
    gini = auc_num / (goods * bads) - 1.0  # 2 * auc_num / (2 * G * B) - 1
    return ks, gini


def psi_edges(reference: Mapping[float, int], bins: int = PSI_BINS) -> list[float]:
    """Upper edges of the bins: the reference's quantiles j/bins (the smallest score with at least that share at
    or below it), distinct, and below the reference's highest score so that no bin is empty by construction."""
    total = sum(reference.values())
    values = sorted(reference)
    edges: list[float] = []
    cum = 0
    j = 1
    for v in values:
        cum += reference[v]
        while j < bins and cum * bins >= j * total:
            if not edges or edges[-1] != v:
                edges.append(v)
            j += 1
    return [e for e in edges if e < values[-1]]


def bin_counts(counts: Mapping[float, int], edges: Sequence[float]) -> list[int]:
    """Counts per bin: bin 0 is score <= edges[0], bin i is edges[i-1] < score <= edges[i], the last is above."""
    out = [0] * (len(edges) + 1)
    for value, n in counts.items():
        lo, hi = 0, len(edges)
        while lo < hi:  # the first edge >= value
            mid = (lo + hi) // 2
            if edges[mid] >= value:
                hi = mid
            else:
                lo = mid + 1
        out[lo] += n
    return out


def psi(reference: Mapping[float, int], actual: Mapping[float, int], bins: int = PSI_BINS) -> dict[str, Any] | None:
    """Population stability index of `actual` against `reference`: sum of (a − e) · ln(a / e) over the bins,
    a and e being the shares of each side in a bin (an empty bin's share is PSI_FLOOR)."""
    if not sum(reference.values()) or not sum(actual.values()):
        return None
    edges = psi_edges(reference, bins)
    expected = bin_counts(reference, edges)
    observed = bin_counts(actual, edges)
    e_total, o_total = sum(expected), sum(observed)
    value = 0.0
    rows = []
    for i, (e, o) in enumerate(zip(expected, observed, strict=True)):
        e_share, o_share = e / e_total, o / o_total
        a, b = o_share or PSI_FLOOR, e_share or PSI_FLOOR
        value += (a - b) * math.log(a / b)
        rows.append(
            {
                "above": edges[i - 1] if i > 0 else None,
                "up_to": edges[i] if i < len(edges) else None,
                "reference": e,
                "actual": o,
                "reference_share": e_share,
                "actual_share": o_share,
            }
        )
    return {"value": value, "bins": rows}


# -- the report -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideInfo:
    """What the report says about one side besides its counts."""

    label: str
    source: str
    policy: str
    digest: str
    documents: tuple[tuple[str, str], ...]  # (name, digest) of each ruleset and the scorecard
    tiers: tuple[str, ...]
    rules: tuple[str, ...]  # activation keys, in source order
    bin_width: float  # score histogram bins (the scorecard's points to double the odds)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _side_report(t: SideTally, info: SideInfo, cases: int, reference: SideTally | None) -> dict[str, Any]:
    tiers = {label: t.tiers.get(label, 0) for label in [*info.tiers, NONE]}
    for label, n in t.tiers.items():
        tiers.setdefault(label, n)
    rules = {key: t.fired.get(key, 0) for key in info.rules}
    for key, n in t.fired.items():
        rules.setdefault(key, n)
    approved = t.outcomes[0]
    score: dict[str, Any] = {"count": sum(t.scores.values())}
    if t.scores:
        values = sorted(t.scores)
        total = math.fsum(v * n for v, n in sorted(t.scores.items()))
        score.update(
            mean=total / score["count"],
            min=_number(values[0]),
            max=_number(values[-1]),
            mean_pd=t.pd.value() / t.with_pd if t.with_pd else None,
            histogram=_histogram(t.scores, info.bin_width),
        )
    measures = ks_gini(t.scores_good, t.scores_bad)
    score["known"] = sum(t.scores_good.values()) + sum(t.scores_bad.values())
    score["ks"], score["gini"] = measures if measures else (None, None)
    shift = psi(reference.scores, t.scores) if reference is not None else None
    score["psi"] = shift["value"] if shift else None
    score["psi_bins"] = shift["bins"] if shift else None
    limit_total = t.approved_limit.value()
    return {
        "source": info.source,
        "policy": {"name": info.policy, "digest": info.digest},
        "documents": [{"name": n, "digest": d} for n, d in info.documents],
        "cases": cases,
        "outcomes": dict(zip(DECISIONS, t.outcomes, strict=True)),
        "outcome_rates": {o: _rate(n, cases) for o, n in zip(DECISIONS, t.outcomes, strict=True)},
        "tiers": tiers,
        "rules": rules,
        "reasons": dict(sorted(t.reasons.items())),
        "errors": t.errors,
        "exposure": {
            "approved": approved,
            "approved_with_limit": t.with_limit,
            "approved_limit": _number(limit_total),
            "average_limit": limit_total / t.with_limit if t.with_limit else None,
            "average_rate": t.approved_rate.value() / t.with_rate if t.with_rate else None,
            "limit_weighted_rate": (
                t.limit_times_rate.value() / t.limit_for_rate.value() if t.limit_for_rate.value() else None
            ),
        },
        "score": score,
        "bad_rate_by_outcome": {o: _rate(b, k) for o, b, k in zip(DECISIONS, t.bad, t.known, strict=True)},
        "performance_by_outcome": {
            o: {"known": k, "bad": b} for o, b, k in zip(DECISIONS, t.bad, t.known, strict=True)
        },
    }


def _histogram(scores: Mapping[float, int], width: float) -> list[dict[str, Any]]:
    width = width if width > 0 else 20.0
    bins: dict[float, int] = {}
    for value, n in scores.items():
        start = math.floor(value / width) * width
        bins[start] = bins.get(start, 0) + n
    return [{"from": _number(s), "to": _number(s + width), "count": bins[s]} for s in sorted(bins)]


def build_report(
    tally: Tally,
    baseline: SideInfo,
    candidate: SideInfo,
    meta: Mapping[str, Any],
    reference: Tally | None = None,
) -> dict[str, Any]:
    """The JSON report (design of the simulation issue); `meta` adds the policy, the as-of date and the paths."""
    swap = {b: {c: tally.swap[i * 3 + j] for j, c in enumerate(DECISIONS)} for i, b in enumerate(DECISIONS)}
    performance = {
        b: {
            c: {
                "known": tally.swap_known[i * 3 + j],
                "bad": tally.swap_bad[i * 3 + j],
                "bad_rate": _rate(tally.swap_bad[i * 3 + j], tally.swap_known[i * 3 + j]),
            }
            for j, c in enumerate(DECISIONS)
        }
        for i, b in enumerate(DECISIONS)
    }

    def moved(cells: Iterable[tuple[int, int]]) -> dict[str, Any]:
        cells = list(cells)
        known = sum(tally.swap_known[i * 3 + j] for i, j in cells)
        bad = sum(tally.swap_bad[i * 3 + j] for i, j in cells)
        return {"cases": sum(tally.swap[i * 3 + j] for i, j in cells), "known": known, "bad": bad,
                "bad_rate": _rate(bad, known)}

    rows_b = [*baseline.tiers, NONE]
    rows_c = [*candidate.tiers, NONE]
    migration = {b: {c: tally.migration.get((b, c), 0) for c in rows_c} for b in rows_b}
    fires_b, fires_c = tally.baseline.fired, tally.candidate.fired
    rule_keys = list(dict.fromkeys([*baseline.rules, *candidate.rules, *sorted(fires_b), *sorted(fires_c)]))
    reason_codes = sorted(set(tally.baseline.reasons) | set(tally.candidate.reasons))
    segments = {
        name: {
            "cases": seg.cases,
            "known": seg.known,
            "bad": seg.bad,
            "bad_rate": _rate(seg.bad, seg.known),
            "baseline": dict(zip(DECISIONS, seg.baseline, strict=True)),
            "candidate": dict(zip(DECISIONS, seg.candidate, strict=True)),
        }
        for name, seg in sorted(tally.segments.items())
    }
    return {
        "report": REPORT_FORMAT,
        **meta,
        "cases": tally.cases,
        "rows": {"read": tally.rows, "decided": tally.cases, "skipped": tally.skipped},
        "row_problems": {"count": tally.problem_count, "first": [p.to_dict() for p in tally.problems]},
        "known_outcomes": tally.known,
        "bads": tally.bads,
        "bad_rate": _rate(tally.bads, tally.known),
        "baseline": _side_report(tally.baseline, baseline, tally.cases, reference.baseline if reference else None),
        "candidate": _side_report(tally.candidate, candidate, tally.cases, reference.candidate if reference else None),
        "swap_set": swap,
        "swap_set_performance": performance,
        "swaps": {
            "unchanged": moved((i, i) for i in range(3)),
            "swap_in": moved([(1, 0), (2, 0)]),  # newly approved
            "swap_out": moved([(0, 1), (0, 2)]),  # no longer approved
            "more_severe": moved([(0, 1), (0, 2), (1, 2)]),
            "less_severe": moved([(1, 0), (2, 0), (2, 1)]),
        },
        "tier_migration": migration,
        "rule_fires": {
            key: {"baseline": fires_b.get(key, 0), "candidate": fires_c.get(key, 0),
                  "change": fires_c.get(key, 0) - fires_b.get(key, 0)}
            for key in rule_keys
        },
        "reason_mix": {
            code: {"baseline": tally.baseline.reasons.get(code, 0), "candidate": tally.candidate.reasons.get(code, 0)}
            for code in reason_codes
        },
        "segments": segments,
        "reference": (
            {"cases": reference.cases, "skipped": reference.skipped} if reference is not None else None
        ),
    }


# -- rendering --------------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def render_text(report: Mapping[str, Any]) -> str:
    """The summary `credo simulate` prints: the headline figures, side by side."""
    b, c = report["baseline"], report["candidate"]
    cases = report["cases"]
    lines = [
        f"{report.get('policy', '')} on {report.get('portfolio', '')} (as of {report.get('as_of', '')}): "
        f"{cases} cases, {report['rows']['skipped']} rows skipped, {report['known_outcomes']} known outcomes",
        f"baseline: {b['source']}",
        f"candidate: {c['source']}",
        "",
        f"{'':<22}{'baseline':>20}{'candidate':>20}",
    ]
    for o in DECISIONS:
        lines.append(
            f"{o:<22}{b['outcomes'][o]:>10} {_pct(b['outcome_rates'][o]):>8} "
            f"{c['outcomes'][o]:>10} {_pct(c['outcome_rates'][o]):>8}"
        )
    for o in DECISIONS:
        lines.append(
            f"{'bad rate, ' + o:<22}{_pct(b['bad_rate_by_outcome'][o]):>20}{_pct(c['bad_rate_by_outcome'][o]):>20}"
        )
    eb, ec = b["exposure"], c["exposure"]
    lines.append(f"{'approved exposure':<22}{eb['approved_limit']:>20,.0f}{ec['approved_limit']:>20,.0f}")
    lines.append(f"{'average rate':<22}{_pct(eb['average_rate']):>20}{_pct(ec['average_rate']):>20}")
    sb, sc = b["score"], c["score"]
    lines.append(f"{'mean score':<22}{_num(sb.get('mean'), '.1f'):>20}{_num(sc.get('mean'), '.1f'):>20}")
    lines.append(f"{'KS':<22}{_num(sb['ks']):>20}{_num(sc['ks']):>20}")
    lines.append(f"{'Gini':<22}{_num(sb['gini']):>20}{_num(sc['gini']):>20}")
    if report.get("reference"):
        lines.append(f"{'PSI vs reference':<22}{_num(sb['psi'], '.4f'):>20}{_num(sc['psi'], '.4f'):>20}")
    tiers = list(dict.fromkeys([*b["tiers"], *c["tiers"]]))
    lines.append("tiers " + "  ".join(f"{t}: {b['tiers'].get(t, 0)} -> {c['tiers'].get(t, 0)}" for t in tiers))
    lines += ["", "swap set (rows: baseline, columns: candidate)", f"{'':<10}" + "".join(f"{o:>10}" for o in DECISIONS)]
    for o in DECISIONS:
        lines.append(f"{o:<10}" + "".join(f"{report['swap_set'][o][x]:>10}" for x in DECISIONS))
    swaps = report["swaps"]
    lines.append(
        f"swap-in {swaps['swap_in']['cases']} (bad rate {_pct(swaps['swap_in']['bad_rate'])}), "
        f"swap-out {swaps['swap_out']['cases']} (bad rate {_pct(swaps['swap_out']['bad_rate'])})"
    )
    changed = [(k, v) for k, v in report["rule_fires"].items() if v["change"]]
    if changed:
        lines += ["", "rules that fire differently"]
        for key, v in sorted(changed, key=lambda kv: -abs(kv[1]["change"]))[:15]:
            lines.append(f"  {key:<28}{v['baseline']:>10} -> {v['candidate']:<10}")
    return "\n".join(lines) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page; every value from the user is escaped by the template engine."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
        autoescape=True,  # on for every template, whatever its name: portfolio text (segments) is user input
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return env.get_template("simulation.html").render(report=report, decisions=DECISIONS)


__all__ = [
    "ExactSum",
    "SideInfo",
    "Tally",
    "build_report",
    "chunk_tally",
    "ks_gini",
    "merge_all",
    "psi",
    "render_html",
    "render_text",
]
