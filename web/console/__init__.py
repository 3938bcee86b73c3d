"""The browser console: server-rendered pages (Flask, Jinja2) over the same services as the API and the CLI.

    from web.console import init_console
    init_console(app)        # in create_app: the blueprint under /console, its sessions, CSRF and headers

Every page works without JavaScript. Two scripts add what a page alone cannot: the YAML editor's line numbers,
highlighting and problems as you type (web/static/console/editor.js), and small conveniences elsewhere
(console.js). Charts are SVG drawn on the server. No CDN and no npm: the files under web/static/console are all
there is, and the Content-Security-Policy allows nothing else (no inline script or style either).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, make_response, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, NotFound

from web.console.security import load_viewer

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static" / "console"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

CONFIG_DEFAULTS: dict[str, Any] = {
    "CONSOLE_COOKIE_SECURE": True,
    "CONSOLE_COOKIE_SAMESITE": "Strict",
    "CONSOLE_IDLE_MINUTES": 30,
    "CONSOLE_SESSION_HOURS": 12,
    # auto: start a simulation worker process when runs wait and none is heard; off: run one yourself
    # (`python -m web.services.simulations`).
    "CONSOLE_WORKER": "auto",
    "CONSOLE_UPLOAD_MAX_BYTES": 50_000_000,
    # Uploaded portfolios, kept by content hash for the worker (default: instance/uploads).
    "CONSOLE_UPLOADS": None,
    "CONSOLE_PAGE_SIZE": 50,
}


def _harden(response: Response) -> Response:
    """The headers of every console answer: nothing from elsewhere, never framed, never cached."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _error_page(error: HTTPException) -> tuple[Any, int]:
    code = error.code or 500
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        # The editor's checks are fetched by script: answer them in JSON, never an HTML page.
        return {"error": {"code": error.name.lower().replace(" ", "-"), "message": error.description}}, code
    return render_template("console/error.html", error=error, code=code), code


def _env_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def blueprint() -> Blueprint:
    bp = Blueprint(
        "console",
        __name__,
        static_folder=str(STATIC),
        static_url_path="/static",
    )
    # The views register themselves on the blueprint they are given.
    from web.console import audit_views, authoring, operations, pages, simulation_views

    for module in (pages, authoring, simulation_views, audit_views, operations):
        module.register(bp)

    @bp.before_request
    def _who() -> None:
        g.viewer = load_viewer()
        if request.endpoint == "console.new_run" and g.viewer is not None:
            # A portfolio upload may be far bigger than any API body; only signed-in users get the larger limit.
            request.max_content_length = int(current_app.config["CONSOLE_UPLOAD_MAX_BYTES"])

    bp.after_request(_harden)
    bp.register_error_handler(HTTPException, _error_page)
    return bp


def _unknown_console_path() -> Response | None:
    """The console's 404 page for a path under /console that matches no route.

    Flask tells a request's blueprint by the route it matched, so such a request never reaches the blueprint's
    hooks or error handler, and the app-wide handler (web/api/errors.py) would answer the API's JSON. Checked
    before the request is dispatched, it is answered here instead; any other path is left alone.
    """
    if not isinstance(request.routing_exception, NotFound) or not request.path.startswith("/console/"):
        return None
    g.viewer = load_viewer()  # the page shows who is signed in, as every console page does
    body, code = _error_page(NotFound(f"no console page at {request.path}"))
    return _harden(make_response(body, code))


def _money(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if abs(number) >= 1e6:
        return f"{number / 1e6:,.2f} m"
    return f"{number:,.0f}"


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{digits}f}%"


def _num(value: Any, spec: str = ",.2f") -> str:
    if value is None or value == "":
        return "—"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str)


def _signed(value: Any, spec: str = "+,.0f") -> str:
    if value is None:
        return "—"
    return format(float(value), spec)


def init_console(app: Flask) -> None:
    """Mount the console at /console: configuration defaults, the blueprint, template helpers."""
    for key, default in CONFIG_DEFAULTS.items():
        env = os.environ.get(f"CREDO_{key}")
        app.config.setdefault(key, _env_value(env) if env is not None else default)
    app.register_blueprint(blueprint(), url_prefix="/console")
    app.before_request(_unknown_console_path)
    app.jinja_env.filters.update(
        money=_money, pct=_pct, num=_num, when=_when, pretty=_pretty, signed=_signed
    )
    # Autoescaping is Flask's default for .html; say it again so that no template can be an exception.
    app.jinja_env.autoescape = True

    @app.context_processor
    def _context() -> dict[str, Any]:
        who = g.get("viewer")
        return {
            "viewer": who,
            "csrf_field": (
                Markup('<input type="hidden" name="csrf_token" value="{}">').format(who.csrf) if who else ""
            ),
        }


__all__ = ["init_console"]
