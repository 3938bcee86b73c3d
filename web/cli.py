"""`credo`: the engine's commands (validate, test, decide) plus the database, rules and customer commands.

The engine's parser and handlers are reused as they are (engine/cli.py still runs on its own); this module
adds the commands that need the database, so the dependency keeps pointing from web to engine.

Exit codes: 0 done; 1 a check failed (engine commands); 2 unusable input or database; 3 refused, with the
reason on standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import cli as engine_cli
from engine.errors import CredoError

EXIT_REFUSED = 3


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date YYYY-MM-DD") from None


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _database(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database", metavar="URL", help="database URL (default: $DATABASE_URL, else instance/credo.db)")


def _actor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="actor", required=True, metavar="USER", help="the user taking this step")


def build_parser() -> argparse.ArgumentParser:
    parser = engine_cli.build_parser()
    sub = _subparsers(parser)

    db = sub.add_parser("db", help="create or upgrade the database")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    p = dbsub.add_parser("init", help="create the database, import the rules as version 1, add the demo")
    p.add_argument("--rules", action="append", metavar="DIR", help="folders to import (default: rulesets/, policies/)")
    p.add_argument("--customers", type=int, default=None, metavar="N", help="synthetic customers to seed (300)")
    p.add_argument("--seed", type=int, default=None, help="the portfolio's random seed")
    p.add_argument("--no-demo", action="store_true", help="no demo accounts and no portfolio")
    _database(p)
    p = dbsub.add_parser("upgrade", help="apply pending migrations")
    _database(p)

    rules = sub.add_parser("rules", help="stored rule versions and their lifecycle")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    p = rsub.add_parser("list", help="every stored version")
    p.add_argument("--name")
    p.add_argument("--status", choices=("draft", "submitted", "approved", "active", "retired"))
    p.add_argument("--json", action="store_true")
    _database(p)
    p = rsub.add_parser("show", help="one version: NAME (newest active) or NAME@N")
    p.add_argument("ref", metavar="NAME[@N]")
    p.add_argument("--json", action="store_true")
    _database(p)
    p = rsub.add_parser("diff", help="a unified diff between two versions")
    p.add_argument("a", metavar="NAME@A")
    p.add_argument("b", metavar="NAME@B")
    _database(p)
    p = rsub.add_parser("draft", help="save a YAML file as a new draft version; prints NAME@N")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--parent", metavar="NAME@N")
    _actor(p)
    _database(p)
    p = rsub.add_parser("edit", help="replace the text of an unpublished version (voids its approval)")
    p.add_argument("ref", metavar="NAME@N")
    p.add_argument("file", metavar="FILE")
    _actor(p)
    _database(p)
    for step, text in (
        ("submit", "submit a draft: its embedded tests must pass"),
        ("approve", "approve a submitted version (not your own)"),
        ("publish", "make an approved version active"),
        ("rollback", "ask for, or confirm, a return to an earlier version"),
        ("retire", "take a version out of service"),
    ):
        p = rsub.add_parser(step, help=text)
        p.add_argument("ref", metavar="NAME@N")
        _actor(p)
        _database(p)
    p = rsub.add_parser("export", help="write the active versions to YAML files")
    p.add_argument("directory", metavar="DIR")
    _database(p)

    customers = sub.add_parser("customers", help="the customer store")
    csub = customers.add_subparsers(dest="customers_command", required=True)
    p = csub.add_parser("import", help="import customers from CSV or JSON Lines (dotted columns)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--as-of", type=_date, help="the business date (default: today)")
    p.add_argument("--policy", help="monitoring policy for rows without customer.policy")
    p.add_argument("--rm", help="relationship manager for rows without customer.rm")
    p.add_argument("--reassess", action="store_true", help="re-run each imported customer's monitoring")
    _database(p)
    p = csub.add_parser("case", help="print the case assembled for a stored customer")
    p.add_argument("code", metavar="CUSTOMER")
    p.add_argument("--as-of", type=_date)
    p.add_argument("--policy")
    _database(p)
    p = csub.add_parser("reassess", help="re-run a customer's monitoring policy")
    p.add_argument("code", metavar="CUSTOMER")
    p.add_argument("--as-of", type=_date)
    _database(p)

    notify = sub.add_parser("notify", help="the notification outbox")
    nsub = notify.add_subparsers(dest="notify_command", required=True)
    p = nsub.add_parser("deliver", help="send the due notifications (sender from CREDO_NOTIFY)")
    p.add_argument("--limit", type=int, default=100)
    _database(p)
    return parser


def _bind(args: argparse.Namespace) -> None:
    import web.models  # noqa: F401 - the entities must exist before the database is bound
    from audit.db import bind_database

    bind_database(args.database)


# --- db ---------------------------------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    import web.models  # noqa: F401
    from audit.db import bind_database, parse_url, upgrade

    target = parse_url(args.database)
    applied = upgrade(args.database)
    print(f"database: {target.redacted}")
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    if args.db_command == "upgrade":
        return 0
    from pony import orm

    from engine.library import DEFAULT_RULES
    from web.demo import DEFAULT_SIZE, SEED, create_demo_accounts, seed_portfolio
    from web.models import RuleVersion
    from web.services.errors import Refused
    from web.services.rules import import_documents

    bind_database(args.database)
    with orm.db_session:
        existing = orm.count(v for v in RuleVersion)
    if existing:
        raise Refused("already-initialised", f"the database already holds {existing} rule versions; nothing done")
    versions = import_documents([Path(r) for r in args.rules] if args.rules else list(DEFAULT_RULES))
    print(f"imported {len(versions)} documents as active versions (system import):")
    for v in versions:
        print(f"  {v.ref:<32} {v.kind:<10} {v.digest}")
    if args.no_demo:
        return 0
    accounts = create_demo_accounts()
    if accounts:
        print("demo accounts (passwords are shown this once; only their hashes are stored):")
        for username, role, password in accounts:
            shown = password if password is not None else "(CREDO_DEMO_PASSWORD)"
            print(f"  {username:<14} {role:<12} {shown}")
    size = DEFAULT_SIZE if args.customers is None else args.customers
    if size > 0:
        seeded = seed_portfolio(size, SEED if args.seed is None else args.seed)
        print(f"seeded {seeded} synthetic customers (seed {SEED if args.seed is None else args.seed})")
    return 0


# --- rules ------------------------------------------------------------------------------------------------------


def cmd_rules(args: argparse.Namespace) -> int:
    from web.services import rules

    _bind(args)
    command = args.rules_command
    if command == "list":
        versions = rules.list_versions(args.name, args.status)
        if args.json:
            for v in versions:
                print(json.dumps(v.to_dict(), ensure_ascii=False))
            return 0
        for v in versions:
            dates = f"{v.effective_from or '…'}..{v.effective_to or '…'}"
            print(
                f"{v.ref:<32} {v.kind:<10} {v.status:<10} {dates:<24} "
                f"author={v.author} approver={v.approver or '-'} {v.digest[:19]}"
            )
        return 0
    if command == "show":
        v = rules.show(args.ref)
        if args.json:
            print(json.dumps(v.to_dict(with_text=True), ensure_ascii=False))
            return 0
        print(f"# {v.ref} ({v.kind}) {v.status}  digest {v.digest}")
        print(f"# author {v.author}; approver {v.approver or '-'}; parent {v.parent or '-'}")
        for problem in v.problems:
            print(f"# problem: {problem.get('code')}: {problem.get('message')}")
        sys.stdout.write(v.text if v.text.endswith("\n") else v.text + "\n")
        return 0
    if command == "diff":
        sys.stdout.write(rules.diff(args.a, args.b))
        return 0
    if command == "export":
        for path in rules.export(args.directory):
            print(path)
        return 0
    if command in ("draft", "edit"):
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"credo: cannot read {args.file}: {exc.__class__.__name__}", file=sys.stderr)
            return 2
        if command == "draft":
            v = rules.save_draft(text, args.actor, parent=args.parent)
        else:
            v = rules.edit_draft(args.ref, text, args.actor)
        print(v.ref)
        if v.errors:
            print(f"saved with {v.errors} error(s); it cannot be submitted until they are fixed:", file=sys.stderr)
            for problem in v.problems:
                print(f"  {problem.get('code')}: {problem.get('message')}", file=sys.stderr)
        return 0
    step: Callable[[str, str], rules.VersionInfo] = getattr(rules, command)
    v = step(args.ref, args.actor)
    if command == "rollback" and v.status != "active":
        print(f"{v.ref}: rollback requested by {v.rollback_requested_by}; another approver must confirm it")
    else:
        print(f"{v.ref}: {v.status}")
    return 0


# --- customers and the outbox -----------------------------------------------------------------------------------


def cmd_customers(args: argparse.Namespace) -> int:
    from web.services import customers

    _bind(args)
    if args.customers_command == "import":
        report = customers.import_customers(
            args.file, as_of=args.as_of, policy=args.policy, rm=args.rm, reassess_after=args.reassess
        )
        print(f"{len(report.created)} created, {len(report.updated)} updated")
        for r in report.reassessed:
            if r.problems:
                print(f"  {r.customer}: not decided ({len(r.problems)} problem(s))")
        return 0
    if args.customers_command == "case":
        case = customers.case_for(args.code, as_of=args.as_of, policy=args.policy)
        print(json.dumps(case, ensure_ascii=False, default=str))
        return 0
    result = customers.reassess(args.code, as_of=args.as_of, trigger="cli")
    print(
        json.dumps(
            {
                "customer": result.customer,
                "outcome": result.outcome,
                "tier": result.tier,
                "previous_tier": result.previous_tier,
                "proposals": result.proposals,
                "alerts_opened": result.opened,
                "alerts_refreshed": result.refreshed,
                "notifications": result.notifications,
                "problems": result.problems,
            }
        )
    )
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from web.services.notify import deliver_pending, sender_from_env

    _bind(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = deliver_pending(sender_from_env(), limit=args.limit)
    print(f"{len(report.sent)} sent, {len(report.retrying)} to retry, {len(report.failed)} failed")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **engine_cli.COMMANDS,
    "db": cmd_db,
    "rules": cmd_rules,
    "customers": cmd_customers,
    "notify": cmd_notify,
}


def _database_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from pony.orm.dbapiprovider import DBException

    errors: list[type[BaseException]] = [DBException, sqlite3.Error]
    try:
        import psycopg2

        errors.append(psycopg2.Error)
    except ImportError:  # psycopg2 is only needed for PostgreSQL
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    from web.services.errors import Refused

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Refused as refusal:
        print(f"credo: {refusal.format()}", file=sys.stderr)
        return EXIT_REFUSED
    except CredoError as error:
        for problem in error.problems:
            print(f"credo: {problem.format()}", file=sys.stderr)
        return 2
    except _database_errors() as exc:
        # The driver's text can quote connection details and SQL: name the failure, not its text.
        print(
            f"credo: database error ({type(exc).__name__}); check DATABASE_URL and `credo db upgrade`", file=sys.stderr
        )
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
