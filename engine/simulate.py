"""Portfolio simulation and early-warning sweeps over a whole book, chunk by chunk.

One function, `run_chunk`, does all the work on a block of the portfolio: decode and check the rows,
run each side's `VectorPlan`, and count (a `Tally`), render the per-case decisions, or collect the
alerts. It takes everything it needs as plain data (the documents' texts, not a compiled policy), so
it runs the same in this process, in a process pool (the default) or on a Dask cluster; a worker
compiles each side once and keeps it (`compile_side` caches by content).

The reading process only cuts the file into blocks and merges what comes back, in input order, with
a bounded number of blocks in flight: memory stays flat however long the portfolio is.

Sides: the baseline is the library loaded from the `--rules` folders; `--baseline DIR` and
`--candidate DIR` overlay a folder of YAML on it, document by document name. Stored versions and
drafts (`name@N`) come from the database, which a later issue brings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np

from engine.documents import parse_document
from engine.errors import CredoError
from engine.library import DEFAULT_RULES, Library, read_files
from engine.model import SEVERITIES, AnyDocument, Policy, Ruleset
from engine.policy import CompiledPolicy, compile_unit
from engine.portfolio import CHUNK_ROWS, Block, Decoded, Decoder, Portfolio, RowProblem, error_line
from engine.report import MAX_PROBLEMS, SideInfo, Tally, build_report, chunk_tally
from engine.vector import Columns, VectorPlan

SEVERITY_ORDER = tuple(reversed(SEVERITIES))  # critical first
CASES_OUT_CHUNK_ROWS = 10_000
VERSION_REF = re.compile(r"^[A-Za-z0-9][\w.-]*@\d+$")
NAME_REF = re.compile(r"^[A-Za-z0-9][\w.-]*$")

T = TypeVar("T")
R = TypeVar("R")


# -- sides ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideSpec:
    """One side of a simulation as plain data: what a worker needs to compile it."""

    label: str  # baseline | candidate | monitor
    policy: str
    as_of: dt.date
    documents: tuple[tuple[str, str], ...]  # (file, text) of every document loaded together
    source: str  # where the documents came from, for the report
    mode: str = "policy"  # policy: the whole policy; early_warning: its early_warning rulesets

    @property
    def key(self) -> str:
        h = hashlib.sha256(f"{self.policy}\n{self.as_of}\n{self.mode}".encode())
        for file, text in self.documents:
            h.update(f"\n{file}\n{len(text)}\n".encode())
            h.update(text.encode())
        return h.hexdigest()


@dataclass
class CompiledSide:
    spec: SideSpec
    unit: CompiledPolicy
    plan: VectorPlan
    info: SideInfo
    tiers: tuple[str, ...]
    keys: tuple[str, ...]
    alerting: frozenset[str]  # the early_warning rulesets whose alerts a sweep reports


_COMPILED: dict[str, CompiledSide] = {}
_DECODERS: dict[tuple[Any, ...], Decoder] = {}


def compile_side(spec: SideSpec) -> CompiledSide:
    """Compile once per process: a pool worker sees the same spec for every chunk it runs."""
    key = spec.key
    found = _COMPILED.get(key)
    if found is not None:
        return found
    library = Library([parse_document(text, file) for file, text in spec.documents])
    alerting: frozenset[str] = frozenset()
    if spec.mode == "early_warning":
        unit, alerting = _early_warning_unit(library, spec.policy, spec.as_of)
    else:
        unit = library.compile_policy(spec.policy, spec.as_of)
    tier = unit.schema.outputs.get("tier")
    tiers = tier.values if tier is not None else ()
    keys = tuple(a.key for a in unit.activations)
    documents = [*unit.rulesets, *([unit.scorecard] if unit.scorecard else [])]
    info = SideInfo(
        label=spec.label,
        source=spec.source,
        policy=unit.name,
        digest=unit.digest,
        documents=tuple((d.name, d.digest) for d in documents),
        tiers=tuple(tiers),
        rules=keys,
        bin_width=float(unit.scorecard.scaling.pdo) if unit.scorecard else 20.0,
    )
    side = CompiledSide(spec, unit, VectorPlan(unit), info, tuple(tiers), keys, alerting)
    if len(_COMPILED) >= 8:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = side
    return side


def _early_warning_unit(library: Library, name: str, as_of: dt.date) -> tuple[CompiledPolicy, frozenset[str]]:
    """The policy's derived fields and early_warning rulesets, compiled alone: a sweep needs nothing else.

    Should an early-warning rule read a conclusion (a tier, a score), the whole policy runs instead, so that it
    sees the value it would see in a decision; only the early_warning rulesets' alerts are reported either way.
    """
    policy = library.find(name, Policy, as_of)
    assert isinstance(policy, Policy)
    rulesets = [library.find(ref, Ruleset, as_of) for ref in policy.rulesets]
    warning = [r for r in rulesets if isinstance(r, Ruleset) and r.kind == "early_warning"]
    if not warning:
        raise CredoError.single(
            "no-early-warning",
            f"policy '{name}' has no early_warning rulesets",
            policy.span,
            "a ruleset with `kind: early_warning` in the policy's rulesets is what a sweep evaluates",
        )
    names = frozenset(r.name for r in warning)
    unit = compile_unit(library.schema, warning)
    reads = {n for n, level in unit.output_levels.items() if level < 0}
    texts = {
        path
        for a in unit.activations
        for e in a.emits
        for _, _, message in e.alerts
        for path in message.paths
        if "." not in path
    }
    if reads or texts:
        unit = library.compile_policy(name, as_of)
    return unit, names


def overlay_documents(ref: str) -> tuple[list[AnyDocument], str]:
    """A candidate or baseline REF: a folder (or file) of YAML. Stored versions and drafts need the database."""
    path = Path(ref)
    if path.exists():
        documents, problems = read_files([path])
        if any(p.is_error for p in problems):
            raise CredoError(problems)
        if not documents:
            raise CredoError.single("no-documents", f"{ref}: no YAML documents found")
        return documents, ref
    if VERSION_REF.match(ref) or NAME_REF.match(ref):
        raise CredoError.single(
            "needs-database",
            f"'{ref}' is not a file or folder; stored versions (name@N) and drafts come from the database "
            "(not yet available)",
            hint="give a folder of YAML documents: they replace the baseline's documents of the same name",
        )
    raise CredoError.single("no-such-path", f"{ref}: no such file or folder")


def _display(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_side(
    label: str,
    policy: str,
    as_of: dt.date | None = None,
    rules: Sequence[str | Path] = DEFAULT_RULES,
    refs: Sequence[str] = (),
    mode: str = "policy",
) -> SideSpec:
    """The library from `rules`, each ref's documents replacing those of the same name (in order: a candidate
    goes on top of a --baseline folder); compiled here first, so every problem shows before a worker starts."""
    documents, problems = read_files(rules)
    if any(p.is_error for p in problems):
        raise CredoError(problems)
    source = " + ".join(_display(r) for r in rules)
    for ref in refs:
        overlay, shown = overlay_documents(ref)
        names = {d.name for d in overlay}
        documents = [d for d in documents if d.name not in names] + overlay
        source += f", overlaid with {shown} ({', '.join(sorted(names))})"
    spec = SideSpec(label, policy, as_of or dt.date.today(), tuple((d.file, d.text) for d in documents), source, mode)
    compile_side(spec)
    return spec


# -- the chunk function -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkTask:
    kind: str  # simulate | monitor
    sides: tuple[SideSpec, ...]  # the baseline, and the candidate when one is given
    format: str
    header: tuple[str, ...]
    block: Block
    decisions: bool = False  # render each case's decision (--cases-out)


@dataclass
class ChunkResult:
    index: int
    size: int
    rows: int
    cases: int
    problems: list[RowProblem]
    tally: Tally | None = None
    lines: str = ""  # decisions, one JSON line per record, in input order
    alerts: dict[str, str] = field(default_factory=dict)  # severity -> JSON lines
    alert_counts: dict[str, int] = field(default_factory=dict)


def _decoder(task: ChunkTask, sides: Sequence[CompiledSide]) -> Decoder:
    key = (task.format, task.header, *(s.spec.key for s in sides))
    found = _DECODERS.get(key)
    if found is None:
        found = Decoder(task.format, task.header, [s.unit for s in sides])
        _DECODERS.clear()  # one portfolio at a time per process
        _DECODERS[key] = found
    return found


def _columns(side: CompiledSide, decoded: Decoded, index: int) -> Columns:
    if decoded.facts is not None:
        return Columns.from_facts(side.unit, decoded.facts[index])
    return Columns(decoded.count, decoded.side_values(side.unit.schema.fields))


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Decode one block and evaluate it under every side; picklable in and out, so any executor can run it."""
    sides = [compile_side(spec) for spec in task.sides]
    decoded = _decoder(task, sides).decode(task.block)
    problems = [p for line in decoded.lines for p in decoded.problems.get(line, ())]
    n = decoded.count
    results = [side.plan.run(_columns(side, decoded, i), side.spec.as_of) for i, side in enumerate(sides)] if n else []
    out = ChunkResult(task.block.index, len(task.block.data), len(decoded.lines), n, problems)
    if task.kind == "monitor":
        if n:
            _collect_alerts(sides[0], results[0], decoded, out)
        return out
    if n:
        candidate = results[1] if len(results) > 1 else None
        last = sides[-1]
        tally = chunk_tally(
            results[0], candidate, (sides[0].tiers, last.tiers), (sides[0].keys, last.keys), decoded.bad,
            decoded.segment,
        )
    else:
        tally = Tally()
    tally.rows = out.rows
    tally.skipped = out.rows - n
    tally.problems = problems[:MAX_PROBLEMS]
    tally.problem_count = len(problems)
    out.tally = tally
    if task.decisions:
        out.lines = _decision_lines(sides, results, decoded)
    return out


