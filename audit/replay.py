"""Re-running a recorded decision under the exact rules it used, or under another version for comparison.

A record names every document of the snapshot it was decided under (`library`: name, version and digest), so
replay rebuilds that very library: the same schema, the same reason texts, the same versions in force on the
stored `as_of`. The documents come from a resolver the caller passes in (the web layer reads the immutable rule
versions; audit never imports web), and each one's digest must equal the recorded digest, or the replay stops.
The input is the stored case with the sealed sensitive values put back, so replay needs the audit key when the
record masked anything. Nothing else is read at replay time: the date and every fetched value are in the record.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audit.chain import canonical
from audit.errors import ReplayError
from audit.masking import mask, path_text
from audit.overrides import is_override
from audit.records import to_document
from engine.errors import CredoError
from engine.evaluate import decide
from engine.library import Library
from engine.model import AnyDocument

Ref = tuple[str, int, str | None]  # name, version, digest (None: whatever is stored, for --against)
Resolver = Callable[[Sequence[Ref]], list[AnyDocument]]

_LIBRARIES: OrderedDict[tuple[tuple[str, int, str], ...], Library] = OrderedDict()
_LOCK = threading.Lock()
_MAX_LIBRARIES = 16
_ABSENT = "(absent)"


def _library(documents: list[AnyDocument]) -> Library:
    """One Library per exact set of documents: its compiled policies are reused across replays."""
    key = tuple(sorted((d.name, d.version or 0, d.digest) for d in documents))
    with _LOCK:
        library = _LIBRARIES.get(key)
        if library is not None:
            _LIBRARIES.move_to_end(key)
            return library
    try:
        library = Library(documents)
    except CredoError as error:
        raise ReplayError("library-invalid", f"the recorded documents no longer load together: {error}") from None
    with _LOCK:
        _LIBRARIES[key] = library
        while len(_LIBRARIES) > _MAX_LIBRARIES:
            _LIBRARIES.popitem(last=False)
    return library


def _documents(refs: Sequence[Ref], resolver: Resolver) -> list[AnyDocument]:
    documents = resolver(refs)
    by_ref = {(d.name, d.version): d for d in documents}
    for name, version, digest in refs:
        doc = by_ref.get((name, version))
        if doc is None:
            raise ReplayError("unknown-version", f"{name}@{version} is not stored")
        if digest is not None and doc.digest != digest:
            raise ReplayError(
                "digest-mismatch", f"{name}@{version} has digest {doc.digest}, but the decision used {digest}"
            )
    return documents


def differences(recorded: Any, replayed: Any, keys: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (as key tuples) where two JSON values differ; a number and a boolean never compare equal."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        out: list[tuple[Any, ...]] = []
        for key in sorted(set(recorded) | set(replayed)):
            if key not in recorded or key not in replayed:
                out.append((*keys, key))
            else:
                out.extend(differences(recorded[key], replayed[key], (*keys, key)))
        return out
    if isinstance(recorded, list) and isinstance(replayed, list):
        out = []
        for i in range(max(len(recorded), len(replayed))):
            if i >= len(recorded) or i >= len(replayed):
                out.append((*keys, i))
            else:
                out.extend(differences(recorded[i], replayed[i], (*keys, i)))
        return out
    same = type(recorded) is type(replayed) or (
        isinstance(recorded, (int, float))
        and isinstance(replayed, (int, float))
        and not isinstance(recorded, bool)
        and not isinstance(replayed, bool)
    )
    return [] if same and recorded == replayed else [keys]


def _at(value: Any, keys: Sequence[Any]) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return value


def _used_names(decision: Mapping[str, Any]) -> set[str]:
    """The documents a decision names in its provenance: its policy, scorecard and rulesets."""
    named = [*(decision.get("rulesets") or []), decision.get("scorecard"), decision.get("policy")]
    return {str(d["name"]) for d in named if isinstance(d, Mapping) and d.get("name")}


def replay_record(row: Mapping[str, Any], resolver: Resolver, against: tuple[str, int] | None = None) -> dict[str, Any]:
    """{"decision_id", "identical", "differences": [{"path", "recorded", "replayed"}], "against"}.

    The differences show values as a reader without the key sees them: sensitive values stay masked.
    """
    if is_override(row):
        original = json.loads(str(row["input"])).get("override_of")
        raise ReplayError(
            "is-override",
            f"{row['decision_id']} is an underwriter's override: no rules made it, so there is nothing to replay;"
            f" replay the automated decision {original} instead",
        )
    document = to_document(row, unmask=True)
    refs: list[Ref] = [(str(n), int(v), str(d)) for n, v, d in json.loads(row["library"])]
    if against is not None:
        name, number = against
        # The record keeps every active document; only those the policy read can change its decision.
        if name not in _used_names(document["decision"]):
            raise ReplayError("not-used", f"the decision did not use a document named {name}")
        refs = [r for r in refs if r[0] != name] + [(name, number, None)]
    library = _library(_documents(refs, resolver))
    as_of = dt.date.fromisoformat(str(row["as_of"]))
    backend = str(row["engine"]).rsplit(" ", 1)[-1]
    try:
        unit = library.compile_policy(str(row["policy"]), as_of)
        replayed = decide(unit, document["input"], as_of, backend if backend in ("rete", "reference") else "rete")
    except CredoError as error:
        raise ReplayError("replay-failed", "; ".join(p.message for p in error.problems)) from None
    # Compare as stored: the recorded decision went through canonical JSON, so the replayed one does too.
    replayed = json.loads(canonical(replayed))
    recorded = document["decision"]
    found = differences(recorded, replayed)
    shown_recorded = json.loads(row["decision"])  # masked as stored
    shown_replayed = mask(unit, document["input"], replayed).decision
    return {
        "decision_id": row["decision_id"],
        "identical": not found,
        "differences": [
            {
                "path": path_text(keys),
                "recorded": _at(shown_recorded, keys),
                "replayed": _at(shown_replayed, keys),
            }
            for keys in found
        ],
        "against": None if against is None else f"{against[0]}@{against[1]}",
    }


__all__ = ["Ref", "Resolver", "differences", "replay_record"]
