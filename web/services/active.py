"""The active rules as one immutable snapshot per generation, swapped atomically when the set changes.

Every publish, rollback and retire changes version statuses and bumps `rules_state.generation` in one
transaction. A decision asks for the current snapshot once, which costs one indexed read of the generation
(so a publish in any worker process is picked up by the next decision everywhere), and then runs entirely on
that snapshot's engine `Library`: a publish that lands mid-decision cannot mix old and new versions.

The snapshot is read without a long transaction: generation, active versions, generation again, retried
until both reads agree. Every change to the active set bumps the generation in the same commit, so equal
readings prove the versions in between came from one committed state (on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pony import orm

from audit import store
from audit.db import binding_id, db
from engine.documents import parse_document
from engine.errors import CredoError
from engine.evaluate import decide
from engine.library import Library
from engine.model import AnyDocument
from engine.policy import CompiledPolicy

_PARSED: OrderedDict[tuple[str, int, str], AnyDocument] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 1024
UNITS_MAX = 4096


def parse_stored(name: str, number: int, text: str, digest: str) -> AnyDocument:
    """A stored version as an engine document with its version number; parsed once per (name, N, digest)."""
    key = (name, number, digest)
    with _PARSED_LOCK:
        doc = _PARSED.get(key)
        if doc is not None:
            _PARSED.move_to_end(key)
            return doc
    doc = parse_document(text, f"{name}@{number}", version=number)
    with _PARSED_LOCK:
        _PARSED[key] = doc
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return doc


def read_generation() -> int:
    # Raw SQL on purpose: Pony's identity map would return the value cached earlier in the same session. Through
    # audit.store's plain cursor, as it runs before every decision.
    return int(store.query("SELECT generation FROM rules_state WHERE id = 1")[0][0])


def _active_rows() -> list[tuple[str, int, str, str]]:
    return [
        (name, int(number), text, digest)
        for name, number, text, digest in db.select(
            "SELECT name, number, text, digest FROM rule_version WHERE status = 'active' ORDER BY name, number"
        )
    ]


@dataclass(frozen=True)
class Snapshot:
    binding: int
    generation: int
    library: Library = field(compare=False)
    versions: tuple[tuple[str, int, str], ...]  # (name, N, digest) of every active version
    # (policy, day) -> its compiled unit. A snapshot never changes, so which versions are in force on a day never
    # does either; resolving them again costs a tenth of a millisecond on every decision.
    units: dict[tuple[str, dt.date], CompiledPolicy] = field(default_factory=dict, compare=False, repr=False)

    def compile_policy(self, name: str, as_of: dt.date | None = None) -> CompiledPolicy:
        day = as_of or dt.date.today()
        unit = self.units.get((name, day))
        if unit is None:
            unit = self.library.compile_policy(name, day)
            if len(self.units) < UNITS_MAX:  # as_of comes from callers: bound what they can make us keep
                self.units[(name, day)] = unit
        return unit

    def decide(self, policy: str, case: object, as_of: dt.date | None = None, engine: str = "rete") -> dict[str, Any]:
        """One decision, entirely under this snapshot. Raises CredoError for an unknown policy or invalid case."""
        return decide(self.compile_policy(policy, as_of), case, as_of, engine)


def build_snapshot(generation: int, rows: Iterable[tuple[str, int, str, str]], binding: int = 0) -> Snapshot:
    rows = list(rows)
    documents = [parse_stored(name, number, text, digest) for name, number, text, digest in rows]
    return Snapshot(binding, generation, Library(documents), tuple((n, v, d) for n, v, _, d in rows))


def load_snapshot(attempts: int = 20) -> Snapshot:
    with orm.db_session:
        for _ in range(attempts):
            before = read_generation()
            rows = _active_rows()
            if read_generation() == before:
                return build_snapshot(before, rows, binding_id())
    raise CredoError.single("rules-busy", "the active rules kept changing while being read; try again")


class ActiveRules:
    """The per-process holder of the current snapshot."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        with orm.db_session:
            generation = read_generation()
        if snapshot is not None and snapshot.generation == generation and snapshot.binding == binding_id():
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.binding != binding_id() or snapshot.generation < generation:
                snapshot = self._snapshot = load_snapshot()
            return snapshot

    def decide(self, policy: str, case: object, as_of: dt.date | None = None, engine: str = "rete") -> dict[str, Any]:
        return self.current().decide(policy, case, as_of, engine)

    def reset(self) -> None:
        with self._lock:
            self._snapshot = None


ACTIVE = ActiveRules()


def documents_of(snapshot: Snapshot, names: Sequence[str] | None = None) -> list[AnyDocument]:
    if names is None:
        return list(snapshot.library.documents)
    wanted = set(names)
    return [d for d in snapshot.library.documents if d.name in wanted]


__all__ = ["ACTIVE", "ActiveRules", "Snapshot", "build_snapshot", "load_snapshot", "parse_stored", "read_generation"]
