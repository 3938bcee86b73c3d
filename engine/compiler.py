"""Compile a `Plan` into durable_rules rulesets: pure JSON building and engine-limit checks.

Nothing here imports durable_rules (engine/runtime.py is the only module that does); the output is
plain text and tables that the runtime feeds to the C extension. The encoding, and why:

* Every fact is one JSON object ``{"t":<tag code>,"d":"<decision>","id":"<id>", "v0":..., ...}`` (the decision
  number as a string: joins hash it for every frame, and the core hashes a string without printing it first).
  Tags are small integers (each pattern's first test is ``{"t":code}``); field names are replaced by
  generated names (``v0``, ``v1``...) so that user names can never collide with ``t``/``d``/``id``/``sid``,
  need no escaping, and their 32-bit FNV-1a hashes (the engine looks properties up by hash only) are
  checked to be distinct at compile time.
* ``id`` is fixed per tag and per decision parity (two ids per tag, all with distinct FNV hashes, which
  is how the engine identifies a message): a fact can never collide with another fact of its decision,
  an un-retracted fact of the previous decision can never swallow an assertion, and retracting a decision
  costs one tiny ``[{"id":...}]`` array. ``d`` (the decision number) is in every fact and every join.
* Numbers are always sent as JSON doubles with a fraction (``5.0``, ``1.0e+20``): the engine's number
  scanner only understands an exponent after a fraction (``1e+20`` is read as the integer 1 and the rest
  of the array crashes the process), and int/int arithmetic truncates. Booleans become ``1.0``/``0.0``
  so that they compare like Python's ``True == 1``.
* Strings are sent as the lowercase hex of their UTF-8 bytes. The engine compares strings with
  ``strncmp`` over the longer length without unescaping, reading the closing quote of a fact's value: raw
  text compares wrongly around ``' '``, ``'!'`` and escaped characters. Hex digits sort like the bytes they
  encode and UTF-8 byte order is code point order, so ``<``/``>``/``==`` on the hex form is exactly
  Python's ``str`` comparison.
* Each DNF branch becomes one engine rule with one pattern per fact tag it reads; patterns after the
  first end with the always-true join ``{"d":{"p0":"d"}}`` (a false join as the last term of an ``$and``
  reads past an array, events.c:612). Identical branches, also across activations, share one rule whose
  action maps back to every activation key. A branch with no atom is always true: it never reaches the engine
  (`CompiledNetwork.always`; the runtime reports it with a decision's first assertion), which spares every
  decision a start fact, its action and its retraction.
* ``a op b`` on two fields of one fact is ``{"$op":{"a":{"$m":"b"}}}`` preceded by ``$ex`` on ``b``: the
  engine evaluates a ``$m`` reference to an absent property with an uninitialised result.

Limits (constants below, each with the C constant it guards) are either compile problems or avoided by
splitting the rules into *partitions* (separate rulesets). Rules are packed greedily; a partition only
accepts a rule if, in the alpha network the engine will build (nodes shared exactly as rete.c's
``findAlpha`` shares them), no fact can satisfy more than MAX_TRUE_ALPHA alpha tests at once, no node gets
more than MAX_ALPHA_CHILDREN children, and no node ends more than MAX_RULES_PER_NODE rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from engine.errors import NO_SPAN, CredoError, Problem, SourceSpan
from engine.plan import COMPARISONS, PRESENCE, Activation, Atom, Branch, Plan

# --- engine limits -------------------------------------------------------------------------------------------------
# events.c MAX_STACK_SIZE = 64: handleAlpha pushes every alpha node a fact satisfies on a fixed stack; a 65th
# push is error 303. We bound the *total* number of nodes one fact can satisfy (an upper bound of the stack
# depth), counting the tag node too, and keep a margin.
MAX_TRUE_ALPHA = 48
# rete.h MAX_SEQUENCE_EXPRESSIONS = 32 (error 113 at 32 entries): a pattern's expression sequence.
MAX_PATTERN_TESTS = 31
# state.h MAX_MESSAGE_FRAMES = 16: facts joined in one rule (error 304 at run time).
MAX_PATTERNS = 16
# state.h MAX_OBJECT_PROPERTIES = 255, error at the 255th property: 254 properties, of which the engine adds
# `sid` and we add `id`, leaving 252 for `t`, `d` and the fields (a failing fact is silently dropped).
MAX_FACT_FIELDS = 252
# rules.h NEXT_BUCKET_LENGTH = 512 children per alpha node (create_ruleset hangs at 513); linear probing
# over those buckets is also what every fact property pays, so stay far below.
MAX_ALPHA_CHILDREN = 256
# rules.h NEXT_LIST_LENGTH = 128 `$nex` children per node (the list has no terminator when full).
MAX_NEX_CHILDREN = 100
# rules.h BETA_LIST_LENGTH = 256 rules ending on one alpha node (error 108).
MAX_RULES_PER_NODE = 200
# rete.c MAX_ACTIONS = 4096 rules per ruleset (error 106); every drained action also scans all rules.
MAX_RULES_PER_PARTITION = 2000
# How many of the most recent partitions a rule may be packed into (first fit over a window keeps
# compile time linear).
_PACK_WINDOW = 4
_RETIRE_AFTER = 8

ENGINE_LIMIT = "engine-limit"

# Field slot kinds: how the runtime encodes a value.
PRESENCE_ONLY = 0  # only present()/missing() read it: the value itself is never sent
NUM = 1
STR = 2
ANY = 3  # only compared with another field of its fact: encoded by its Python type

_OPS = {"==": "$eq", "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_RESERVED_PROPERTIES = ("t", "d", "id", "sid", "$s")
_STATE_ID = "sid-0"  # the engine's own state message for sid "0" lives in the same message index


def fnv1a32(text: str) -> int:
    """The engine's fnv1Hash32 (signed chars, as on x86), used for property, alias and message ids."""
    value = 2166136261
    for byte in text.encode("utf-8"):
        value ^= byte if byte < 128 else (byte - 256) & 0xFFFFFFFF
        value = (value * 16777619) & 0xFFFFFFFF
    return value