def _decision_lines(sides: Sequence[CompiledSide], results: Sequence[Any], decoded: Decoded) -> str:
    out = []
    k = 0
    for index, line in enumerate(decoded.lines):
        if decoded.good[index]:
            made = [result.decision(k) for result in results]
            k += 1
        else:
            made = [error_line(decoded.problems[line])] * len(sides)
        obj = made[0] if len(made) == 1 else {"baseline": made[0], "candidate": made[1]}
        out.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
    return "".join(line + "\n" for line in out)


def _collect_alerts(side: CompiledSide, result: Any, decoded: Decoded, out: ChunkResult) -> None:
    columns = [
        j
        for j, a in enumerate(side.unit.activations)
        if a.ruleset in side.alerting and any(e.alerts for e in a.emits)
    ]
    if not columns:
        return
    rows = np.flatnonzero(result.fired[:, columns].any(axis=1)).tolist()
    lines = [line for line, good in zip(decoded.lines, decoded.good.tolist(), strict=True) if good]
    segment = decoded.segment
    grouped: dict[str, list[str]] = {}
    for i in rows:
        # The decision renders each alert's message exactly as a single decision would.
        for entry in result.decision(i)["fired"]:
            if entry["ruleset"] not in side.alerting:
                continue
            for alert in entry["outputs"].get("alerts") or ():
                record: dict[str, Any] = {
                    "severity": alert["severity"],
                    "code": alert["code"],
                    "message": alert["message"],
                    "row": lines[i],
                    "rule": entry["rule"],
                    "ruleset": entry["ruleset"],
                }
                if segment is not None:
                    record["segment"] = segment[i]
                grouped.setdefault(alert["severity"], []).append(
                    json.dumps(record, separators=(",", ":"), ensure_ascii=False)
                )
    out.alerts = {s: "".join(x + "\n" for x in v) for s, v in grouped.items()}
    out.alert_counts = {s: len(v) for s, v in grouped.items()}


