"""Run a compiled network on durable_rules' C engine: the only module that imports durable_rules.

The extension is driven directly (`durable.engine.Host` starts timer threads that crash, swallows action
errors and re-fires rules forever). Per partition there is one ruleset and one reused session (sid "0",
never derived from input, never deleted, so neither the 1,024-session cap nor `delete_state` on a session
that never ran an action can be reached). A decision asserts its facts, drains the activations after every
call, and retracts its facts by id when it ends.

The extension never releases the GIL and its handle table has no lock, so one process-wide lock is held for
a whole decision: threads get isolation, not parallelism (use one process per core; fork after building is
supported).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType

import durable_rules_engine as _dre

from engine.compiler import NUM, PRESENCE_ONLY, STR, CompiledNetwork, encode_number

__all__ = ["EngineFault", "MatchSession", "Network"]

_assert_facts = _dre.assert_facts
_retract_facts = _dre.retract_facts
_start_action = _dre.start_action_for_state
_complete_action = _dre.complete_and_start_action
_EngineError = _dre.error
_get_ident = threading.get_ident

# A fresh ruleset's only session lives at offset 1 of its state pool (state.c: the pool's first free slot).
# `assert_facts` returns another offset when it silently stopped on a fact it could not build; acting on
# that offset would crash, so it is treated as a fault.
_SESSION_OFFSET = 1
_CODE = re.compile(r"error code: (\d+)")

_LOCK = threading.RLock()
_NETWORKS: weakref.WeakSet[Network] = weakref.WeakSet()


class EngineFault(RuntimeError):
    """The C engine failed during a decision; `code` is its error code (e.g. 303). The session was reset."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"durable_rules engine error {code}: {detail}")
        self.code = code


def _fault(exc: BaseException) -> EngineFault:
    if isinstance(exc, MemoryError):
        return EngineFault(101, "out of memory")
    found = _CODE.search(str(exc))
    return EngineFault(int(found.group(1)) if found else 0, str(exc))


# Encoded strings, by value: enum symbols and other short texts recur from case to case, and hexadecimal encoding
# costs more than a lookup. Bounded: cleared when full, so arbitrary text cannot grow it without limit.
_STRINGS: dict[str, str] = {}
_STRINGS_MAX = 4096
_STRING_CACHED_LENGTH = 64


def _encode_string(value: str) -> str:
    text = '"' + value.encode("utf-8", "surrogatepass").hex() + '"'
    if len(value) <= _STRING_CACHED_LENGTH:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        _STRINGS[value] = text
    return text


def _encode_other(value: object, kind: int, name: str) -> str:
    """The slow path of value encoding: subclasses (numpy scalars...) and type errors."""
    if isinstance(value, bool):
        if kind == STR:
            raise TypeError(f"field '{name}' expects a string, got {value!r}")
        return "1.0" if value else "0.0"
    if isinstance(value, int | float):
        if kind == STR:
            raise TypeError(f"field '{name}' expects a string, got {value!r}")
        return encode_number(float(value))
    if isinstance(value, str):
        if kind == NUM:
            raise TypeError(f"field '{name}' expects a number, got {value!r}")
        return '"' + str(value).encode("utf-8", "surrogatepass").hex() + '"'
    raise TypeError(f"field '{name}' has an unsupported value {value!r} ({type(value).__name__})")


def _delete_rulesets(handles: list[int | None]) -> None:
    with _LOCK:
        for index, handle in enumerate(handles):
            handles[index] = None
            if handle is not None:
                with contextlib.suppress(_EngineError):
                    _dre.delete_ruleset(handle)