def encode_number(value: float) -> str:
    """A float as JSON the engine parses as the same double (always with a fraction; C's atof reads the
    overflowing 1.0e999 as infinity). NaN has no meaning in a comparison here: upstream maps it to null."""
    text = float.__repr__(value)
    if "." in text:
        return text
    if "e" in text:
        cut = text.index("e")
        return f"{text[:cut]}.0{text[cut:]}"
    if text in ("inf", "-inf"):
        return text.replace("inf", "1.0e999")
    raise ValueError("the engine cannot match NaN (an unknown number must be absent, i.e. None)")


def encode_string(value: str) -> str:
    return '"' + value.encode("utf-8", "surrogatepass").hex() + '"'


# --- output --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSlot:
    name: str  # the plan's field name
    key: str  # JSON text preceding the value: ',"v3":'
    kind: int  # PRESENCE_ONLY | NUM | STR | ANY


@dataclass(frozen=True)
class FactLayout:
    """How to write one tagged fact: head + decision number + ids[parity] + slots + '}'."""

    tag: str
    code: int
    head: str  # '{"t":3,"d":'
    ids: tuple[str, str]  # ',"id":"3a"' for even decisions, ',"id":"3b"' for odd ones
    retract: tuple[str, str]  # '{"id":"3a"}'
    slots: tuple[FieldSlot, ...]
    partitions: tuple[int, ...]  # indexes of the partitions with a pattern on this tag


@dataclass(frozen=True)
class Partition:
    index: int
    name: str
    ruleset_json: str
    rules: tuple[tuple[str, tuple[str, ...]], ...]  # engine rule name -> activation keys
    origins: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # engine rule name -> (key, 1-based branch)
    tags: frozenset[str]  # fact tags read here
    max_true_alpha: int  # worst number of alpha tests one fact satisfies here


@dataclass(frozen=True)
class CompiledNetwork:
    name: str
    partitions: tuple[Partition, ...]
    layouts: tuple[FactLayout, ...]  # one per tag some pattern reads
    activation_keys: tuple[str, ...] = field(default=())
    always: tuple[str, ...] = ()  # activation keys with a branch without atoms: true on every decision

    def layout(self, tag: str) -> FactLayout | None:
        for layout in self.layouts:
            if layout.tag == tag:
                return layout
        return None


