"""Who is signed in, what they may do, and proof that a form came from our own page.

Sessions live on the server (`console_session`, migrations/0004_console.py). The cookie holds 32 random bytes;
the row is keyed by their sha256. A login always creates a new row and drops the browser's old one (the session
id rotates, so a planted cookie never becomes a signed-in one), a logout deletes it, and a session ends after
`CONSOLE_IDLE_MINUTES` without a request or `CONSOLE_SESSION_HOURS` after login, whichever comes first. The
cookie is HttpOnly, SameSite (Strict by default) and Secure; `CONSOLE_COOKIE_SECURE = false` is for plain-http
test clients only (browsers accept Secure cookies from http://127.0.0.1 and localhost).

CSRF: every session has its own token, put in every form as `csrf_token` (and sent by scripts as the
`X-CSRF-Token` header). A state-changing request without the token of *its own* session is refused before any
view runs; so is a POST whose Origin header names another site. The login form, which has no session yet, uses
a double-submit token in a short-lived cookie of its own.

Roles are checked on the server for every route by the `@route` decorator, which also records on each view
whether it changes anything: the role × route test reads those marks and tries every route as every role.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, request, url_for
from pony import orm
from werkzeug.wrappers import Response as BaseResponse

from audit import store
from audit.db import write_session
from audit.governance import now
from audit.governance import record as governance_record
from web.models import User

COOKIE = "credo_console"
LOGIN_COOKIE = "credo_login"
ALL_ROLES = frozenset({"author", "approver", "underwriter", "auditor", "admin"})
ANYONE = ALL_ROLES


@dataclass(frozen=True)
class Viewer:
    username: str
    display_name: str
    roles: frozenset[str]
    session_id: str
    csrf: str

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ts(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def cookie_name() -> str:
    # __Host- pins the cookie to this host, path / and Secure: a sibling subdomain cannot plant or read it.
    return f"__Host-{COOKIE}" if secure_cookies() else COOKIE


def login_cookie_name() -> str:
    return f"__Host-{LOGIN_COOKIE}" if secure_cookies() else LOGIN_COOKIE


def secure_cookies() -> bool:
    return bool(current_app.config.get("CONSOLE_COOKIE_SECURE", True))


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=secure_cookies(),
        httponly=True,
        samesite=str(current_app.config.get("CONSOLE_COOKIE_SAMESITE", "Strict")),
    )


def idle_limit() -> dt.timedelta:
    return dt.timedelta(minutes=float(current_app.config.get("CONSOLE_IDLE_MINUTES", 30)))


def absolute_limit() -> dt.timedelta:
    return dt.timedelta(hours=float(current_app.config.get("CONSOLE_SESSION_HOURS", 12)))


# --- sessions ---------------------------------------------------------------------------------------------------


def start_session(username: str, response: BaseResponse, old_token: str | None) -> None:
    """A new session row and cookie; the old row (if any) is deleted in the same transaction."""
    token = secrets.token_urlsafe(32)
    stamp = now()
    with write_session():
        cursor = store.write_cursor()
        if old_token:
            cursor.execute(store.adapt("DELETE FROM console_session WHERE id = ?"), (_hash(old_token),))
        # Expired rows of anyone are swept here: logins are rare enough, and the table stays small.
        cursor.execute(store.adapt("DELETE FROM console_session WHERE expires_at < ?"), (stamp,))
        cursor.execute(
            store.adapt(
                "INSERT INTO console_session (id, username, csrf, created_at, last_seen_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (_hash(token), username, secrets.token_urlsafe(32), stamp, stamp, stamp + absolute_limit()),
        )
        governance_record(username, "console-login", f"user:{username}", {"via": "console"})
    _set_cookie(response, cookie_name(), token, None)  # a session cookie: gone when the browser closes


def end_session(token: str | None, response: BaseResponse) -> None:
    if token:
        with write_session():
            store.write_cursor().execute(store.adapt("DELETE FROM console_session WHERE id = ?"), (_hash(token),))
    response.delete_cookie(cookie_name(), path="/", secure=secure_cookies(), httponly=True,
                           samesite=str(current_app.config.get("CONSOLE_COOKIE_SAMESITE", "Strict")))


def load_viewer() -> Viewer | None:
    """The signed-in user of this request, or None; touching the session keeps it alive (idle timeout)."""
    token = request.cookies.get(cookie_name())
    if not token or len(token) > 100:
        return None
    key = _hash(token)
    stamp = now()
    with orm.db_session:
        row = store.query_one(
            "SELECT username, csrf, last_seen_at, expires_at FROM console_session WHERE id = ?", (key,)
        )
        if row is None:
            return None
        username, csrf, last_seen, expires = row
        if _ts(expires) <= stamp or _ts(last_seen) + idle_limit() <= stamp:
            return None
        user = User.get(username=username)
        if user is None or not user.active or not user.password_hash:
            return None
        viewer = Viewer(user.username, user.display_name or user.username, user.role_set, key, csrf)
    # One write a minute at most: the idle clock needs no finer grain, and reads stay reads.
    if stamp - _ts(last_seen) > dt.timedelta(seconds=60):
        with write_session():
            store.write_cursor().execute(
                store.adapt("UPDATE console_session SET last_seen_at = ? WHERE id = ?"), (stamp, key)
            )
    return viewer


def viewer() -> Viewer:
    found: Viewer | None = g.get("viewer")
    if found is None:
        abort(401)
    return found


# --- CSRF -------------------------------------------------------------------------------------------------------


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        # No Origin (older clients, same-origin GET-initiated forms in some browsers): the token decides.
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.host


def check_csrf() -> None:
    """Abort with 400 unless this POST carries its own session's token (and no foreign Origin)."""
    if not _same_origin():
        abort(400, "the request came from another site")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    found: Viewer | None = g.get("viewer")
    if found is None or not sent or not hmac.compare_digest(sent.encode(), found.csrf.encode()):
        abort(400, "the form's security token is missing or belongs to another session: reload the page")


