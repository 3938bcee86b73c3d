"""The Flask application factory: `flask --app web run`, `credo serve`, gunicorn `'web:create_app()'`.

    create_app()                      # configuration from defaults, instance/credo.toml, CREDO_* and DATABASE_URL
    create_app({"DATABASE_URL": ...}) # tests and `credo serve` add their own layer on top

The database is bound once, at creation (every worker process of gunicorn creates its own app, so each binds its
own connections after the fork). Routes live under /api/v1 (web/api/); the OpenAPI document is generated from the
models that validate the traffic, and /api/v1/docs renders it from files served here: nothing from a CDN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, redirect, render_template
from werkzeug.wrappers import Response as BaseResponse

import web.models  # noqa: F401 - the entities must be declared before the database is bound
from audit.db import bind_database
from web.api import errors
from web.api.framework import blueprint, options
from web.api.openapi import API_PREFIX, document
from web.config import load_config

HERE = Path(__file__).resolve().parent


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    config = load_config(overrides)
    app = Flask(
        "credo",
        root_path=str(HERE),
        static_folder="static",
        static_url_path=f"{API_PREFIX}/static",
        template_folder="templates",
    )
    app.config.update(config)
    # Flask's JSON helpers are not used for API answers (the framework renders them), but keep key order anyway.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logging.getLogger("credo").setLevel(str(config["LOG_LEVEL"]).upper())

    # Importing the endpoint modules registers their operations (web/api/__init__.py lists them).
    import web.api  # noqa: F401

    bind_database(config["DATABASE_URL"])
    app.register_blueprint(blueprint(), url_prefix=API_PREFIX)
    errors.register(app)
    __import__("web.console", fromlist=["init_console"]).init_console(app)  # the browser console at /console
    openapi_bytes = json.dumps(document(), ensure_ascii=False, indent=1).encode()

    @app.get(f"{API_PREFIX}/openapi.json", provide_automatic_options=False)
    def openapi() -> Response:
        return Response(openapi_bytes, mimetype="application/json")

    @app.get(f"{API_PREFIX}/docs", provide_automatic_options=False)
    def docs() -> str:
        return render_template("docs.html", openapi_url=f"{API_PREFIX}/openapi.json", prefix=API_PREFIX)

    # OPTIONS on the document and its page answers as on every API path (web/api/framework.py `options`): 204 with
    # Allow, not Flask's automatic 200 text/html with an empty body.
    def document_options() -> Response:
        return options({}, "GET, HEAD, OPTIONS", {})

    for path in (f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/docs"):
        app.add_url_rule(path, endpoint=f"options:{path}", view_func=document_options, methods=["OPTIONS"])

    @app.get("/")
    def root() -> BaseResponse:
        return redirect(f"{API_PREFIX}/docs")

    @app.after_request
    def _headers(response: Response) -> Response:
        # The API is read by programs; nothing it answers should be cached by a proxy or framed by a page.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app


__all__ = ["create_app"]