# --- tests: one alpha node each --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Test:
    key: tuple[object, ...]  # identity under the engine's node sharing (property, operator, value)
    prop: str
    op: str  # a COMPARISONS op, 'ex', 'nex', 'm' (same-fact reference) or 'join'
    value: float | str | None  # the comparable Python value of a constant comparison
    text: str
    rank: tuple[object, ...]  # order inside a pattern


_JOIN = _Test(("join",), "d", "join", None, '{"d":{"p0":"d"}}', (9,))


def _rank(op: str, prop: str, value_text: str) -> tuple[object, ...]:
    # Equalities first: siblings on one property that test different constants are exclusive, which keeps
    # the worst-case count of true nodes low; `$m` tests last because the engine never shares them.
    group = 0 if op == "==" else 1 if op in ("ex", "nex") else 3 if op == "m" else 2
    return (group, prop, op, value_text)


@dataclass
class _Rule:
    patterns: tuple[tuple[str, tuple[_Test, ...]], ...]
    keys: list[str]
    first: Activation
    branch: int
    origins: list[tuple[str, int]]


# --- the alpha network model used for packing --------------------------------------------------------------------


class _Node:
    __slots__ = ("betas", "bound", "by_prop", "children", "groups", "hashed", "listed", "refs", "test")

    def __init__(self, test: _Test | None) -> None:
        self.test = test
        self.children: dict[tuple[object, ...], _Node] = {}
        self.hashed = 0  # children in the node's hash set
        self.listed = 0  # `$nex` children (a separate list)
        self.betas = 0  # rules whose pattern ends here
        self.bound = 1
        # What `bound` is made of, kept so that a change under one child recomputes only that child's share:
        self.by_prop: dict[str, list[_Node]] = {}  # children testing a property against constants or presence
        self.groups: dict[str, int] = {}  # per such property, the most of its children one value satisfies
        self.refs: list[_Node] = []  # `$m` and join children: pushed unconditionally, so they add up

    def link(self, key: tuple[object, ...], child: _Node) -> None:
        self.children[key] = child
        test = child.test
        assert test is not None
        if test.op in ("m", "join"):
            self.refs.append(child)
        else:
            self.by_prop.setdefault(test.prop, []).append(child)

    def unlink(self, key: tuple[object, ...]) -> _Node:
        child = self.children.pop(key)
        test = child.test
        assert test is not None
        if test.op in ("m", "join"):
            self.refs.remove(child)
        else:
            kids = self.by_prop[test.prop]
            kids.remove(child)
            if not kids:
                del self.by_prop[test.prop]
                del self.groups[test.prop]
        return child

    def refresh(self, child: _Node) -> None:
        """Recompute `bound` after `child` was linked, unlinked or changed its own bound.

        `bound` is the most alpha nodes under (and including) this node that one fact can satisfy together.
        Children on different properties, `$m` references and joins (pushed unconditionally) add up; children
        that test one property against constants only add up where one value satisfies them together, which a
        sweep over the sorted constants finds exactly; `$nex` children count only when the property is absent.
        Only the share of `child`'s property is recomputed: the others cannot have changed.
        """
        test = child.test
        assert test is not None
        if test.op not in ("m", "join") and test.prop in self.by_prop:
            self.groups[test.prop] = _group_bound(self.by_prop[test.prop])
        self.bound = 1 + sum(ref.bound for ref in self.refs) + sum(self.groups.values())


def _group_bound(kids: Sequence[_Node]) -> int:
    """The share of one property's children in their parent's bound."""
    absent = 0
    present = 0
    compared: list[_Node] = []
    for kid in kids:
        op = kid.test.op  # type: ignore[union-attr]
        if op == "nex":
            absent += kid.bound
        elif op == "ex":
            present += kid.bound
        else:
            compared.append(kid)
    if compared:
        present += _best_value(compared)
    return max(absent, present)


