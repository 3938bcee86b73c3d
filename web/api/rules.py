"""Read-only endpoints over the rules: the active policies, stored versions; and the health check."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.model import Policy
from web.api.errors import ApiError
from web.api.framework import Call, PathParam, endpoint, utc
from web.api.schemas import Health, PolicyList, RuleVersionList
from web.api.schemas import RuleVersion as RuleVersionModel
from web.services import rules
from web.services.active import ACTIVE, read_generation
from web.services.errors import Refused

NAME = PathParam(r"[a-z0-9][a-z0-9_-]{0,99}", "a ruleset, scorecard or policy name", example="limits-pricing")
NUMBER = PathParam(r"[0-9]{1,9}", "a version number", integer=True, example="1")
RULE_READERS = ("read", "decide")


@endpoint(
    "GET",
    "/policies",
    summary="The active policies",
    tag="rules",
    scopes=RULE_READERS,
    response=PolicyList,
)
def list_policies(call: Call) -> dict[str, Any]:
    """Every active policy version with the rulesets and scorecard it names, as the next decision would use it."""
    snapshot = ACTIVE.current()
    policies = [d for d in snapshot.library.documents if isinstance(d, Policy)]
    policies.sort(key=lambda p: (p.name, p.version or 0))
    return {
        "generation": snapshot.generation,
        "policies": [
            {
                "name": p.name,
                "version": p.version,
                "digest": p.digest,
                "product": p.product or None,
                "description": p.description.strip() or None,
                "effective_from": p.effective_from,
                "effective_to": p.effective_to,
                "rulesets": [str(r) for r in p.rulesets],
                "scorecard": str(p.scorecard) if p.scorecard else None,
            }
            for p in policies
        ],
    }


def _version(info: rules.VersionInfo, with_text: bool) -> dict[str, Any]:
    data = info.to_dict(with_text=with_text)
    keep = set(RuleVersionModel.model_fields)
    out = {k: v for k, v in data.items() if k in keep}
    out["published_at"] = utc(info.published_at)
    return out


@endpoint(
    "GET",
    "/rulesets/{name}/versions",
    summary="Every stored version of a document",
    tag="rules",
    scopes=RULE_READERS,
    response=RuleVersionList,
    params={"name": NAME},
)
def list_rule_versions(call: Call) -> dict[str, Any]:
    """Drafts, submitted, approved, active and retired versions of one ruleset, scorecard or policy, oldest first."""
    name = call.params["name"]
    versions = rules.list_versions(name)
    if not versions:
        raise ApiError(404, "unknown-document", f"no stored document named '{name}'")
    return {"name": name, "versions": [_version(v, False) for v in versions]}


@endpoint(
    "GET",
    "/rulesets/{name}/versions/{number}",
    summary="One stored version, with its YAML text",
    tag="rules",
    scopes=RULE_READERS,
    response=RuleVersionModel,
    params={"name": NAME, "number": NUMBER},
)
def get_rule_version(call: Call) -> dict[str, Any]:
    """The version's status, provenance, problems and exact text (the digest covers every byte of it)."""
    ref = f"{call.params['name']}@{call.params['number']}"
    try:
        info = rules.show(ref)
    except Refused as refusal:
        if refusal.http_status == 404 or refusal.kind == "invalid":
            raise ApiError(404, "unknown-version", f"no stored version {ref}") from None
        raise
    return _version(info, True)


@endpoint(
    "GET", "/health", summary="Database and policies", tag="operations", scopes=None, response=Health, alternate=(503,)
)
def health(call: Call) -> tuple[int, dict[str, Any]]:
    """Public, for load balancers: 200 when the database answers and every active policy compiles; else 503."""
    out: dict[str, Any] = {"generation": None}
    try:
        out["generation"] = read_generation()
        out["database"] = {"ok": True, "detail": "reachable"}
    except Exception as exc:  # any failure here means "not healthy"; its text may hold connection details
        out["database"] = {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}
    if out["database"]["ok"]:
        try:
            snapshot = ACTIVE.current()
            names = snapshot.library.names(Policy)
            today = dt.date.today()
            failed = []
            for name in names:
                try:
                    snapshot.compile_policy(name, today)
                except Exception:  # a policy not in force today, or one that does not compile
                    failed.append(name)
            ok = bool(names) and not failed
            detail = f"{len(names) - len(failed)} of {len(names)} policies ready"
            if failed:
                detail += f"; not in force or not compiling today: {', '.join(failed)}"
            out["policies"] = {"ok": ok, "detail": detail}
        except Exception as exc:
            out["policies"] = {"ok": False, "detail": f"could not load the active rules ({type(exc).__name__})"}
    else:
        out["policies"] = {"ok": False, "detail": "not checked: no database"}
    healthy = out["database"]["ok"] and out["policies"]["ok"]
    out["status"] = "ok" if healthy else "unavailable"
    return (200 if healthy else 503), out


__all__ = ["get_rule_version", "health", "list_policies", "list_rule_versions"]
