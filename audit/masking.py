"""Masking sensitive fields in a record: the input, the values in the trace, and every text that rendered one.

A field declared `sensitive: true` (and any derived field computed from one) is personal data. The stored record
shows `***` in its place, lists every masked spot as a JSON path (`masked`, as OPA's decision log lists its
erased paths), and keeps the original values sealed (audit.crypto) as one token, so a key holder, and replay, see
the record exactly as decided.

Texts are masked by what they contain, not by how they were made: every rendering of a sensitive value that the
policy's texts could produce (each `{path:spec}` format used for that path, plus the plain rendering) is replaced
wherever it occurs in a reason, condition, alert or string output. That may mask a little more than needed (a name
that is also a common word); it never shows a value that should be hidden.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from audit.chain import canonical
from engine.evaluate import prepare
from engine.policy import CompiledPolicy
from engine.syntax import Path, walk
from engine.texts import Template, render_value

MASK = "***"
PathKey = str | int

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


@dataclass(frozen=True)
class Sensitivity:
    sources: frozenset[tuple[str, str]]  # (fact, field) a case supplies
    dotted: frozenset[str]  # sources and derived fields computed from them, as `fact.field`
    specs: dict[str, frozenset[str]]  # dotted path -> the format specs the policy's texts use for it
    label: re.Pattern[str] | None  # matches a trace label that reads a sensitive path


@dataclass
class Masking:
    input: Any
    decision: dict[str, Any]
    paths: list[str]  # display form, for `masked`
    originals: list[list[Any]]  # [[path keys], original value] for every masked spot: sealed in the record
    decision_text: str | None = None  # the canonical JSON of `decision`, when masking had to compute it


def path_text(keys: Iterable[PathKey]) -> str:
    out = "$"
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _IDENT.match(key):
            out += f".{key}"
        else:
            out += f"[{json.dumps(key, ensure_ascii=False)}]"
    return out


_CACHE: OrderedDict[int, tuple[CompiledPolicy, Sensitivity]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def sensitivity(unit: CompiledPolicy) -> Sensitivity:
    """What is sensitive in a compiled policy; computed once per unit."""
    with _CACHE_LOCK:
        hit = _CACHE.get(id(unit))
        if hit is not None and hit[0] is unit:
            return hit[1]
    fields = unit.schema.fields
    sources = frozenset(key for key, decl in fields.items() if decl.sensitive and decl.derived is None)
    dotted = {f"{fact}.{name}" for fact, name in sources}
    # Derived fields in dependency order: one computed from a sensitive field is sensitive too.
    for decl in unit.schema.derived_order:
        if decl.derived is not None and any(
            isinstance(node, Path) and node.dotted in dotted for node in walk(decl.derived)
        ):
            dotted.add(decl.dotted)
    specs: dict[str, set[str]] = {path: {""} for path in dotted}
    for template in _templates(unit):
        for piece in template.pieces:
            if isinstance(piece, tuple) and piece[0] in specs:
                specs[piece[0]].add(piece[1])
    label = None
    if dotted:
        names = "|".join(re.escape(p) for p in sorted(dotted, key=len, reverse=True))
        label = re.compile(rf"(?<![A-Za-z0-9_.])(?:{names})(?![A-Za-z0-9_])")
    found = Sensitivity(sources, frozenset(dotted), {p: frozenset(s) for p, s in specs.items()}, label)
    with _CACHE_LOCK:
        _CACHE[id(unit)] = (unit, found)
        while len(_CACHE) > 256:
            _CACHE.popitem(last=False)
    return found


def _templates(unit: CompiledPolicy) -> Iterable[Template]:
    yield from unit.reason_texts.values()
    for activation in unit.activations:
        for emit in activation.emits:
            yield from emit.texts
            for _code, _severity, message in emit.alerts:
                yield message


def _renderings(value: Any, specs: Iterable[str]) -> set[str]:
    if isinstance(value, dt.date):
        value = value.isoformat()  # texts see dates as ISO text
    return {text for text in (render_value(value, spec) for spec in specs) if text}


def mask(unit: CompiledPolicy, case: Any, decision: Mapping[str, Any]) -> Masking:
    """The record's input and decision with every sensitive value masked, and what was masked.

    The case and the decision are left as they were. When the decision shows no sensitive value at all (the usual
    case: texts rarely quote a name), `decision_text` is its canonical JSON, already computed to find that out.
    """
    info = sensitivity(unit)
    present = [
        (fact, name)
        for fact, name in sorted(info.sources)
        if isinstance(case, Mapping) and isinstance(case.get(fact), Mapping) and case[fact].get(name) is not None
    ]
    if not present:
        return Masking(case, dict(decision), [], [])
    originals: list[list[Any]] = []
    masked_input = dict(case)  # copied only along the paths that change
    for fact, name in present:
        masked_input[fact] = body = dict(masked_input[fact])
        originals.append([["input", fact, name], body[name]])
        body[name] = MASK
    masker = _TextMasker(sorted(_sensitive_texts(unit, info, case, present), key=len, reverse=True))
    text = canonical(decision)
    if masker.absent_from_json(text) and not any(path in text for path in info.dotted):
        return Masking(masked_input, dict(decision), [path_text(keys) for keys, _ in originals], originals, text)
    masked_decision = _copy(dict(decision))
    _mask_decision(masked_decision, masker, info, originals)
    return Masking(masked_input, masked_decision, [path_text(keys) for keys, _ in originals], originals)


def _sensitive_texts(
    unit: CompiledPolicy, info: Sensitivity, case: Mapping[str, Any], present: list[tuple[str, str]]
) -> set[str]:
    """Every rendering of a sensitive value (supplied or derived) that a text of the policy could contain."""
    values: dict[str, Any]
    if len(info.dotted) == len(info.sources) and all(type(case[f][n]) is str for f, n in present):
        # Only supplied text fields are sensitive, and validation keeps text as sent: no need to validate again.
        values = {f"{f}.{n}": case[f][n] for f, n in present}
    else:
        facts, _ = prepare(unit, case)
        values = {path: facts.get(path.split(".", 1)[0], {}).get(path.split(".", 1)[1]) for path in info.dotted}
    texts: set[str] = set()
    for path, value in values.items():
        if value is not None:
            texts |= _renderings(value, info.specs.get(path, {""}))
    return texts


def _copy(value: Any) -> Any:
    # Both are JSON values; a JSON round trip copies them several times faster than copy.deepcopy.
    return json.loads(json.dumps(value))


class _TextMasker:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.pattern = re.compile("|".join(re.escape(t) for t in texts)) if texts else None
        # JSON escapes quotes, backslashes and control characters: such a text cannot be looked for in JSON text.
        self.json_safe = not any(_JSON_ESCAPED.search(t) for t in texts)

    def absent_from_json(self, text: str) -> bool:
        """True when no sensitive text occurs anywhere in `text`, a JSON encoding of what is to be masked.

        Plain substring tests: a few times faster than the alternation regex over a decision's ~10 KB of JSON.
        """
        return self.json_safe and not any(t in text for t in self.texts)

    def __call__(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(MASK, text)


def _mask_decision(decision: dict[str, Any], masker: _TextMasker, info: Sensitivity, out: list[list[Any]]) -> None:
    def text_at(container: Any, key: PathKey, keys: list[PathKey]) -> None:
        value = container[key]
        if isinstance(value, str):
            masked = masker(value)
            if masked != value:
                out.append([[*keys, key], value])
                container[key] = masked
        elif isinstance(value, list):
            for i in range(len(value)):
                text_at(value, i, [*keys, key])
        elif isinstance(value, dict):
            for k in list(value):
                text_at(value, k, [*keys, key])

    base: list[PathKey] = ["decision"]
    for i, reason in enumerate(decision.get("reasons") or []):
        if isinstance(reason, dict) and "text" in reason:
            text_at(reason, "text", [*base, "reasons", i])
    for name in ("conditions", "alerts", "outputs"):
        if decision.get(name):
            text_at(decision, name, base)
    if isinstance(decision.get("error"), dict) and "message" in decision["error"]:
        text_at(decision["error"], "message", [*base, "error"])
    for i, entry in enumerate(decision.get("fired") or []):
        here = [*base, "fired", i]
        if isinstance(entry.get("outputs"), dict):
            text_at(entry, "outputs", here)
        for j, because in enumerate(entry.get("because") or []):
            if isinstance(because.get("test"), str):
                # Author text, but a test that fired on `x == 'a name'` tells the name as surely as its value.
                text_at(because, "test", [*here, "because", j])
            values = because.get("values")
            if not isinstance(values, dict):
                continue
            for label in list(values):
                if info.label is not None and info.label.search(label) and values[label] is not None:
                    # The trace shows this value because a test read a sensitive field: hide it whatever its type.
                    out.append([[*here, "because", j, "values", label], values[label]])
                    values[label] = MASK
                else:
                    text_at(values, label, [*here, "because", j, "values"])


def unmask(document: dict[str, Any], originals: list[list[Any]]) -> dict[str, Any]:
    """Put the sealed originals back into a record document holding `input` and `decision`; in place."""
    for keys, value in originals:
        target: Any = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return document


__all__ = ["MASK", "Masking", "Sensitivity", "mask", "path_text", "sensitivity", "unmask"]
