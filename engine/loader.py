"""Strict YAML loading for policy authors' rule files.

Why not `yaml.safe_load`?  Three reasons, all about trust in what authors wrote:

* YAML 1.1 typing surprises people: `NO` becomes `False`, `1:30` becomes 5400,
  `2026-01-01` becomes a date and `012` an octal 10.  Here a plain scalar is a
  number, a boolean or null only in the few obvious spellings; everything else is
  the text the author typed.
* Later stages need to point at the author's text, so every node keeps its
  1-based line and column (and scalars the column where their text starts).
* Rule files come from people, not from trusted programs: duplicate keys, tags,
  merge keys, alias bombs and absurd nesting are rejected with a `Problem` each,
  never with a Python exception or a hang.

The tree is built straight from PyYAML's event stream with an explicit stack;
nothing in this module recurses, so input depth can never hit Python's
recursion limit.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Protocol

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.reader import ReaderError

from engine.errors import CredoError, Problem, SourceSpan, did_you_mean

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "YMap", "YNode", "YScalar", "YSeq", "load_yaml", "to_plain"]

# Limits. Real policy files are a few hundred lines; these only stop abuse.
MAX_CHARS = 2_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000

# libyaml is much faster and equally non-recursive; fall back to the pure-Python parser.
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR_TAG = "tag:yaml.org,2002:str"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"

ScalarValue = str | int | float | bool | None


@dataclass(frozen=True)
class YScalar:
    """A scalar. `value` is resolved by our rules (see `_resolve_plain`); `source` is the raw text."""

    value: ScalarValue
    # Where the scalar starts: the quote for quoted scalars, `|`/`>` for block scalars.
    span: SourceSpan
    # Where the text itself starts: after the quote; the first content line for block scalars.
    content_span: SourceSpan
    # None = plain, "'", '"', "|" or ">".
    style: str | None
    # The scalar's text exactly as PyYAML reports it (event.value).
    source: str


@dataclass(frozen=True)
class YSeq:
    """A sequence (block `- x` or flow `[x]`)."""

    items: tuple[YNode, ...]
    span: SourceSpan


@dataclass(frozen=True)
class YMap:
    """A mapping. Keys are the source text of scalar keys; dict order is file order."""

    items: dict[str, YNode]
    key_spans: dict[str, SourceSpan]
    span: SourceSpan


YNode = YScalar | YSeq | YMap


# --------------------------------------------------------------------------- plain scalar resolution

_BOOLS: dict[str, bool] = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
_NULLS = frozenset({"null", "Null", "NULL", "~", ""})
_DIGITS = r"[0-9](?:_?[0-9])*"
# No leading zeros: `012` is an octal in YAML 1.1 and a decimal elsewhere, so it stays text.
_INT_PART = r"(?:0|[1-9](?:_?[0-9])*)"
_INT_RE = re.compile(rf"[-+]?{_INT_PART}")
_FLOAT_RE = re.compile(
    rf"[-+]?(?:(?:{_INT_PART}\.(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][-+]?{_DIGITS})?|{_INT_PART}[eE][-+]?{_DIGITS})"
)


def _resolve_plain(text: str) -> ScalarValue:
    """Type a plain scalar by the deliberately small rule set; anything unusual stays text."""
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _NULLS:
        return None
    if _INT_RE.fullmatch(text):
        try:
            return int(text.replace("_", ""))
        except ValueError:  # longer than Python's int-from-str digit limit
            return text
    if _FLOAT_RE.fullmatch(text):
        number = float(text.replace("_", ""))
        # `1e999` would be infinity; `.inf` is text by rule, so overflow is text too.
        return text if math.isinf(number) else number
    return text


# --------------------------------------------------------------------------- source positions

_BREAK_CHARS = "\n\r\x85\u2028\u2029"  # what PyYAML and libyaml count as line breaks
_BREAK_RE = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
# YAML's printable set (the same test PyYAML's reader applies).
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index, counting breaks the way YAML does."""
    index = max(0, min(index, len(text)))
    prefix = text[:index]
    line = len(_BREAK_RE.findall(prefix)) + 1
    last_break = max(prefix.rfind(ch) for ch in _BREAK_CHARS)
    return line, index - last_break