class Network:
    """The rulesets of one compiled plan; open one `session()` per decision."""

    def __init__(self, compiled: CompiledNetwork) -> None:
        self.compiled = compiled
        partitions = compiled.partitions
        self._names = tuple(p.name for p in partitions)
        self._jsons = tuple(p.ruleset_json for p in partitions)
        self._rule_keys = tuple({name: frozenset(keys) for name, keys in p.rules} for p in partitions)
        self._handles: list[int | None] = [None] * len(partitions)
        # tag -> (head, ids, retract ids, slots as plain tuples, bit mask of the partitions reading it)
        self._layouts: dict[str, tuple[str, tuple[str, str], tuple[str, str], tuple[tuple[str, str, int], ...], int]]
        self._layouts = {}
        for layout in compiled.layouts:
            mask = sum(1 << i for i in layout.partitions)
            slots = tuple((s.name, s.key, s.kind) for s in layout.slots)
            self._layouts[layout.tag] = (layout.head, layout.ids, layout.retract, slots, mask)
        # Keys with a branch without tests: true on every decision, reported with its first assertion.
        self._always = frozenset(compiled.always)
        self._decision = 0
        self._busy = False
        self._owner = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _delete_rulesets, self._handles)
        self._finalizer.atexit = False
        with _LOCK:
            try:
                for index in range(len(partitions)):
                    self._create(index)
            except BaseException:
                self._finalizer()
                raise
        _NETWORKS.add(self)

    def _create(self, index: int) -> int:
        try:
            handle: int = _dre.create_ruleset(self._names[index], self._jsons[index])
        except (_EngineError, MemoryError) as exc:
            raise _fault(exc) from exc
        self._handles[index] = handle
        return handle

    def _reset(self, index: int) -> None:
        """Throw a partition's ruleset away (its session may hold half a decision); recreate it lazily."""
        handle = self._handles[index]
        self._handles[index] = None
        if handle is not None:
            with contextlib.suppress(_EngineError):
                _dre.delete_ruleset(handle)

    def session(self) -> MatchSession:
        """A context manager for one decision: holds the process-wide lock until it exits."""
        return MatchSession(self)

    def close(self) -> None:
        with _LOCK:
            if self._busy:
                raise RuntimeError("cannot close a network while a decision is open")
            self._closed = True
            self._finalizer()

    @property
    def partition_count(self) -> int:
        return len(self._handles)