def _best_value(kids: Sequence[_Node]) -> int:
    values = sorted({kid.test.value for kid in kids})  # type: ignore[union-attr,type-var]
    # Position 2i+1 is the i-th constant, even positions the open intervals around them; a difference
    # array over the positions gives, for every possible value, the total of the children it satisfies.
    where = {value: 2 * i + 1 for i, value in enumerate(values)}
    last = 2 * len(values)
    diff = [0] * (last + 2)
    for kid in kids:
        test = kid.test
        at = where[test.value]  # type: ignore[union-attr]
        amount = kid.bound
        op = test.op  # type: ignore[union-attr]
        if op == "==":
            diff[at] += amount
            diff[at + 1] -= amount
        elif op == "!=":
            diff[0] += amount
            diff[at] -= amount
            diff[at + 1] += amount
            diff[last + 1] -= amount
        elif op == "<":
            diff[0] += amount
            diff[at] -= amount
        elif op == "<=":
            diff[0] += amount
            diff[at + 1] -= amount
        elif op == ">":
            diff[at + 1] += amount
            diff[last + 1] -= amount
        else:  # ">="
            diff[at] += amount
            diff[last + 1] -= amount
    return max(accumulate(diff[: last + 1]))


class _PartitionModel:
    """The alpha network one ruleset will have, kept up to date as rules are packed into it."""

    def __init__(self) -> None:
        self.roots: dict[str, _Node] = {}
        self.rules: list[_Rule] = []
        self.misses = 0  # rules refused in a row: a partition that keeps refusing is full
        self._unique = 0

    def try_add(self, rule: _Rule) -> str | None:
        """Add `rule` if every limit still holds; otherwise leave the model unchanged and say why."""
        created: list[tuple[_Node | None, tuple[object, ...], str]] = []
        paths: list[list[_Node]] = []
        reason: str | None = None
        for tag, tests in rule.patterns:
            root = self.roots.get(tag)
            if root is None:
                root = self.roots[tag] = _Node(None)
                created.append((None, (tag,), tag))
            path = [root]
            node = root
            for test in tests:
                key = test.key
                if test.op in ("m", "join"):
                    # rete.c never shares a node whose value is a reference (it compares string-pool offsets).
                    self._unique += 1
                    key = (*key, self._unique)
                child = node.children.get(key)
                if child is None:
                    child = _Node(test)
                    node.link(key, child)
                    created.append((node, key, tag))
                    if test.op == "nex":
                        node.listed += 1
                        if node.listed > MAX_NEX_CHILDREN:
                            reason = f"more than {MAX_NEX_CHILDREN} missing() tests under one alpha node"
                    else:
                        node.hashed += 1
                        if node.hashed > MAX_ALPHA_CHILDREN:
                            reason = f"more than {MAX_ALPHA_CHILDREN} children on one alpha node"
                node = child
                path.append(node)
            node.betas += 1
            if node.betas > MAX_RULES_PER_NODE:
                reason = f"more than {MAX_RULES_PER_NODE} rules on one identical condition"
            paths.append(path)
            _settle(path)
            if root.bound > MAX_TRUE_ALPHA:
                reason = (
                    f"{root.bound} alpha tests that one '{tag}' fact can satisfy at once; the engine's per-fact "
                    f"stack holds 64 and the compiler allows {MAX_TRUE_ALPHA} (over by {root.bound - MAX_TRUE_ALPHA})"
                )
        if len(self.roots) > MAX_ALPHA_CHILDREN:
            reason = f"more than {MAX_ALPHA_CHILDREN} fact tags"
        if len(self.rules) + 1 > MAX_RULES_PER_PARTITION:
            reason = f"more than {MAX_RULES_PER_PARTITION} rules"
        if reason is None:
            self.rules.append(rule)
            return None
        # Roll back: unlink what this rule created (newest first), then recompute the touched paths.
        for path in paths:
            path[-1].betas -= 1
        for parent, key, tag in reversed(created):
            if parent is None:
                del self.roots[tag]
                continue
            child = parent.unlink(key)
            if child.test is not None and child.test.op == "nex":
                parent.listed -= 1
            else:
                parent.hashed -= 1
        for path in paths:
            _settle(path)
        return reason

    def max_true_alpha(self) -> int:
        return max((root.bound for root in self.roots.values()), default=0)


def _settle(path: Sequence[_Node]) -> None:
    """Bring the bounds along a root-to-node path up to date after the nodes under its last step changed: each
    parent recomputes only the share of the child on the path (O(siblings on that property), not all children)."""
    for index in range(len(path) - 1, 0, -1):
        path[index - 1].refresh(path[index])


