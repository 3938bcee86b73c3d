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
import os
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

    _api_parsers(sub)
    _audit_parsers(sub)
    return parser


def _api_parsers(sub: argparse._SubParsersAction) -> None:
    """`credo serve` and `credo keys`: the HTTP API's commands."""
    p = sub.add_parser("serve", help="serve the HTTP API (development server; production: gunicorn)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _database(p)

    keys = sub.add_parser("keys", help="API keys: create, list, revoke")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    p = ksub.add_parser("create", help="a new key; prints its token alone on the last line, this once")
    p.add_argument("name", metavar="NAME", help="the key's name; also its user unless --owner names one")
    p.add_argument("--scopes", required=True, help="comma-separated: decide, monitor, read, admin")
    p.add_argument("--owner", metavar="USER", help="the user the key acts as (reviews need an underwriter)")
    p.add_argument("--expires-days", type=int, metavar="N", help="the key stops working after N days")
    p.add_argument("--from-env", metavar="VAR", help="register the token held in $VAR instead of a random one")
    _database(p)
    p = ksub.add_parser("list", help="every key: prefix, user, scopes, state (never a token)")
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p.add_argument("--json", action="store_true")
    _database(p)
    p = ksub.add_parser("revoke", help="revoke a key by its prefix (as `keys list` shows it)")
    p.add_argument("prefix", metavar="PREFIX")
    p.add_argument("--as", dest="actor", default="system", metavar="USER", help="who revokes it (default: system)")
    _database(p)


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


# --- the HTTP API ------------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from web.app import create_app

    overrides = {"DATABASE_URL": args.database} if args.database else {}
    app = create_app(overrides)
    print(f"Credo API on http://{args.host}:{args.port}/api/v1 (docs: /api/v1/docs); Ctrl-C stops it", flush=True)
    # The development server, threaded; never the debugger (it runs code sent from a browser).
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from web.api import auth

    _bind(args)
    if args.keys_command == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        expires = None
        if args.expires_days is not None and args.expires_days < 1:
            print("credo: --expires-days must be 1 or more (a 0-day key is expired when made)", file=sys.stderr)
            return 2
        if args.expires_days is not None:
            expires = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=args.expires_days)
        given = None
        if args.from_env:
            given = os.environ.get(args.from_env, "").strip()
            if not given:
                print(f"credo: ${args.from_env} is empty", file=sys.stderr)
                return 2
        token = auth.create_key(args.name, scopes, owner=args.owner, expires_at=expires, token=given)
        print(f"API key '{args.name}' created with scopes {','.join(scopes)}; it is shown this once:", file=sys.stderr)
        print(token)  # alone on the last line of standard output: `$(credo keys create ...)` captures it
        return 0
    if args.keys_command == "list":
        for key in auth.list_keys(include_revoked=args.all):
            if args.json:
                print(
                    json.dumps(
                        {
                            "prefix": key.prefix,
                            "user": key.owner,
                            "name": key.label,
                            "scopes": list(key.scopes),
                            "state": key.state,
                            "created_at": key.created_at.isoformat(),
                            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                        }
                    )
                )
            else:
                print(f"{key.prefix:<16} {key.owner:<20} {key.state:<8} {','.join(key.scopes):<28} {key.label or ''}")
        return 0
    auth.revoke_key(args.prefix, args.actor)
    print(f"{args.prefix}: revoked")
    return 0


# --- the decision log: `credo decide --record` and `credo audit` ---------------------------------------------------


def _audit_parsers(sub: argparse._SubParsersAction) -> None:
    """`decide --record` (through the same service as the API) and `credo audit ...`."""
    p = sub.choices["decide"]
    p.add_argument(
        "--record",
        action="store_true",
        help="decide with the database's active versions and record each decision in its audit trail",
    )
    p.add_argument("--as", dest="actor", metavar="NAME", help="with --record: the caller to record (default: you)")
    _database(p)

    audit = sub.add_parser("audit", help="the decision log: verify, replay, export, purge, checkpoint")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    p = asub.add_parser("verify", help="walk both hash chains; report the first bad sequence number (exit 1)")
    p.add_argument("--checkpoints", metavar="FILE", help="checkpoint file (default: $CREDO_AUDIT_CHECKPOINT)")
    p.add_argument("--json", action="store_true")
    _database(p)
    p = asub.add_parser("replay", help="re-run a recorded decision under its recorded versions")
    p.add_argument("decision_id", metavar="DECISION_ID")
    p.add_argument("--against", metavar="NAME@N", help="show what this other version would have decided")
    p.add_argument("--json", action="store_true")
    _database(p)
    p = asub.add_parser("show", help="one recorded decision as JSON (sensitive values masked)")
    p.add_argument("decision_id", metavar="DECISION_ID")
    p.add_argument("--unmask", action="store_true", help="show sensitive values (needs the audit key)")
    _database(p)
    p = asub.add_parser("export", help="stream records as CSV or JSON Lines (an auditor's governance event)")
    p.add_argument("--from", dest="start", type=_date, metavar="DATE", help="first day (UTC), inclusive")
    p.add_argument("--to", dest="end", type=_date, metavar="DATE", help="last day (UTC), inclusive")
    p.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    p.add_argument("--policy")
    p.add_argument("--outcome")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--unmask", action="store_true", help="include sensitive values (needs the audit key)")
    _actor(p)
    _database(p)
    p = asub.add_parser("purge", help="delete records before DATE (never younger than the retention floor)")
    p.add_argument("--before", type=_date, required=True, metavar="DATE")
    _actor(p)
    _database(p)
    p = asub.add_parser("checkpoint", help="write a checkpoint of both chains' heads now")
    _database(p)


