"""API keys as `Authorization: Bearer` tokens, and the four API scopes.

The keys themselves are web.services.users' (random, shown once, stored as sha256 with a lookup prefix). That
module's scopes are finer-grained than the API's four; an API scope is granted as a bundle of them, so a key
made here is a plain users.py key and a key made there with the right fine scopes works here too:

    decide  → decide                                  POST /decisions, reading decisions and policies
    read    → rules:read, customers:read, audit:read  every GET, replays
    monitor → customers:read, customers:write, alerts:write   monitoring, alerts, customer data
    admin   → admin                                   everything

A key holds an API scope when it holds every fine scope of its bundle. `admin` passes every check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pony import orm

from audit import store
from audit.db import write_session
from audit.governance import now as governance_now
from audit.governance import record as governance_record
from web.api.errors import ApiError
from web.models import ApiKey, User
from web.services.errors import Refused
from web.services.users import (
    KEY_PREFIX,
    SCOPES,
    Principal,
    create_api_key,
    create_user,
    revoke_api_key,
)

API_SCOPES: dict[str, tuple[str, ...]] = {
    "decide": ("decide",),
    "monitor": ("customers:read", "customers:write", "alerts:write"),
    "read": ("rules:read", "customers:read", "audit:read"),
    "admin": ("admin",),
}
# Roles that may see a decision's case data unmasked.
UNMASK_ROLES = frozenset({"underwriter", "auditor", "admin"})


def fine_scopes(scopes: Iterable[str]) -> list[str]:
    """The users.py scopes that grant these API scopes (fine-grained names pass through as they are)."""
    out: set[str] = set()
    for scope in scopes:
        out.update(API_SCOPES.get(scope, (scope,)))
    return sorted(out)


def api_scopes(fine: Iterable[str]) -> frozenset[str]:
    held = frozenset(fine)
    return frozenset(name for name, bundle in API_SCOPES.items() if set(bundle) <= held)


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    key_prefix: str
    scopes: frozenset[str]  # API scopes

    @property
    def username(self) -> str:
        return self.principal.username

    @property
    def caller_id(self) -> str:
        """Who called, and with which key: a leaked key's decisions can be found by its prefix."""
        return f"{self.principal.username}/{self.key_prefix}"

    def allows(self, accepted: Iterable[str]) -> bool:
        return "admin" in self.scopes or bool(self.scopes & set(accepted))


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="credo"'})


def authenticate(header: str | None) -> Authenticated:
    token = bearer_token(header)
    if token is None:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    # A token is at most a few dozen characters: anything longer is not a key (and is not worth hashing).
    if len(token) > 200:
        raise _unauthorized("the API key is not valid")
    principal = verify_key(token)
    if principal is None:
        raise _unauthorized("the API key is not valid, expired or revoked")
    return Authenticated(principal, token[: len(KEY_PREFIX) + 8], api_scopes(principal.scopes))


def verify_key(token: str) -> Principal | None:
    """web.services.users.verify_api_key's rule, in one indexed join: it runs before every request.

    The same checks (prefix lookup, sha256 compared in constant time, not revoked, not expired, owner active),
    without loading two entities into Pony's identity map: a quarter of the time, on the hot path of a decision.
    """
    if not token.startswith(KEY_PREFIX):
        return None
    with orm.db_session:
        # audit.store's plain cursor: Pony's db.select builds a named row per result, twice the cost of the query.
        rows = store.query(
            "SELECT k.key_hash, k.scopes, k.expires_at, k.revoked_at, u.username, u.roles, u.active"
            " FROM api_key k JOIN app_user u ON u.id = k.owner WHERE k.prefix = ?",
            (token[: len(KEY_PREFIX) + 8],),
        )
    if not rows:
        return None
    key_hash, scopes, expires_at, revoked_at, username, roles, active = rows[0]
    if revoked_at is not None or not active:
        return None
    if expires_at is not None and _as_datetime(expires_at) <= dt.datetime.now(dt.UTC).replace(tzinfo=None):
        return None
    if not hmac.compare_digest(str(key_hash), hashlib.sha256(token.encode()).hexdigest()):
        return None
    return Principal(
        str(username),
        frozenset(r for r in str(roles or "").split(",") if r),
        frozenset(s for s in str(scopes).split(",") if s),
    )


