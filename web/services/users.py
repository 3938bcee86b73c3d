"""Accounts, roles and API keys.

Passwords are stored as werkzeug's salted scrypt hashes. An API key is random (256 bits), shown once, and
stored as its sha256: a key that long cannot be guessed, so a fast hash is enough, and a lookup by its
public prefix finds the row to compare in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from pony import orm

from audit.db import write_session
from audit.governance import GovernanceEvent, now, record
from web.models import ROLES, ApiKey, User
from web.services.errors import Refused

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
SCOPES = (
    "decide",
    "rules:read",
    "rules:write",
    "customers:read",
    "customers:write",
    "alerts:write",
    "audit:read",
    "admin",
)
KEY_PREFIX = "credo_"
SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    username: str
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()


def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash  # imported late: it costs a CLI start ~0.1 s

    return generate_password_hash(password)


def _check(stored: str, password: str) -> bool:
    from werkzeug.security import check_password_hash

    return check_password_hash(stored, password)


def _roles(roles: Iterable[str]) -> str:
    chosen = sorted(set(roles))
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        raise Refused("unknown-role", f"unknown role '{unknown[0]}'; roles are {', '.join(ROLES)}", "invalid")
    return ",".join(chosen)


def create_user(
    username: str,
    roles: Iterable[str],
    password: str | None = None,
    *,
    email: str | None = None,
    display_name: str | None = None,
    actor: str = SYSTEM,
) -> Principal:
    if not USERNAME.match(username):
        raise Refused("bad-username", f"'{username}' is not a valid user name (a-z, 0-9, '.', '_', '-')", "invalid")
    role_text = _roles(roles)
    with write_session():
        if User.get(username=username) is not None:
            raise Refused("user-exists", f"user '{username}' already exists")
        User(
            username=username,
            roles=role_text,
            password_hash=_hash(password) if password else None,
            email=email,
            display_name=display_name,
            active=True,
            created_at=now(),
        )
        record(actor, "user-created", f"user:{username}", {"roles": role_text.split(",") if role_text else []})
    return Principal(username, frozenset(role_text.split(",")) - {""})


def ensure_system_user() -> None:
    """The account that signs system imports; it has no password, so nobody can log in as it."""
    with write_session():
        if User.get(username=SYSTEM) is None:
            User(username=SYSTEM, roles="", active=True, created_at=now(), display_name="system import")


def principal(username: str) -> Principal:
    with orm.db_session:
        user = User.get(username=username)
        if user is None or not user.active:
            raise Refused("unknown-user", f"no active user '{username}'", "forbidden")
        return Principal(user.username, user.role_set)


def require_role(username: str, *roles: str, doing: str) -> Principal:
    """The user, if they hold one of `roles`; refused with the roles named otherwise."""
    who = principal(username)
    if not who.roles & set(roles):
        wanted = " or ".join(roles)
        raise Refused("missing-role", f"{doing} needs the {wanted} role; '{username}' does not hold it", "forbidden")
    return who


def check_password(username: str, password: str) -> Principal | None:
    with orm.db_session:
        user = User.get(username=username)
        if user is None or not user.active or not user.password_hash:
            return None
        if not _check(user.password_hash, password):
            return None
        return Principal(user.username, user.role_set)


# Console sign-in throttling: this many failed sign-ins to one account within the window (and since its last
# successful one) lock it until the oldest of them leaves the window. Counted from the governance events the
# console already writes for every failure, so all worker processes see the same count.
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = dt.timedelta(minutes=15)


def locked_until(username: str) -> dt.datetime | None:
    """When sign-ins to this account open again (naive UTC), or None when they are open now."""
    subject = f"user:{username}"
    start = now() - LOCKOUT_WINDOW
    with orm.db_session:
        last_ok = orm.max(e.at for e in GovernanceEvent if e.subject == subject and e.action == "console-login")
        if last_ok is not None and last_ok > start:
            start = last_ok
        failed = "console-login-failed"
        found = orm.select(e for e in GovernanceEvent if e.subject == subject and e.action == failed and e.at > start)
        failures = sorted((e.at for e in found), reverse=True)
    if len(failures) < LOCKOUT_FAILURES:
        return None
    return failures[LOCKOUT_FAILURES - 1] + LOCKOUT_WINDOW


def set_password(username: str, password: str, actor: str = SYSTEM) -> None:
    with write_session():
        user = User.get(username=username)
        if user is None:
            raise Refused("unknown-user", f"no user '{username}'", "not-found")
        user.password_hash = _hash(password)
        record(actor, "password-set", f"user:{username}")


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    username: str, scopes: Iterable[str], *, label: str | None = None, expires_at: dt.datetime | None = None
) -> str:
    """A new key for `username`; the return value is the only time the key exists in clear."""
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise Refused("bad-scope", f"scopes must be some of {', '.join(SCOPES)}", "invalid")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with write_session():
        user = User.get(username=username)
        if user is None:
            raise Refused("unknown-user", f"no user '{username}'", "not-found")
        prefix = key[: len(KEY_PREFIX) + 8]
        ApiKey(
            owner=user,
            prefix=prefix,
            key_hash=_key_hash(key),
            scopes=",".join(chosen),
            label=label,
            created_at=now(),
            expires_at=expires_at,
        )
        record(username, "api-key-created", f"api-key:{prefix}", {"scopes": chosen})
    return key


def verify_api_key(key: str) -> Principal | None:
    if not key.startswith(KEY_PREFIX):
        return None
    with orm.db_session:
        row = ApiKey.get(prefix=key[: len(KEY_PREFIX) + 8])
        if row is None or row.revoked_at is not None or not row.owner.active:
            return None
        if row.expires_at is not None and row.expires_at <= now():
            return None
        if not hmac.compare_digest(row.key_hash, _key_hash(key)):
            return None
        return Principal(row.owner.username, row.owner.role_set, frozenset(row.scopes.split(",")))


def revoke_api_key(prefix: str, actor: str) -> None:
    with write_session():
        row = ApiKey.get(prefix=prefix)
        if row is None:
            raise Refused("unknown-key", f"no API key '{prefix}'", "not-found")
        row.revoked_at = now()
        record(actor, "api-key-revoked", f"api-key:{prefix}")


__all__ = [
    "SCOPES",
    "Principal",
    "check_password",
    "create_api_key",
    "create_user",
    "ensure_system_user",
    "principal",
    "require_role",
    "revoke_api_key",
    "set_password",
    "verify_api_key",
]
