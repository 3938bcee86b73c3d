"""`credo simulate` and `credo monitor`: portfolio runs from the command line.

Kept apart from engine/cli.py, which only registers them, and light to import: the numeric modules load
when one of these commands runs, so `credo decide` starts as fast as before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from engine.errors import CredoError, Problem

CHUNK_ROWS = 50_000  # engine.portfolio.CHUNK_ROWS, repeated so that building the parser imports nothing heavy


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date YYYY-MM-DD") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return value


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as-of", type=_date, help="the business date (default: today)")
    p.add_argument(
        "--on-bad-row",
        choices=("fail", "skip"),
        default="fail",
        help="a row that does not fit the fact declarations stops the run (fail, default) or is left out (skip); "
        "either way every problem is printed",
    )
    p.add_argument("--workers", type=_positive, help="worker processes (default: one per CPU; 1 runs in-process)")
    p.add_argument("--chunk-size", type=_positive, default=CHUNK_ROWS, metavar="ROWS", help="rows per chunk")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the chunks on this Dask scheduler (needs credo[dask])")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when standard error is a terminal)")


def add_parsers(sub: Any, rules_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the simulate and monitor sub-commands to `credo`'s parser."""
    p = sub.add_parser("simulate", help="run a baseline and a candidate policy over a portfolio and compare them")
    p.add_argument("--policy", required=True)
    p.add_argument("--portfolio", required=True, metavar="FILE", help="a CSV file with dotted columns, or JSON Lines")
    p.add_argument("--candidate", metavar="REF", help="a folder of YAML that replaces baseline documents by name")
    p.add_argument("--baseline", metavar="REF", help="a folder of YAML overlaid on the --rules folders")
    p.add_argument("--reference", metavar="FILE", help="a reference portfolio for the score's PSI")
    p.add_argument(
        "--out",
        action="append",
        metavar="FILE",
        help="write the report: FILE.json or FILE.html (repeatable; - prints the JSON instead of the summary)",
    )
    p.add_argument("--cases-out", metavar="FILE", help="write every case's decision as JSON Lines, in input order")
    _run_options(p)
    rules_option(p)

    p = sub.add_parser("monitor", help="sweep a book with the policy's early-warning rules; alerts as JSON Lines")
    p.add_argument("--policy", required=True)
    p.add_argument("--portfolio", required=True, metavar="FILE", help="a CSV file with dotted columns, or JSON Lines")
    p.add_argument("--out", metavar="FILE", help="write the alerts here (default: standard output)")
    _run_options(p)
    rules_option(p)


def _rules(args: argparse.Namespace) -> list[Path]:
    from engine.library import DEFAULT_RULES

    return [Path(r) for r in args.rules] if args.rules else list(DEFAULT_RULES)


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in sorted(problems, key=Problem.sort_key):
        print(problem.format(), file=sys.stderr)


def _options(args: argparse.Namespace) -> Any:
    from engine.simulate import RunOptions

    def report(problem: Any) -> None:
        print(problem.format(), file=sys.stderr)

    return RunOptions(
        chunk_rows=args.chunk_size,
        workers=args.workers,
        scheduler=args.scheduler,
        on_bad_row=args.on_bad_row,
        progress=args.progress,
        on_problem=report,
    )


def _check_outputs(outs: Sequence[str]) -> str | None:
    for out in outs:
        if out != "-" and Path(out).suffix.lower() not in (".json", ".html", ".htm"):
            return f"credo: --out {out}: the report is written as .json or .html"
    return None


def cmd_simulate(args: argparse.Namespace) -> int:
    outs = args.out or []
    wrong = _check_outputs(outs)
    if wrong:
        print(wrong, file=sys.stderr)
        return 2
    from engine.report import render_html, render_text
    from engine.simulate import RowsRejected, load_side, simulate

    rules = _rules(args)
    base_refs = [args.baseline] if args.baseline else []
    try:
        baseline = load_side("baseline", args.policy, args.as_of, rules, base_refs)
        candidate = None
        if args.candidate is not None:
            # A candidate overlays the baseline as the user chose it, --baseline folder included.
            candidate = load_side("candidate", args.policy, args.as_of, rules, [*base_refs, args.candidate])
        report = simulate(
            baseline,
            candidate,
            args.portfolio,
            reference=args.reference,
            cases_out=args.cases_out,
            options=_options(args),
        )
    except CredoError as error:
        _print_problems(error.problems)
        return 2
    except RowsRejected as rejected:
        count = len(rejected.problems)
        print(f"credo: {count} row problem{'s' if count != 1 else ''}; nothing written "
              "(--on-bad-row skip leaves such rows out)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"credo: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2
    for out in outs:
        try:
            if out == "-":
                sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            elif Path(out).suffix.lower() == ".json":
                Path(out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            else:
                Path(out).write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            print(f"credo: cannot write {out}: {exc.strerror}", file=sys.stderr)
            return 2
    if "-" not in outs:
        sys.stdout.write(render_text(report))
    if report["rows"]["skipped"]:
        print(f"credo: {report['rows']['skipped']} rows skipped (problems above)", file=sys.stderr)
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from engine.simulate import RowsRejected, load_side, monitor

    try:
        spec = load_side("monitor", args.policy, args.as_of, _rules(args), mode="early_warning")
        target = open(args.out, "w", encoding="utf-8") if args.out else nullcontext(sys.stdout)  # noqa: SIM115
        with target as out:
            summary = monitor(spec, args.portfolio, out, _options(args))
    except CredoError as error:
        _print_problems(error.problems)
        return 2
    except RowsRejected as rejected:
        count = len(rejected.problems)
        print(f"credo: {count} row problem{'s' if count != 1 else ''} (--on-bad-row skip leaves such rows out)",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"credo: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2
    alerts = ", ".join(f"{n} {s}" for s, n in summary["alerts"].items())
    print(f"{summary['cases']} cases swept, {summary['skipped']} rows skipped: {alerts}", file=sys.stderr)
    return 0


COMMANDS = {"simulate": cmd_simulate, "monitor": cmd_monitor}

__all__ = ["COMMANDS", "add_parsers", "cmd_monitor", "cmd_simulate"]