# -- where chunks run -----------------------------------------------------------------------------------------------


class Runner:
    """Runs the chunk function in this process, in a process pool, or on a Dask cluster, yielding results in
    input order with at most `window` chunks in flight (so memory stays bounded)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, client: Any = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.scheduler = scheduler
        self.client = client
        self._own_client = False
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None

    def _dask(self) -> Any:
        if self.client is None:
            try:
                from distributed import Client
            except ImportError:
                raise CredoError.single(
                    "needs-dask",
                    "--scheduler needs Dask, the optional extra: pip install 'credo[dask]'",
                ) from None
            self.client = Client(self.scheduler)
            self._own_client = True
        return self.client

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        it = iter(tasks)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        distributed = self.client is not None or self.scheduler is not None
        if second is None and not distributed:
            yield fn(first)  # one chunk: starting a pool would only cost time
            return
        head = [first] if second is None else [first, second]
        chained = _chain(iter(head), it)
        if distributed:
            client = self._dask()
            window = 2 * max(1, sum(client.nthreads().values()))

            def submit(task: T) -> Any:
                return client.submit(fn, task, pure=False)

            yield from _ordered(submit, chained, window)
        elif self.workers <= 1:
            for task in chained:
                yield fn(task)
        else:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                # Workers import the engine once, in the fork server, instead of once each.
                context.set_forkserver_preload(["engine.simulate"])
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            pool = self._pool

            def submit_local(task: T) -> Any:
                return pool.submit(fn, task)

            yield from _ordered(submit_local, chained, 2 * self.workers)


def _chain(first: Iterator[T], rest: Iterator[T]) -> Iterator[T]:
    yield from first
    yield from rest


def _ordered(submit: Callable[[Any], Any], tasks: Iterator[Any], window: int) -> Iterator[Any]:
    pending: deque[Any] = deque()
    try:
        for task in tasks:
            pending.append(submit(task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


# -- running a portfolio ---------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    chunk_rows: int = CHUNK_ROWS
    workers: int | None = None  # default: one per CPU
    scheduler: str | None = None  # a Dask scheduler address
    client: Any = None  # a Dask client (tests hand one in)
    on_bad_row: str = "fail"  # fail | skip
    progress: bool | None = None  # None: a bar when standard error is a terminal
    on_problem: Callable[[RowProblem], None] | None = None  # told of every row problem, in row order


class RowsRejected(Exception):
    """A row problem under --on-bad-row fail: the run stops and writes nothing."""

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        super().__init__(problems[0].format() if problems else "bad rows")
        self.problems = list(problems)


def _progress(portfolio: Portfolio, options: RunOptions, label: str) -> Any:
    from tqdm import tqdm

    enabled = sys.stderr.isatty() if options.progress is None else options.progress
    return tqdm(
        total=portfolio.size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        disable=not enabled,
        delay=1.0,  # short runs print nothing
        leave=False,
        file=sys.stderr,
    )


def _results(
    kind: str,
    specs: tuple[SideSpec, ...],
    portfolio: Portfolio,
    runner: Runner,
    options: RunOptions,
    decisions: bool = False,
) -> Iterator[ChunkResult]:
    tasks = (ChunkTask(kind, specs, portfolio.format, portfolio.header, b, decisions) for b in portfolio.blocks())
    bar = _progress(portfolio, options, f"{kind} {portfolio.path.name}")
    try:
        for result in runner.map(run_chunk, tasks):
            if result.problems:
                if options.on_problem is not None:
                    for problem in result.problems:
                        options.on_problem(problem)
                if options.on_bad_row != "skip":
                    raise RowsRejected(result.problems)
            bar.update(result.size)
            yield result
    finally:
        bar.close()


def _open_portfolio(path: str | Path, sides: Sequence[CompiledSide], options: RunOptions) -> Portfolio:
    portfolio = Portfolio(path, options.chunk_rows)
    # The header is checked here, once, so that a bad column stops the run before any worker starts.
    Decoder(portfolio.format, portfolio.header, [s.unit for s in sides], str(path))
    return portfolio


class _AtomicText:
    """A text file that appears only when complete: a failed run leaves no half-written output behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent or ".")
        self.tmp = Path(tmp)
        self.stream: TextIO = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def commit(self) -> None:
        self.stream.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.stream.close()
        self.tmp.unlink(missing_ok=True)