def _as_datetime(value: object) -> dt.datetime:
    # sqlite3 hands TIMESTAMP columns back as text, psycopg2 as datetime.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def require(auth: Authenticated, accepted: Iterable[str]) -> None:
    accepted = tuple(accepted)
    if not auth.allows(accepted):
        raise ApiError(403, "missing-scope", f"this endpoint needs an API key with the {' or '.join(accepted)} scope")


# --- key management (the `credo keys` commands) -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    owner: str
    label: str | None
    scopes: tuple[str, ...]  # API scopes, then any fine scope no bundle covers
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= dt.datetime.now(dt.UTC).replace(tzinfo=None):
            return "expired"
        return "active"


def describe_scopes(stored: str) -> tuple[str, ...]:
    fine = frozenset(s for s in stored.split(",") if s)
    coarse = api_scopes(fine)
    covered = {f for name in coarse for f in API_SCOPES[name]}
    return tuple(sorted(coarse)) + tuple(sorted(fine - covered))


def list_keys(include_revoked: bool = False) -> list[KeyInfo]:
    with orm.db_session:
        rows = orm.select(k for k in ApiKey).order_by(ApiKey.id)[:]
        return [
            KeyInfo(
                k.prefix, k.owner.username, k.label, describe_scopes(k.scopes), k.created_at, k.expires_at, k.revoked_at
            )
            for k in rows
            if include_revoked or k.revoked_at is None
        ]


def create_key(
    name: str,
    scopes: Iterable[str],
    *,
    owner: str | None = None,
    label: str | None = None,
    expires_at: dt.datetime | None = None,
    token: str | None = None,
) -> str:
    """A new key; returns the token (the only time it exists in clear). `token`: register this one instead.

    `owner` is the user the key acts as (its roles decide reviews and alert moves). Without one, `name` is that
    user: an existing account, or a service account created for the key, with no roles and no password, so
    the key can decide but never review and nobody can log in as it.
    """
    scopes = list(scopes)
    unknown = [s for s in scopes if s not in API_SCOPES and s not in SCOPES]
    if unknown or not scopes:
        shown = f"unknown scope '{unknown[0]}'" if unknown else "no scope given"
        raise Refused("bad-scope", f"{shown}; API scopes are {', '.join(API_SCOPES)}", "invalid")
    if token is not None and verify_key(token) is not None:
        return token  # already registered: asking again changes nothing
    username = owner or name
    with orm.db_session:
        exists = User.get(username=username) is not None
    if not exists:
        if owner is not None:
            raise Refused("unknown-user", f"no user '{owner}'", "not-found")
        create_user(username, [], None, display_name=f"service account for API key {name}")
    if token is None:
        return create_api_key(username, fine_scopes(scopes), label=label or name, expires_at=expires_at)
    return _register(token, username, fine_scopes(scopes), label or name, expires_at)


TOKEN = re.compile(r"^" + re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{32,100}$")


def _register(token: str, username: str, scopes: list[str], label: str, expires_at: dt.datetime | None) -> str:
    """Store a token chosen by the operator (a demo key kept across rebuilt databases, a CI secret).

    The same row users.create_api_key writes for a random key (prefix, sha256, scopes, a governance event); only
    where the token comes from differs, so it must look like one of ours and be as long.
    """
    if not TOKEN.match(token):
        raise Refused(
            "bad-token", f"a given key must be '{KEY_PREFIX}' and 32 to 100 characters of A-Z a-z 0-9 _ -", "invalid"
        )
    prefix = token[: len(KEY_PREFIX) + 8]
    with write_session():
        user = User.get(username=username)
        if user is None:
            raise Refused("unknown-user", f"no user '{username}'", "not-found")
        if ApiKey.get(prefix=prefix) is not None:
            raise Refused("key-exists", f"an API key with prefix {prefix} already exists", "conflict")
        ApiKey(
            owner=user,
            prefix=prefix,
            key_hash=hashlib.sha256(token.encode()).hexdigest(),
            scopes=",".join(scopes),
            label=label,
            created_at=governance_now(),
            expires_at=expires_at,
        )
        governance_record(username, "api-key-created", f"api-key:{prefix}", {"scopes": scopes, "given": True})
    return token


def revoke_key(prefix: str, actor: str) -> None:
    revoke_api_key(prefix, actor)


__all__ = [
    "API_SCOPES",
    "UNMASK_ROLES",
    "Authenticated",
    "KeyInfo",
    "api_scopes",
    "authenticate",
    "bearer_token",
    "create_key",
    "describe_scopes",
    "fine_scopes",
    "list_keys",
    "require",
    "revoke_key",
    "verify_key",
]