def login_csrf_token(response_cookies: dict[str, str]) -> str:
    """The token for the login form: the one in the browser's login cookie, or a new one to set."""
    token = request.cookies.get(login_cookie_name())
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        response_cookies[login_cookie_name()] = token
    return token


def set_login_cookie(response: BaseResponse, token: str) -> None:
    _set_cookie(response, login_cookie_name(), token, 3600)


def check_login_csrf() -> None:
    if not _same_origin():
        abort(400, "the request came from another site")
    sent = request.form.get("csrf_token") or ""
    held = request.cookies.get(login_cookie_name()) or ""
    if not sent or not held or not hmac.compare_digest(sent.encode(), held.encode()):
        abort(400, "the login form's security token is missing or stale: reload the page")


# --- routes with roles ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    roles: frozenset[str]
    changes: bool  # whether the route may change stored state (auditors never reach one)
    methods: tuple[str, ...]


def route(
    bp: Blueprint, rule: str, *, roles: Iterable[str] = ANYONE, methods: tuple[str, ...] = ("GET",),
    changes: bool | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a console view that needs a signed-in user holding one of `roles`; POSTs need the CSRF token."""
    allowed = frozenset(roles)
    unknown = allowed - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    changing = ("POST" in methods) if changes is None else changes
    if changing and "auditor" in allowed:
        raise ValueError(f"{rule}: an auditor may read everything and change nothing")

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def view(*args: Any, **kwargs: Any) -> Any:
            who: Viewer | None = g.get("viewer")
            if who is None:
                if request.method == "GET":
                    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
                abort(401)
            if request.method == "POST":
                check_csrf()
            if not who.roles & allowed:
                abort(403, f"this page needs the {' or '.join(sorted(allowed))} role")
            return func(*args, **kwargs)

        view.console_access = Access(allowed, changing, methods)  # type: ignore[attr-defined]
        bp.add_url_rule(rule, view_func=view, methods=list(methods))
        return view

    return wrap


def safe_next(target: str | None) -> str:
    """Only a path inside the console: an open redirect would turn our login page into a phishing aid."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.home")


__all__ = [
    "ANYONE",
    "Access",
    "Viewer",
    "check_csrf",
    "check_login_csrf",
    "end_session",
    "load_viewer",
    "route",
    "safe_next",
    "start_session",
    "viewer",
]