def cmd_decide(args: argparse.Namespace) -> int:
    if not args.record:
        return engine_cli.cmd_decide(args)
    import getpass

    from audit.errors import AuditUnavailable
    from engine.evaluate import reject
    from web.services.decisions import Caller, decide_and_record

    if args.rules:
        print("credo: --record decides with the database's active versions; --rules does not apply", file=sys.stderr)
        return 2
    if args.engine != "rete":
        print("credo: --record decides on the rete engine, as the API does", file=sys.stderr)
        return 2
    _bind(args)
    caller = Caller("cli", args.actor or getpass.getuser())
    rejected = False
    try:
        for case in engine_cli._read_cases(args.case):
            if isinstance(case, CredoError):
                line: dict = {"error": {"code": "bad-json", "message": case.problems[0].message, "problems": []}}
                rejected = True
            else:
                try:
                    line = decide_and_record(args.policy, case, caller=caller, as_of=args.as_of)
                except CredoError as error:
                    line = reject(error.problems)
                    rejected = True
            sys.stdout.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
    except AuditUnavailable as exc:
        # Fail closed: the case that could not be recorded gets no decision, and neither do the ones after it.
        sys.stdout.flush()
        print(f"credo: {exc.format()}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"credo: cannot read {args.case}: {exc.strerror}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    return 1 if rejected else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from audit.errors import AuditUnavailable

    _bind(args)
    try:
        return _audit(args)
    except AuditUnavailable as exc:
        print(f"credo: {exc.format()}", file=sys.stderr)
        return 2


def _audit(args: argparse.Namespace) -> int:
    import getpass

    from audit.verify import format_report
    from web.services import decisions

    command = args.audit_command
    if command == "verify":
        report = decisions.verify(args.checkpoints)
        if args.json:
            print(json.dumps(report.to_dict(), ensure_ascii=False))
        else:
            print("\n".join(format_report(report)))
        return 0 if report.ok else 1
    if command == "replay":
        result = decisions.replay(args.decision_id, args.against)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        elif result["identical"]:
            print(f"{result['decision_id']}: identical" + (f" under {args.against}" if args.against else ""))
        else:
            against = f" (under {args.against})" if args.against else ""
            print(f"{result['decision_id']}: {len(result['differences'])} difference(s){against}:")
            for diff in result["differences"]:
                recorded = json.dumps(diff["recorded"], ensure_ascii=False)
                replayed = json.dumps(diff["replayed"], ensure_ascii=False)
                print(f"  {diff['path']}: {recorded} -> {replayed}")
        return 0 if result["identical"] or args.against else 1
    if command == "show":
        caller = decisions.Caller("cli", getpass.getuser(), can_unmask=args.unmask)
        print(json.dumps(decisions.get_decision(args.decision_id, caller), ensure_ascii=False))
        return 0
    if command == "export":
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
        try:
            count = decisions.export(
                out,
                args.actor,
                start=args.start,
                end=args.end,
                fmt=args.format,
                policy=args.policy,
                outcome=args.outcome,
                unmask=args.unmask,
            )
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"{count} record(s) exported", file=sys.stderr)
        return 0
    if command == "purge":
        result = decisions.purge(args.before, args.actor)
        if not result.purged:
            print(f"nothing to purge before {args.before.isoformat()}")
            return 0
        print(f"purged {result.purged} record(s) through seq {result.through_seq}; the chain now starts after it")
        if result.checkpoint_error:
            print(f"credo: the purge checkpoint was not written: {result.checkpoint_error}", file=sys.stderr)
            print("credo: run `credo audit checkpoint` so that verify can anchor the chain", file=sys.stderr)
            return 2
        return 0
    line = decisions.write_checkpoint()
    print(f"checkpoint: seq {line['seq']} {line['head_hash']} (governance seq {line['governance_seq']})")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **engine_cli.COMMANDS,
    "db": cmd_db,
    "rules": cmd_rules,
    "customers": cmd_customers,
    "notify": cmd_notify,
    "decide": cmd_decide,
    "audit": cmd_audit,
    "serve": cmd_serve,
    "keys": cmd_keys,
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