class MatchSession:
    """One decision: `assert_facts` returns the activation keys that became true because of that call."""

    __slots__ = (
        "_dtext",
        "_fault",
        "_first",
        "_lock",
        "_mask",
        "_net",
        "_open",
        "_parity",
        "_reported",
        "_retract",
        "_tags",
    )

    def __init__(self, network: Network) -> None:
        self._net = network
        self._open = False

    def __enter__(self) -> MatchSession:
        lock = _LOCK
        lock.acquire()
        net = self._net
        try:
            if self._open:
                raise RuntimeError("a MatchSession is entered once")
            if net._closed:
                raise RuntimeError("the network is closed")
            if net._busy:
                raise RuntimeError("this network already has an open session in this thread")
        except BaseException:
            lock.release()
            raise
        net._busy = True
        net._owner = _get_ident()
        self._lock = lock
        self._open = True
        self._first = True
        # A fresh number per decision: joins compare it, so facts of two decisions can never meet. It is sent as a
        # JSON string: the core hashes a join value for every frame, a string directly but a number only after
        # printing it with snprintf (events.c getFrameHashForExpression), a few microseconds per decision.
        net._decision += 1
        self._dtext = f'"{net._decision}"'
        self._parity = net._decision & 1
        self._tags: set[str] = set()
        self._reported: set[str] = set()
        self._retract: list[str] = []
        self._mask = 0
        self._fault: EngineFault | None = None
        return self

    def assert_facts(self, facts: Mapping[str, Mapping[str, object]]) -> set[str]:
        if not self._open:
            raise RuntimeError("assert_facts outside of an open session")
        if self._fault is not None:
            raise self._fault
        net = self._net
        parity = self._parity
        dtext = self._dtext
        layouts = net._layouts
        parts: list[str] = []
        append = parts.append
        retract: list[str] = []
        tags: list[str] = []
        mask = 0
        for tag, values in facts.items():
            layout = layouts.get(tag)
            if layout is None:
                continue  # no rule reads this fact
            if tag in self._tags or tag in tags:
                raise ValueError(f"fact '{tag}' was already asserted in this decision")
            head, ids, rids, slots, tag_mask = layout
            tags.append(tag)
            if parts:
                append(",")
            append(head)
            append(dtext)
            append(ids[parity])
            get = values.get
            for name, key, kind in slots:
                value = get(name)
                if value is None:
                    continue  # absent: every comparison on it stays false (three-valued logic)
                if kind == PRESENCE_ONLY:
                    append(key)
                    append("0")
                    continue
                vtype = type(value)
                if vtype is float:
                    if kind == STR:
                        raise TypeError(f"{tag}.{name} expects a string, got {value!r}")
                    text = repr(value)
                    if "." not in text:
                        text = encode_number(value)  # exponent without fraction, or not finite
                elif vtype is str:
                    if kind == NUM:
                        raise TypeError(f"{tag}.{name} expects a number, got {value!r}")
                    text = _STRINGS.get(value)  # type: ignore[arg-type]
                    if text is None:
                        text = _encode_string(value)  # type: ignore[arg-type]
                elif vtype is int and kind != STR:
                    text = encode_number(float(value))  # type: ignore[arg-type]
                else:
                    text = _encode_other(value, kind, f"{tag}.{name}")
                append(key)
                append(text)
            append("}")
            retract.append(rids[parity])
            mask |= tag_mask
        # A branch without tests holds on every decision: reported with the first assertion, as if a start fact
        # had been asserted with it (it never goes to the engine).
        fired: set[str] = set(net._always) if self._first else set()
        self._first = False
        self._tags.update(tags)
        if mask:
            self._retract += retract
            self._mask |= mask
            fired |= self._run("[" + "".join(parts) + "]", mask)
        fired -= self._reported
        self._reported |= fired
        return fired

    def _run(self, payload: str, mask: int) -> set[str]:
        """Assert `payload` into every partition of `mask` and drain its actions: the keys that fired."""
        net = self._net
        fired: set[str] = set()
        handles = net._handles
        index = 0
        while mask:
            if mask & 1:
                try:
                    handle = handles[index]
                    if handle is None:
                        handle = net._create(index)
                    offset = _assert_facts(handle, payload)[1]
                    if offset != _SESSION_OFFSET:
                        raise _EngineError(f"a fact could not be built (session offset {offset}), error code: 0")
                    result = _start_action(handle, offset)
                    if result is not None:
                        keys = net._rule_keys[index]
                        message = result[1]
                        while message is not None:
                            # The action's JSON starts with {"<rule name>": ...
                            fired |= keys[message[2 : message.index('"', 2)]]
                            message = _complete_action(handle, offset)
                except BaseException as exc:
                    # Whatever stopped us (engine error, KeyboardInterrupt) may have left the session locked
                    # or half-asserted: rebuild this partition; the others are retracted on exit as usual.
                    net._reset(index)
                    self._mask &= ~(1 << index)
                    if isinstance(exc, _EngineError | MemoryError | EngineFault):
                        fault = exc if isinstance(exc, EngineFault) else _fault(exc)
                        self._fault = fault
                        raise fault from exc
                    raise
            mask >>= 1
            index += 1
        return fired

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        net = self._net
        fault: EngineFault | None = None
        try:
            mask = self._mask
            if mask:
                payload = "[" + ",".join(self._retract) + "]"
                handles = net._handles
                index = 0
                while mask:
                    if mask & 1 and handles[index] is not None:
                        try:
                            _retract_facts(handles[index], payload)
                        except BaseException as error:
                            net._reset(index)
                            if not isinstance(error, _EngineError | MemoryError):
                                raise
                            fault = fault or _fault(error)
                    mask >>= 1
                    index += 1
        finally:
            self._open = False
            net._busy = False
            self._lock.release()
        if fault is not None and exc_type is None:
            raise fault


def _after_fork_in_child() -> None:
    # A lock held by a thread of the parent stays held forever in the child; a session such a thread had
    # open holds facts of a decision nobody will finish: rebuild those rulesets.
    global _LOCK
    _LOCK = threading.RLock()
    me = threading.get_ident()
    for net in list(_NETWORKS):
        if net._busy and net._owner != me:
            net._busy = False
            for index in range(len(net._handles)):
                net._reset(index)


os.register_at_fork(after_in_child=_after_fork_in_child)