def _line_text(text: str, index: int) -> str:
    """The whole source line containing `index` (without its break)."""
    index = max(0, min(index, len(text)))
    start = max(text.rfind(ch, 0, index) for ch in _BREAK_CHARS) + 1
    end = len(text)
    for ch in _BREAK_CHARS:
        found = text.find(ch, start)
        if found != -1:
            end = min(end, found)
    return text[start:end]


class _Cursor:
    """Walks source text forward from a mark, tracking line/column like the YAML scanners."""

    __slots__ = ("column", "index", "line", "text")

    def __init__(self, text: str, index: int, line: int, column: int):
        self.text = text
        self.index = index
        self.line = line
        self.column = column

    def peek(self) -> str:
        return self.text[self.index] if self.index < len(self.text) else ""

    def advance(self) -> None:
        ch = self.text[self.index]
        self.index += 1
        if ch in _BREAK_CHARS:
            if ch == "\r" and self.peek() == "\n":
                self.index += 1
            self.line += 1
            self.column = 0
        else:
            self.column += 1

    def skip_to_next_line(self) -> None:
        while self.index < len(self.text) and self.peek() not in _BREAK_CHARS:
            self.advance()
        if self.index < len(self.text):
            self.advance()

    def skip_blanks_and_comments(self) -> None:
        """Skip spaces, tabs, line breaks and `#` comments (a `#` here always follows whitespace)."""
        while self.index < len(self.text):
            ch = self.peek()
            if ch == "#":
                while self.index < len(self.text) and self.peek() not in _BREAK_CHARS:
                    self.advance()
            elif ch in " \t" or ch in _BREAK_CHARS:
                self.advance()
            else:
                return

    def skip_token(self) -> None:
        while self.index < len(self.text) and self.peek() not in " \t" and self.peek() not in _BREAK_CHARS:
            self.advance()


# --------------------------------------------------------------------------- tree building


@dataclass(slots=True)
class _SeqFrame:
    span: SourceSpan
    anchor: str | None
    start_count: int
    items: list[YNode] = field(default_factory=list)


@dataclass(slots=True)
class _MapFrame:
    span: SourceSpan
    anchor: str | None
    start_count: int
    items: dict[str, YNode] = field(default_factory=dict)
    key_spans: dict[str, SourceSpan] = field(default_factory=dict)
    # Between a key and its value: the key text, or None when the value is to be dropped
    # (the key was a duplicate or otherwise rejected; the problem is already recorded).
    key: str | None = None
    expecting_value: bool = False


class _Mark(Protocol):
    """What we read from a mark; PyYAML's `yaml.Mark` and libyaml's `_yaml.Mark` both fit (0-based)."""

    line: int
    column: int


class _Abort(Exception):
    """Internal: a problem that ends the pass (syntax, size, depth, extra document)."""


def _show_tag(tag: str) -> str:
    if tag.startswith(_YAML_TAG_PREFIX):
        return "!!" + tag[len(_YAML_TAG_PREFIX) :]
    return tag