def tally_portfolio(
    specs: tuple[SideSpec, ...],
    path: str | Path,
    runner: Runner,
    options: RunOptions,
    cases_out: TextIO | None = None,
) -> Tally:
    sides = [compile_side(s) for s in specs]
    portfolio = _open_portfolio(path, sides, options)
    total = Tally()
    for result in _results("simulate", specs, portfolio, runner, options, decisions=cases_out is not None):
        assert result.tally is not None
        total.merge(result.tally)
        if cases_out is not None:
            cases_out.write(result.lines)
    return total


def simulate(
    baseline: SideSpec,
    candidate: SideSpec | None,
    portfolio: str | Path,
    *,
    reference: str | Path | None = None,
    cases_out: str | Path | None = None,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Run the baseline and the candidate over a portfolio and build the JSON report.

    Raises CredoError for problems with the documents or the file's header, RowsRejected for a bad row
    under on_bad_row="fail".
    """
    options = options or RunOptions()
    if cases_out is not None and options.chunk_rows > CASES_OUT_CHUNK_ROWS:
        # A decision is a couple of kilobytes of JSON: smaller chunks keep the rendered lines in flight small.
        # Chunking never changes the report, so this only bounds memory.
        options = dataclasses.replace(options, chunk_rows=CASES_OUT_CHUNK_ROWS)
    specs = (baseline,) if candidate is None else (baseline, candidate)
    sides = [compile_side(s) for s in specs]
    out = _AtomicText(cases_out) if cases_out is not None else None
    try:
        with Runner(options.workers, options.scheduler, options.client) as runner:
            tally = tally_portfolio(specs, portfolio, runner, options, out.stream if out else None)
            ref_tally = tally_portfolio(specs, reference, runner, options) if reference is not None else None
    except BaseException:
        if out is not None:
            out.abort()
        raise
    if out is not None:
        out.commit()
    candidate_info = sides[-1].info
    meta = {
        "policy": baseline.policy,
        "as_of": baseline.as_of.isoformat(),
        "portfolio": str(portfolio),
        "reference_portfolio": str(reference) if reference is not None else None,
        "candidate_given": candidate is not None,
    }
    return build_report(tally, sides[0].info, candidate_info, meta, ref_tally)


def monitor(spec: SideSpec, portfolio: str | Path, out: TextIO, options: RunOptions | None = None) -> dict[str, Any]:
    """Evaluate the early_warning rulesets over a book; write the alerts as JSON Lines, grouped by severity
    (critical first), in input order within a group. Returns the counts."""
    options = options or RunOptions()
    side = compile_side(spec)
    source = _open_portfolio(portfolio, [side], options)
    counts = dict.fromkeys(SEVERITY_ORDER, 0)
    rows = cases = 0
    # Alerts of each severity wait in a temporary file of their own, so grouping needs no memory.
    with tempfile.TemporaryDirectory(prefix="credo-monitor-") as folder:
        files = {s: open(Path(folder) / s, "w+", encoding="utf-8") for s in SEVERITY_ORDER}  # noqa: SIM115
        try:
            with Runner(options.workers, options.scheduler, options.client) as runner:
                for result in _results("monitor", (spec,), source, runner, options):
                    rows += result.rows
                    cases += result.cases
                    for severity, text in result.alerts.items():
                        files[severity].write(text)
                        counts[severity] += result.alert_counts[severity]
            for severity in SEVERITY_ORDER:
                files[severity].seek(0)
                shutil.copyfileobj(files[severity], out)
        finally:
            for f in files.values():
                f.close()
    return {"rows": rows, "cases": cases, "skipped": rows - cases, "alerts": counts}


__all__ = [
    "ChunkTask",
    "RowsRejected",
    "RunOptions",
    "Runner",
    "SideSpec",
    "compile_side",
    "load_side",
    "monitor",
    "run_chunk",
    "simulate",
]
