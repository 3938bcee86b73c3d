"""`credo`: the command line policy teams and CI use.

Every command takes `--rules DIR` (repeatable): the folders of YAML loaded
together. The default is the repo's rulesets/ and policies/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

from engine import simulate_cli
from engine.errors import CredoError, Problem
from engine.evaluate import decide, reject
from engine.library import DEFAULT_RULES, Library, read_files
from engine.model import Ruleset
from engine.testing import run_tests


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credo", description="Credo credit decisioning")
    sub = parser.add_subparsers(dest="command", required=True)

    def rules_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--rules",
            action="append",
            metavar="DIR",
            help="a folder of YAML documents to load (repeatable; default: rulesets/ and policies/)",
        )

    p = sub.add_parser("validate", help="check documents and report every problem")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.add_argument("--as-of", type=_date, help="check policies on this business date only")
    rules_option(p)

    p = sub.add_parser("test", help="run the tests embedded in rulesets and policies")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--coverage", action="store_true", help="list the rules and table rows no test fired")
    p.add_argument("--as-of", type=_date)
    rules_option(p)

    p = sub.add_parser("decide", help="decide cases (a JSON file, or JSON Lines) under a policy")
    p.add_argument("--policy", required=True)
    p.add_argument("case", metavar="CASE", help="a .json file with one case, a .jsonl file, or - for standard input")
    p.add_argument("--as-of", type=_date, help="the business date (default: today)")
    p.add_argument(
        "--engine",
        choices=("rete", "reference"),
        default="rete",
        help="rete: the durable_rules network (default); reference: the plain interpreter",
    )
    rules_option(p)
    simulate_cli.add_parsers(sub, rules_option)
    return parser


def _paths(args: argparse.Namespace) -> list[Path]:
    rules = [Path(r) for r in args.rules] if args.rules else list(DEFAULT_RULES)
    return [*(Path(p) for p in getattr(args, "paths", []) or []), *rules]


def _print_problems(problems: Sequence[Problem], out: TextIO) -> None:
    for problem in sorted(problems, key=Problem.sort_key):
        print(problem.format(), file=out)


def cmd_validate(args: argparse.Namespace) -> int:
    documents, problems = read_files(_paths(args))
    if not any(p.is_error for p in problems):
        try:
            library = Library(documents, problems)
            problems = library.validate(args.as_of)
        except CredoError as error:
            problems = [*problems, *error.problems]
    problems = list(dict.fromkeys(problems))
    _print_problems(problems, sys.stdout)
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    print(f"{len(documents)} documents: {errors} errors, {warnings} warnings", file=sys.stderr)
    return 1 if errors or (args.strict and warnings) else 0


def cmd_test(args: argparse.Namespace) -> int:
    try:
        library = Library.load(_paths(args))
    except CredoError as error:
        _print_problems(error.problems, sys.stdout)
        print("0 passed, 1 failed")
        return 1
    chosen = None
    if args.paths:
        wanted, _ = read_files(args.paths)
        digests = {d.digest for d in wanted}
        chosen = [d for d in library.documents if d.digest in digests]
    report = run_tests(library, chosen, args.as_of)
    for result in report.results:
        if result.status == "failed":
            print(result.format())
    if args.coverage:
        total = sum(
            len(library.compile_ruleset(d).activations) for d in (chosen or library.documents) if isinstance(d, Ruleset)
        )
        for ruleset, key, span in report.uncovered:
            print(f"{span}: not covered: {ruleset}: {key}")
        covered = total - len(report.uncovered)
        share = 100.0 * covered / total if total else 100.0
        print(f"coverage: {share:.1f}% ({covered} of {total} rules and table rows fired by a test)")
    skipped = f", {report.skipped} skipped" if report.skipped else ""
    print(f"{report.passed} passed, {report.failed} failed{skipped}")
    return 1 if report.failed else 0


def _read_cases(source: str) -> Iterator[Any]:
    """One case from a JSON file, or one per line from JSON Lines (streamed), in input order."""
    with nullcontext(sys.stdin) if source == "-" else open(source, encoding="utf-8") as stream:
        lines: Iterable[str] = stream
        if not source.endswith(".jsonl"):
            text = stream.read()
            try:
                yield json.loads(text)
                return
            except json.JSONDecodeError:
                lines = io.StringIO(text)  # not one JSON document: read it as JSON Lines
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    yield CredoError.single("bad-json", f"line {number} is not JSON: {exc.msg}")


def cmd_decide(args: argparse.Namespace) -> int:
    try:
        library = Library.load(_paths(args))
        unit = library.compile_policy(args.policy, args.as_of)
    except CredoError as error:
        _print_problems(error.problems, sys.stderr)
        return 2
    rejected = False
    out = sys.stdout
    try:
        cases = _read_cases(args.case)
        for case in cases:
            if isinstance(case, CredoError):
                line: dict[str, Any] = {
                    "error": {"code": "bad-json", "message": case.problems[0].message, "problems": []}
                }
                rejected = True
            else:
                try:
                    line = decide(unit, case, args.as_of, args.engine)
                except CredoError as error:
                    line = reject(error.problems)
                    rejected = True
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
    except OSError as exc:
        print(f"credo: cannot read {args.case}: {exc.strerror}", file=sys.stderr)
        return 2
    out.flush()
    return 1 if rejected else 0


COMMANDS = {"validate": cmd_validate, "test": cmd_test, "decide": cmd_decide}
COMMANDS.update(simulate_cli.COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