class _Builder:
    """One pass over the event stream; collects problems, builds the tree with an explicit stack."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.problems: list[Problem] = []
        self.stack: list[_SeqFrame | _MapFrame] = []
        self.anchors: dict[str, tuple[YNode, int]] = {}
        self.open_anchors: set[str] = set()
        self.count = 0  # nodes in the document as expanded (an alias costs its anchor's size)
        self.documents = 0
        self.root: YNode | None = None
        self.root_is_empty = False

    # ---- helpers

    def span(self, line0: int, column0: int) -> SourceSpan:
        return SourceSpan(self.file, line0 + 1, column0 + 1)

    def mark_span(self, mark: _Mark | None) -> SourceSpan:
        if mark is None:
            return SourceSpan(self.file, 1, 1)
        return self.span(max(mark.line, 0), max(mark.column, 0))

    def add(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, span, hint))

    def abort(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.add(code, message, span, hint)
        raise _Abort

    def grow(self, amount: int, event: Event) -> None:
        self.count += amount
        if self.count > MAX_NODES:
            self.abort(
                "yaml-too-large",
                f"the document expands to more than {MAX_NODES:,} nodes",
                self.mark_span(event.start_mark),
                "each use of an alias (*name) counts the whole anchored value again",
            )

    # ---- main loop

    def run(self) -> YNode:
        text = self.text
        if len(text) > MAX_CHARS:
            self.add(
                "yaml-too-large",
                f"the file has {len(text):,} characters; the limit is {MAX_CHARS:,}",
                SourceSpan(self.file, 1, 1),
            )
            raise CredoError(self.problems)
        bad = _NON_PRINTABLE.search(text)
        if bad is not None:
            line, column = _position(text, bad.start())
            self.add(
                "yaml-syntax",
                f"character U+{ord(bad.group()):04X} is not allowed in a YAML file",
                SourceSpan(self.file, line, column),
                "remove control characters; save the file as UTF-8 text",
            )
            raise CredoError(self.problems)
        with contextlib.suppress(_Abort):  # the reader stops at the first syntax error; its problem is recorded
            self.read_events()
        if not self.problems:
            if self.documents == 0 or self.root is None:
                self.add("yaml-empty", "the file contains no YAML document", SourceSpan(self.file, 1, 1))
            elif self.root_is_empty:
                assert isinstance(self.root, YScalar)
                self.add("yaml-empty", "the YAML document is empty", self.root.span)
        if self.problems:
            raise CredoError(self.problems)
        assert self.root is not None
        return self.root

    def read_events(self) -> None:
        try:
            loader = _Loader(self.text)
        except Exception as exc:
            self.syntax_error(exc)
            return
        try:
            while True:
                try:
                    event = loader.get_event()
                except Exception as exc:
                    self.syntax_error(exc)
                    return
                if event is None or isinstance(event, StreamEndEvent):
                    return
                self.handle(event)
        finally:
            loader.dispose()

    def syntax_error(self, exc: BaseException) -> None:
        """Turn a PyYAML (or codec) exception into one `yaml-syntax` problem with a real position."""
        if isinstance(exc, yaml.MarkedYAMLError):
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            if problem == "exceeded maximum nesting depth":  # libyaml's own depth guard (1,000 levels)
                self.add(
                    "yaml-too-deep",
                    f"the document nests more than {MAX_DEPTH} levels deep",
                    self.mark_span(mark),
                )
                return
            span = self.mark_span(mark)
            if mark is not None and self.tab_in_indentation(mark):
                self.add(
                    "yaml-syntax",
                    "a tab character is used for indentation; YAML indents with spaces only",
                    span,
                    "replace the tabs at the start of this line with spaces",
                )
                return
            message = problem
            if exc.context and exc.context != problem:
                message = f"{problem} ({exc.context})"
            self.add("yaml-syntax", message, span)
        elif isinstance(exc, ReaderError):
            line, column = _position(self.text, exc.position)
            self.add("yaml-syntax", f"unreadable character: {exc.reason}", SourceSpan(self.file, line, column))
        else:
            self.add("yaml-syntax", f"cannot read the YAML: {exc}", SourceSpan(self.file, 1, 1))

    def tab_in_indentation(self, mark: _Mark) -> bool:
        index = getattr(mark, "index", None)
        if not isinstance(index, int) or not 0 <= index <= len(self.text):
            return False
        if index < len(self.text) and self.text[index] == "\t":
            return True
        line = _line_text(self.text, index)
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        return "\t" in indent

    # ---- events

    def handle(self, event: Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.abort(
                    "yaml-multiple-documents",
                    "the file holds more than one YAML document",
                    self.mark_span(event.start_mark),
                    "a rule file is one document: remove the extra '---' or split it into separate files",
                )
        elif isinstance(event, ScalarEvent):
            self.on_scalar(event)
        elif isinstance(event, AliasEvent):
            self.on_alias(event)
        elif isinstance(event, CollectionStartEvent):
            self.on_collection_start(event)
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            self.on_collection_end()
        # StreamStart and DocumentEnd carry nothing we need.

    def check_tag(self, event: ScalarEvent | CollectionStartEvent, allowed: bool) -> None:
        tag = event.tag
        if tag is None or (allowed and tag == _STR_TAG):
            return
        self.add(
            "yaml-tag",
            f"the tag '{_show_tag(tag)}' is not allowed",
            self.mark_span(event.start_mark),
            "only '!!str' on a scalar is allowed (to force text); remove the tag",
        )

    def on_scalar(self, event: ScalarEvent) -> None:
        self.grow(1, event)
        self.check_tag(event, allowed=True)
        style = event.style or None  # libyaml reports plain as "", PyYAML as None
        source: str = event.value
        value: ScalarValue = source if (style is not None or event.tag is not None) else _resolve_plain(source)
        span, content = self.scalar_spans(event, style)
        node = YScalar(value, span, content, style, source)
        if event.anchor is not None:
            self.anchors[event.anchor] = (node, 1)
        if not self.stack and style is None and source == "" and event.tag is None and event.anchor is None:
            self.root_is_empty = True
        self.attach(node, event)

    def scalar_spans(self, event: ScalarEvent, style: str | None) -> tuple[SourceSpan, SourceSpan]:
        """Span of the scalar token (past any anchor/tag) and of its first character of text."""
        start, end = event.start_mark, event.end_mark
        properties = (event.anchor is not None) + (event.tag is not None)
        simple = self.span(start.line, start.column)
        if properties == 0 and style in (None, "'", '"'):
            return simple, simple if style is None else simple.shifted(1)
        start_index = getattr(start, "index", None)
        end_index = getattr(end, "index", None)
        if not isinstance(start_index, int) or not isinstance(end_index, int):
            return simple, simple
        cursor = _Cursor(self.text, start_index, start.line, start.column)
        for _ in range(properties):
            cursor.skip_blanks_and_comments()
            cursor.skip_token()
        if properties:
            cursor.skip_blanks_and_comments()
        if cursor.index >= end_index:  # an empty scalar after its properties: nothing to point at
            return simple, simple
        span = self.span(cursor.line, cursor.column)
        if style is None:
            return span, span
        if style in ("'", '"'):
            return span, span.shifted(1)
        return span, self.block_content_span(cursor, end_index, event.value) or span

    def block_content_span(self, cursor: _Cursor, end_index: int, value: str) -> SourceSpan | None:
        """First content character of a `|`/`>` scalar: skip the header line and blank lines."""
        cursor.skip_to_next_line()
        while cursor.index < end_index:
            while cursor.peek() == " ":
                cursor.advance()
            ch = cursor.peek()
            if ch == "" or cursor.index >= end_index:
                return None
            if ch in _BREAK_CHARS:
                cursor.advance()
                continue
            # Spaces beyond the block's indentation are part of the text (e.g. with `|2`).
            first_line = value.lstrip("\n").split("\n", 1)[0]
            extra = len(first_line) - len(first_line.lstrip(" "))
            return self.span(cursor.line, max(cursor.column - extra, 0))
        return None

    def on_alias(self, event: AliasEvent) -> None:
        name = event.anchor
        span = self.mark_span(event.start_mark)
        if name in self.open_anchors:
            self.add("yaml-alias", f"the alias '*{name}' refers to a value that contains it", span)
            node: YNode = YScalar(None, span, span, None, "")
            size = 1
        elif name in self.anchors:
            node, size = self.anchors[name]
        else:
            self.add(
                "yaml-alias",
                f"the alias '*{name}' has no anchor '&{name}' before it",
                span,
                did_you_mean(name, self.anchors),
            )
            node, size = YScalar(None, span, span, None, ""), 1
        self.grow(size, event)
        self.attach(node, event)

    def on_collection_start(self, event: CollectionStartEvent) -> None:
        span = self.mark_span(event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            self.abort("yaml-too-deep", f"the document nests more than {MAX_DEPTH} levels deep", span)
        self.grow(1, event)
        self.check_tag(event, allowed=False)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        frame: _SeqFrame | _MapFrame
        if isinstance(event, SequenceStartEvent):
            frame = _SeqFrame(span, event.anchor, self.count)
        else:
            assert isinstance(event, MappingStartEvent)
            frame = _MapFrame(span, event.anchor, self.count)
        self.stack.append(frame)

    def on_collection_end(self) -> None:
        frame = self.stack.pop()
        node: YNode
        if isinstance(frame, _SeqFrame):
            node = YSeq(tuple(frame.items), frame.span)
        else:
            node = YMap(frame.items, frame.key_spans, frame.span)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (node, self.count - frame.start_count + 1)
        self.attach(node, None)

    def attach(self, node: YNode, event: Event | None) -> None:
        """Give a finished node to its parent: the root, a sequence item, a key or a value."""
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        if isinstance(top, _SeqFrame):
            top.items.append(node)
        elif top.expecting_value:
            if top.key is not None:
                top.items[top.key] = node
            top.key = None
            top.expecting_value = False
        else:
            top.key = self.accept_key(top, node, event)
            top.expecting_value = True

    def accept_key(self, frame: _MapFrame, node: YNode, event: Event | None) -> str | None:
        """Validate a mapping key; its text, or None (problem recorded) to drop the entry."""
        if not isinstance(node, YScalar):
            self.add(
                "yaml-complex-key",
                "a mapping key must be a plain piece of text, not a list or mapping",
                node.span,
            )
            return None
        span = node.span
        if isinstance(event, AliasEvent):
            span = self.mark_span(event.start_mark)
        elif isinstance(event, ScalarEvent) and self.explicit_key(event):
            self.add(
                "yaml-complex-key",
                "explicit '? ' keys are not supported",
                span,
                "write the key as 'key: value'",
            )
            return None
        key = node.source
        if node.style is None and key == "<<":
            self.add(
                "yaml-merge-key",
                "merge keys ('<<') are not supported",
                span,
                "write the keys out in full in this mapping instead of merging another one in",
            )
            return None
        if key in frame.key_spans:
            first = frame.key_spans[key]
            self.add(
                "yaml-duplicate-key",
                f"duplicate key '{key}' (first defined on line {first.line})",
                span,
                "each key may appear once in a mapping; remove or rename one of them",
            )
            return None
        frame.key_spans[key] = span
        return key

    def explicit_key(self, event: ScalarEvent) -> bool:
        """Whether the key was written with the `? ` indicator, read from the text before it."""
        index = getattr(event.start_mark, "index", None)
        if not isinstance(index, int) or not 0 <= index <= len(self.text):
            return False
        line_start = max(self.text.rfind(ch, 0, index) for ch in _BREAK_CHARS) + 1
        return self.text[line_start:index].rstrip(" \t").endswith("?")


def load_yaml(text: str, file: str = "<input>") -> YNode:
    """Parse one YAML document into a positioned tree; raise `CredoError` with every problem found.

    Problems that make the rest of the stream meaningless (syntax errors, size and
    depth limits, a second document) end the pass; the others (duplicate keys, tags,
    merge keys, bad aliases) are collected and reported together.
    """
    return _Builder(text, file).run()


def to_plain(node: YNode) -> object:
    """The tree as plain dicts, lists and scalars (for JSON-like content such as test cases).

    Aliased values are copied, never shared, so callers may mutate the result.
    """
    box: list[object] = [None]
    work: list[tuple[YNode, list[object] | dict[str, object], int | str]] = [(node, box, 0)]
    while work:
        current, parent, slot = work.pop()
        out: object
        if isinstance(current, YScalar):
            out = current.value
        elif isinstance(current, YSeq):
            seq: list[object] = [None] * len(current.items)
            work.extend((child, seq, i) for i, child in enumerate(current.items))
            out = seq
        else:
            mapping: dict[str, object] = dict.fromkeys(current.items)  # keep file order
            work.extend((child, mapping, key) for key, child in current.items.items())
            out = mapping
        parent[slot] = out  # type: ignore[index]
    return box[0]