# --- compilation ---------------------------------------------------------------------------------------------------


def _value_of(value: object) -> float | str:
    """An atom's constant as the engine will compare it (booleans and ints become floats)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number):
            raise ValueError(f"the engine cannot match the constant {value!r}")
        return 0.0 if number == 0 else number  # -0.0 and 0.0 are one node in the engine
    if isinstance(value, str):
        return value
    raise ValueError(f"unsupported constant {value!r} ({type(value).__name__})")


def _check_atom(activation: Activation, atom: Atom) -> None:
    if atom.op not in COMPARISONS and atom.op not in PRESENCE:
        raise ValueError(f"{activation.key}: unknown operator {atom.op!r}")
    if atom.op in COMPARISONS:
        if atom.other is None and atom.value is None:
            raise ValueError(f"{activation.key}: comparison {atom.op!r} on {atom.ref} without a value")
        if atom.other is not None and atom.other.fact != atom.ref.fact:
            raise ValueError(f"{activation.key}: {atom.ref} is compared with a field of another fact ({atom.other})")


class _Kinds:
    """Per (tag, field) value kind; fields compared with each other must share a kind (union-find)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}
        self.kind: dict[tuple[str, str], int] = {}
        self.compared: set[tuple[str, str]] = set()

    def find(self, item: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def set_kind(self, item: tuple[str, str], kind: int, where: str) -> None:
        root = self.find(item)
        old = self.kind.get(root)
        if old is not None and old != kind:
            raise ValueError(f"{where}: {item[0]}.{item[1]} is compared with both numbers and strings")
        self.kind[root] = kind

    def union(self, a: tuple[str, str], b: tuple[str, str], where: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        kind_b = self.kind.pop(rb, None)
        if kind_b is not None:
            self.set_kind(ra, kind_b, where)

    def slot_kind(self, item: tuple[str, str]) -> int:
        if item not in self.compared:
            return PRESENCE_ONLY
        return self.kind.get(self.find(item), ANY)


def _property_names(fields: Iterable[str]) -> dict[str, str]:
    """Generated property names whose engine hashes collide neither with each other nor with t/d/id/sid."""
    taken = {fnv1a32(name) for name in _RESERVED_PROPERTIES}
    names: dict[str, str] = {}
    counter = 0
    for name in sorted(fields):
        while True:
            candidate = f"v{counter}"
            counter += 1
            if fnv1a32(candidate) not in taken:
                break
        taken.add(fnv1a32(candidate))
        names[name] = candidate
    return names


def _fact_ids(codes: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Two message ids per tag (even/odd decisions) whose 32-bit hashes are all distinct."""
    taken = {fnv1a32(_STATE_ID)}
    ids: dict[int, tuple[str, str]] = {}
    for code in codes:
        pair: list[str] = []
        for parity in "ab":
            candidate = f"{code}{parity}"
            while fnv1a32(candidate) in taken:
                candidate += "_"
            taken.add(fnv1a32(candidate))
            pair.append(candidate)
        ids[code] = (pair[0], pair[1])
    return ids


_ALIASES = tuple(f"p{i}" for i in range(MAX_PATTERNS))
assert len({fnv1a32(alias) for alias in _ALIASES}) == MAX_PATTERNS  # frames find a fact by alias hash


def compile_plan(plan: Plan, spans: Mapping[str, SourceSpan] | None = None) -> CompiledNetwork:
    """Build the rulesets for `plan`; raise CredoError listing every engine-limit problem."""
    spans = spans or {}
    problems: list[Problem] = []

    def problem(activation: Activation, message: str) -> None:
        problems.append(Problem(ENGINE_LIMIT, message, spans.get(activation.key, NO_SPAN)))

    # Pass 1: validate atoms, find every field of every tag and its kind.
    kinds = _Kinds()
    fields_by_tag: dict[str, dict[str, None]] = {}
    first_reader: dict[str, Activation] = {}
    for activation in plan.activations:
        for branch in activation.branches:
            for atom in branch.atoms:
                _check_atom(activation, atom)
                tag = atom.ref.fact
                refs = [atom.ref] if atom.other is None else [atom.ref, atom.other]
                for ref in refs:
                    fields_by_tag.setdefault(tag, {})[ref.field] = None
                    first_reader.setdefault(f"{tag}\0{ref.field}", activation)
                item = (tag, atom.ref.field)
                if atom.op in PRESENCE:
                    kinds.find(item)
                    continue
                kinds.compared.add(item)
                if atom.other is not None:
                    other = (tag, atom.other.field)
                    kinds.compared.add(other)
                    kinds.union(item, other, activation.key)
                else:
                    value = _value_of(atom.value)
                    kinds.set_kind(item, STR if isinstance(value, str) else NUM, activation.key)

    for tag, fields in fields_by_tag.items():
        if len(fields) + 2 > MAX_FACT_FIELDS:
            culprit = first_reader[f"{tag}\0{list(fields)[MAX_FACT_FIELDS - 2]}"]
            problem(
                culprit,
                f"fact '{tag}' needs {len(fields)} fields + 2 tags = {len(fields) + 2} properties; the engine "
                f"holds {MAX_FACT_FIELDS} per fact (over by {len(fields) + 2 - MAX_FACT_FIELDS})",
            )

    tags = sorted(fields_by_tag)
    codes = {tag: code for code, tag in enumerate(tags, start=1)}
    props = {tag: _property_names(fields_by_tag[tag]) for tag in tags}

    # Pass 2: one canonical rule per distinct branch; branches without atoms need no rule.
    rules: dict[tuple[object, ...], _Rule] = {}
    always: dict[str, None] = {}
    for activation in plan.activations:
        for number, branch in enumerate(activation.branches, start=1):
            if not branch.atoms:
                always[activation.key] = None
                continue
            patterns = _patterns(branch, props)
            bad = False
            if len(patterns) > MAX_PATTERNS:
                problem(
                    activation,
                    f"branch {number} of '{activation.key}' joins {len(patterns)} facts; the engine joins at most "
                    f"{MAX_PATTERNS} patterns per rule (over by {len(patterns) - MAX_PATTERNS})",
                )
                bad = True
            for index, (tag, tests) in enumerate(patterns):
                size = 1 + len(tests) + (1 if index else 0)  # tag test, atoms, trailing join
                if size > MAX_PATTERN_TESTS:
                    problem(
                        activation,
                        f"branch {number} of '{activation.key}' puts {size} tests on fact '{tag}' in one pattern; "
                        f"the engine's per-pattern expression cap is {MAX_PATTERN_TESTS} "
                        f"(over by {size - MAX_PATTERN_TESTS})",
                    )
                    bad = True
            if bad:
                continue
            identity = tuple((tag, tuple(test.key for test in tests)) for tag, tests in patterns)
            rule = rules.get(identity)
            if rule is None:
                rules[identity] = _Rule(patterns, [activation.key], activation, number, [(activation.key, number)])
                continue
            rule.origins.append((activation.key, number))
            if activation.key not in rule.keys:
                rule.keys.append(activation.key)

    # A rule that does not fit in an empty partition never will.
    placeable: list[_Rule] = []
    for rule in rules.values():
        reason = _PartitionModel().try_add(rule)
        if reason is None:
            placeable.append(rule)
        else:
            problem(rule.first, f"branch {rule.branch} of '{rule.first.key}' alone needs {reason}")
    if problems:
        raise CredoError(problems)

    # Pack: sorting by tags and tests puts rules that share alpha prefixes next to each other.
    placeable.sort(key=lambda r: tuple((tag, tuple(t.rank for t in tests)) for tag, tests in r.patterns))
    models: list[_PartitionModel] = []
    window: list[_PartitionModel] = []
    for rule in placeable:
        for model in window:
            if model.try_add(rule) is None:
                model.misses = 0
                break
            model.misses += 1
        else:
            model = _PartitionModel()
            assert model.try_add(rule) is None
            models.append(model)
            window.append(model)
        window = [m for m in window if m.misses < _RETIRE_AFTER][-_PACK_WINDOW:]

    partitions = tuple(_render(plan.name, index, model, codes) for index, model in enumerate(models))
    layouts = _layouts(tags, codes, props, kinds, partitions)
    return CompiledNetwork(plan.name, partitions, layouts, tuple(a.key for a in plan.activations), tuple(always))


def _patterns(branch: Branch, props: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, tuple[_Test, ...]], ...]:
    by_tag: dict[str, dict[tuple[object, ...], _Test]] = {}
    needs_ex: dict[str, set[str]] = {}
    for atom in branch.atoms:
        tag = atom.ref.fact
        names = props[tag]
        prop = names[atom.ref.field]
        tests = by_tag.setdefault(tag, {})
        if atom.op in PRESENCE:
            op = "ex" if atom.op == "present" else "nex"
            key: tuple[object, ...] = (prop, op)
            tests[key] = _Test(key, prop, op, None, f'{{"${op}":{{"{prop}":1}}}}', _rank(op, prop, ""))
        elif atom.other is not None:
            other = names[atom.other.field]
            key = (prop, "m", atom.op, other)
            text = f'{{"{_OPS[atom.op]}":{{"{prop}":{{"$m":"{other}"}}}}}}'
            tests[key] = _Test(key, prop, "m", None, text, _rank("m", prop, atom.op + other))
            needs_ex.setdefault(tag, set()).add(other)
        else:
            value = _value_of(atom.value)
            value_text = encode_string(value) if isinstance(value, str) else encode_number(value)
            key = (prop, atom.op, value_text)
            text = f'{{"{_OPS[atom.op]}":{{"{prop}":{value_text}}}}}'
            tests[key] = _Test(key, prop, atom.op, value, text, _rank(atom.op, prop, value_text))
    for tag, others in needs_ex.items():
        tests = by_tag[tag]
        present = {t.prop for t in tests.values() if t.op not in ("nex", "m")}
        for prop in others - present:
            key = (prop, "ex")
            tests[key] = _Test(key, prop, "ex", None, f'{{"$ex":{{"{prop}":1}}}}', _rank("ex", prop, ""))
    patterns = []
    for index, tag in enumerate(sorted(by_tag)):
        tests = tuple(sorted(by_tag[tag].values(), key=lambda t: t.rank))
        patterns.append((tag, (*tests, _JOIN) if index else tests))
    return tuple(patterns)


def _render(plan_name: str, index: int, model: _PartitionModel, codes: Mapping[str, int]) -> Partition:
    rule_texts: list[str] = []
    names: list[tuple[str, tuple[str, ...]]] = []
    origins: list[tuple[str, tuple[tuple[str, int], ...]]] = []
    tags: set[str] = set()
    for number, rule in enumerate(model.rules):
        patterns = []
        for alias, (tag, tests) in zip(_ALIASES, rule.patterns, strict=False):
            tags.add(tag)
            items = ",".join([f'{{"t":{codes[tag]}}}', *(test.text for test in tests)])
            patterns.append(f'{{"{alias}":{{"$and":[{items}]}}}}')
        name = f"r{number}"
        rule_texts.append(f'"{name}":{{"all":[{",".join(patterns)}]}}')
        names.append((name, tuple(rule.keys)))
        origins.append((name, tuple(rule.origins)))
    return Partition(
        index=index,
        name=f"credo:{plan_name}:{index}",
        ruleset_json="{" + ",".join(rule_texts) + "}",
        rules=tuple(names),
        origins=tuple(origins),
        tags=frozenset(tags),
        max_true_alpha=model.max_true_alpha(),
    )


def _layouts(
    tags: Sequence[str],
    codes: Mapping[str, int],
    props: Mapping[str, Mapping[str, str]],
    kinds: _Kinds,
    partitions: Sequence[Partition],
) -> tuple[FactLayout, ...]:
    ids = _fact_ids(codes[tag] for tag in tags)
    layouts = []
    for tag in tags:
        readers = tuple(p.index for p in partitions if tag in p.tags)
        if not readers:
            continue  # no rule reads it (every rule reading it had a problem)
        code = codes[tag]
        slots = tuple(FieldSlot(name, f',"{prop}":', kinds.slot_kind((tag, name))) for name, prop in props[tag].items())
        even, odd = ids[code]
        layouts.append(
            FactLayout(
                tag=tag,
                code=code,
                head=f'{{"t":{code},"d":',
                ids=(f',"id":"{even}"', f',"id":"{odd}"'),
                retract=(f'{{"id":"{even}"}}', f'{{"id":"{odd}"}}'),
                slots=slots,
                partitions=readers,
            )
        )
    return tuple(layouts)
