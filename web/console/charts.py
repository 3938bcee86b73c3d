"""Charts as SVG geometry computed here and drawn by a template: no script, no library, readable without JS.

Each function returns plain numbers and labels (the template escapes every label); the page stays printable and
the figures can be checked in a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    out = []
    value = first
    while value <= high + step * 1e-9:
        out.append(round(value, 10))
        value += step
    return out


def histogram(series: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any] | None:
    """Grouped bars: one group per score bin, one bar per series (baseline, candidate)."""
    bins = sorted({(float(b["from"]), float(b["to"])) for bars in series.values() for b in bars})
    if not bins:
        return None
    counts = {
        name: {(float(b["from"]), float(b["to"])): int(b["count"]) for b in bars} for name, bars in series.items()
    }
    top = max((c for per in counts.values() for c in per.values()), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / len(bins)
    names = list(series)
    bar = max(group * 0.8 / max(len(names), 1), 1.0)
    bars = []
    for i, key in enumerate(bins):
        for j, name in enumerate(names):
            n = counts[name].get(key, 0)
            h = plot_h * n / top
            bars.append(
                {
                    "x": round(LEFT + i * group + group * 0.1 + j * bar, 2),
                    "y": round(TOP + plot_h - h, 2),
                    "w": round(bar, 2),
                    "h": round(h, 2),
                    "series": j,
                    "name": name,
                    "label": f"{name}: {n} cases scoring {key[0]:g} to {key[1]:g}",
                    "low": key[0],
                    "high": key[1],
                }
            )
    xlabels = [
        {"x": round(LEFT + i * group + group / 2, 2), "text": f"{key[0]:g}"}
        for i, key in enumerate(bins)
        if len(bins) <= 16 or i % math.ceil(len(bins) / 16) == 0
    ]
    yticks = [{"y": round(TOP + plot_h - plot_h * t / top, 2), "text": f"{t:g}"} for t in _ticks(0, top)]
    return {"width": WIDTH, "height": HEIGHT, "bars": bars, "xlabels": xlabels, "yticks": yticks,
            "names": names, "left": LEFT, "bottom": TOP + plot_h, "right": WIDTH - RIGHT, "top": TOP}


def cutoff_curves(
    pairs: Sequence[tuple[float | None, float | None, int | None]], steps: int = 40
) -> dict[str, Any] | None:
    """Approval rate (and bad rate of the approved) if every case scoring at least the cut-off were approved.

    Computed for both sides' scores; the x axis spans the scores seen.
    """
    sides = {"baseline": [p[0] for p in pairs], "candidate": [p[1] for p in pairs]}
    scores = [s for values in sides.values() for s in values if s is not None]
    if not scores:
        return None
    low, high = math.floor(min(scores)), math.ceil(max(scores))
    if high == low:
        high = low + 1
    cuts = [low + (high - low) * k / steps for k in range(steps + 1)]
    total = len(pairs)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(value: float) -> float:
        return round(LEFT + plot_w * (value - low) / (high - low), 2)

    def y(rate: float) -> float:
        return round(TOP + plot_h * (1 - rate), 2)

    lines = []
    table = []
    for index, (name, values) in enumerate(sides.items()):
        points = []
        for cut in cuts:
            chosen = [i for i, s in enumerate(values) if s is not None and s >= cut]
            rate = len(chosen) / total if total else 0.0
            known = [pairs[i][2] for i in chosen if pairs[i][2] is not None]
            bad = (sum(known) / len(known)) if known else None
            points.append((x(cut), y(rate)))
            table.append({"side": name, "cutoff": round(cut, 2), "approval_rate": rate, "bad_rate": bad})
        lines.append({"name": name, "series": index, "points": " ".join(f"{px},{py}" for px, py in points)})
    xticks = [{"x": x(t), "text": f"{t:g}"} for t in _ticks(low, high)]
    yticks = [{"y": y(t), "text": f"{t:.0%}"} for t in (0, 0.25, 0.5, 0.75, 1.0)]
    return {"width": WIDTH, "height": HEIGHT, "lines": lines, "xticks": xticks, "yticks": yticks, "table": table,
            "left": LEFT, "bottom": TOP + plot_h, "right": WIDTH - RIGHT, "top": TOP}


def trend(points: Sequence[tuple[str, float | None]], *, percent: bool = False) -> dict[str, Any] | None:
    """A small line chart of one ratio over periods (a customer's statements)."""
    known = [(label, v) for label, v in points if v is not None and math.isfinite(v)]
    if len(known) < 1:
        return None
    width, height, left, bottom, top, right = 300, 120, 44, 24, 10, 10
    values = [v for _, v in known]
    low, high = min([*values, 0.0]), max(values)
    if high == low:
        high = low + (abs(low) or 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)

    def px(i: int) -> float:
        return round(left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2), 2)

    def py(v: float) -> float:
        return round(top + plot_h * (1 - (v - low) / (high - low)), 2)

    dots = [
        {"x": px(i), "y": py(v), "text": f"{label}: {v:.1%}" if percent else f"{label}: {v:,.2f}"}
        for i, (label, v) in enumerate(points)
        if v is not None and math.isfinite(v)
    ]
    path = " ".join(f"{d['x']},{d['y']}" for d in dots)
    fmt = (lambda t: f"{t:.0%}") if percent else (lambda t: f"{t:g}")
    return {
        "width": width,
        "height": height,
        "dots": dots,
        "path": path,
        "xlabels": [{"x": px(i), "text": label} for i, (label, _) in enumerate(points)],
        "yticks": [{"y": py(t), "text": fmt(t)} for t in _ticks(low, high, 3)],
        "left": left,
        "bottom": top + plot_h,
        "right": width - right,
        "top": top,
    }


__all__ = ["cutoff_curves", "histogram", "trend"]
