"""Signing in and out, and the home page: what is waiting for the signed-in user."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, make_response, redirect, render_template, request, url_for
from pony import orm
from werkzeug.wrappers import Response as BaseResponse

from audit import store
from audit.db import write_session
from audit.governance import record as governance_record
from web.console.security import (
    check_login_csrf,
    cookie_name,
    end_session,
    login_cookie_name,
    login_csrf_token,
    route,
    safe_next,
    set_login_cookie,
    start_session,
    viewer,
)
from web.models import Alert, RuleVersion, User
from web.services.users import LOCKOUT_WINDOW, check_password, locked_until

MAX_FIELD = 200


# One answer for every failure: a wrong name, a wrong password and a locked account must look alike.
SIGN_IN_FAILED = (
    "Wrong user name or password, or too many failed sign-ins to the account in the last "
    f"{LOCKOUT_WINDOW.seconds // 60} minutes: wait a while before trying again."
)


def login() -> BaseResponse:
    if request.method == "POST":
        check_login_csrf()
        username = (request.form.get("username") or "").strip()[:MAX_FIELD]
        password = (request.form.get("password") or "")[:1000]
        if username and locked_until(username) is not None:
            # Not even the password is checked: a locked account cannot be guessed at. And the answer is the one
            # a wrong password gets, so a stranger cannot tell a locked account (which exists) from a made-up name.
            with write_session():
                governance_record(username, "console-login-refused", f"user:{username}", {"via": "console"})
            return _login_page(SIGN_IN_FAILED, 401, username)
        who = check_password(username, password) if username and password else None
        if who is not None:
            response = redirect(safe_next(request.form.get("next")))
            start_session(who.username, response, request.cookies.get(cookie_name()))
            response.delete_cookie(login_cookie_name(), path="/")
            return response
        known = False
        if username:  # Pony refuses to look up an empty value of a Required column (ValueError, a 500)
            with orm.db_session:
                known = User.get(username=username) is not None
        if known:  # failures against real accounts are worth an auditor's eye; random names are noise
            with write_session():
                governance_record(username, "console-login-failed", f"user:{username}", {"via": "console"})
        return _login_page(SIGN_IN_FAILED, 401, username)
    return _login_page(None, 200)


def _login_page(error: str | None, status: int, username: str = "") -> BaseResponse:
    """The sign-in form; after a failure it keeps the user name typed, so only the password is typed again."""
    cookies: dict[str, str] = {}
    token = login_csrf_token(cookies)
    body = render_template(
        "console/login.html", error=error, token=token, next=safe_next(request.values.get("next")), username=username
    )
    response = make_response(body, status)
    for value in cookies.values():
        set_login_cookie(response, value)
    return response


def logout() -> BaseResponse:
    response = redirect(url_for("console.login"))
    end_session(request.cookies.get(cookie_name()), response)
    return response


def home() -> str:
    who = viewer()
    counts: dict[str, Any] = {}
    with orm.db_session:
        counts["submitted"] = orm.count(v for v in RuleVersion if v.status == "submitted")
        counts["approved"] = orm.count(v for v in RuleVersion if v.status == "approved")
        counts["drafts"] = orm.count(v for v in RuleVersion if v.status == "draft" and v.author == who.username)
        counts["alerts"] = orm.count(a for a in Alert if a.status == "open")
        referred = store.query_one(
            "SELECT COUNT(*) FROM decision_record d LEFT JOIN decision_review r ON r.decision_id = d.decision_id"
            " WHERE d.outcome = 'refer' AND d.engine <> 'override' AND (r.status IS NULL OR r.status <> 'effective')"
        )
        counts["referred"] = int(referred[0]) if referred else 0
        decisions = store.query_one("SELECT COUNT(*) FROM decision_record")
        counts["decisions"] = int(decisions[0]) if decisions else 0
    return render_template("console/home.html", counts=counts)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/login", view_func=login, methods=["GET", "POST"])

    @bp.post("/logout")
    def logout_view() -> BaseResponse:
        # Logging out is a POST with the session's token: a cross-site link cannot sign anyone out.
        if g.get("viewer") is None:
            return redirect(url_for("console.login"))
        from web.console.security import check_csrf

        check_csrf()
        return logout()

    route(bp, "/")(home)

    @bp.get("/whoami")
    def whoami() -> Any:
        who = g.get("viewer")
        if who is None:
            abort(401)
        return {"username": who.username, "roles": sorted(who.roles)}


__all__ = ["register"]
