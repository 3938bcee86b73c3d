"""One JSON error shape for every answer that is not a success, and the handlers that produce it.

    {"error": {"code": "...", "message": "...", "problems": [{"path": "$.case.financials.ebitda", "code", "message"}]}}

Every exception class a request can raise is mapped here, werkzeug's own (404, 405, 413, 415) included, so
Flask's HTML error pages never answer an API client. Anything unexpected becomes a 500 that names only an
incident id: the traceback goes to the server log (without the request body) and never into the response.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Flask, Response
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from audit.errors import AuditUnavailable
from engine.errors import CredoError, Problem
from web import incidents
from web.services.errors import Refused

log = logging.getLogger("credo.api")

JSON = "application/json"

# werkzeug's HTTP errors under stable codes of ours.
HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "invalid",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}
# Engine problems that mean "no such thing" rather than "bad input".
NOT_FOUND_CODES = frozenset({"unknown-document", "unknown-version", "unknown-policy"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ApiError(Exception):
    """An answer other than success, raised anywhere in a request and turned into the one shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems)
        self.headers = headers or {}


def json_path(location: Iterable[Any], root: str = "$") -> str:
    """A JSONPath for a location: `$.case.financials.ebitda`, `$.conditions[2]`, `$['odd key']`."""
    out = root
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(str(part)):
            out += f".{part}"
        else:
            out += "[" + json.dumps(str(part)) + "]"
    return out


def rebase(path: str | None, prefix: str) -> str:
    """A problem path relative to a nested document (the case: `$.x`) as a path in the request (`$.case.x`)."""
    if not path or path == "$":
        return prefix
    return prefix + path[1:] if path.startswith("$") else f"{prefix}.{path}"


def problem(path: str, code: str, message: str) -> dict[str, Any]:
    return {"path": path, "code": code, "message": message}


def engine_problems(problems: Iterable[Problem], prefix: str = "$") -> list[dict[str, Any]]:
    # A problem found in a stored rules file has a file position, not a path: it is about the request's subject.
    return [problem(rebase(p.path, prefix) if p.path is not None else prefix, p.code, p.message) for p in problems]


def from_validation(error: ValidationError, root: str = "$") -> ApiError:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        location = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        problems.append(problem(json_path(location, root), item["type"].replace("_", "-"), item["msg"]))
    return ApiError(422, "invalid-request", "the request does not match its schema", problems)


def from_credo_error(error: CredoError, prefix: str = "$.case") -> ApiError:
    problems = error.problems
    first = problems[0]
    if first.code in NOT_FOUND_CODES:
        return ApiError(404, first.code, first.message, engine_problems(problems, "$"))
    if all(p.path is not None for p in problems):
        message = "the case does not match the fact declarations"
        return ApiError(422, "invalid-case", message, engine_problems(problems, prefix))
    return ApiError(422, first.code, first.message, engine_problems(problems, "$"))


# Refusals about the request body's `policy` member (POST /decisions, POST /monitoring/evaluate): one problem at
# its path, whichever endpoint refused, rather than the engine's problems about the stored rules files.
POLICY_REFUSALS = frozenset({"unknown-policy", "policy-not-in-force"})


def from_refused(refusal: Refused) -> ApiError:
    if refusal.code in POLICY_REFUSALS:
        problems = [problem("$.policy", refusal.code, refusal.message)]
        return ApiError(refusal.http_status, refusal.code, refusal.message, problems)
    problems = [problem(rebase(p.path, "$") if p.path else "$", p.code, p.message) for p in refusal.problems]
    if not problems and isinstance(refusal.details, list):
        problems = [problem("$", refusal.code, str(d)) for d in refusal.details]
    status = getattr(refusal, "http_status", 409)
    return ApiError(int(status), refusal.code, refusal.message, problems)


def body(code: str, message: str, problems: Sequence[dict[str, Any]] = ()) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "problems": list(problems)}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def error_response(error: ApiError) -> Response:
    response = Response(body(error.code, error.message, error.problems), status=error.status, mimetype=JSON)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def to_api_error(exc: BaseException) -> ApiError:
    """The API's answer for any exception (a 500 for the unexpected, logged here with an incident id)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    if isinstance(exc, CredoError):
        return from_credo_error(exc)
    if isinstance(exc, Refused):
        return from_refused(exc)
    if isinstance(exc, AuditUnavailable):
        # The decision could not be recorded, so it must not be given: the client retries later. The audit
        # trail's message names the kind of failure only (never the driver's text), so it may be shown.
        log.warning("audit trail unavailable: %s", exc.code)
        return ApiError(503, exc.code, exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http-error")
        message = {
            404: "no such endpoint",
            405: "the endpoint does not accept this method",
            413: "the request body is too large",
        }.get(status, (exc.description or exc.name or "").strip() or code)
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"} if status == 405 else {}
        problems = []
        if status == 413:
            problems = [problem("$", "too-large", "the body is larger than the server accepts")]
        return ApiError(status, code, message, problems, headers=headers)
    if _is_database_error(exc):
        # The driver's text can hold SQL and connection details: name the failure only.
        incident = incidents.report(log, "database error", exc)
        return ApiError(
            503,
            "database-unavailable",
            f"the database did not answer (incident {incident})",
            headers={"Retry-After": "1"},
        )
    incident = incidents.report(log, "unexpected error", exc)
    return ApiError(500, "internal-error", f"an internal error occurred (incident {incident})")


def _is_database_error(exc: BaseException) -> bool:
    import sqlite3

    from pony.orm.core import TransactionError
    from pony.orm.dbapiprovider import DBException

    # TransactionError: a commit that failed or an optimistic check that lost a race; both are worth a retry.
    if isinstance(exc, DBException | sqlite3.Error | TransactionError):
        return True
    try:
        import psycopg2

        return isinstance(exc, psycopg2.Error)
    except ImportError:  # psycopg2 is only needed for PostgreSQL
        return False


def register(app: Flask) -> None:
    """Every exception, werkzeug's included, answers in the one shape."""

    @app.errorhandler(Exception)
    def _any(exc: Exception) -> Response:
        return error_response(to_api_error(exc))


__all__ = [
    "JSON",
    "ApiError",
    "body",
    "engine_problems",
    "error_response",
    "from_credo_error",
    "from_refused",
    "from_validation",
    "json_path",
    "problem",
    "rebase",
    "register",
    "to_api_error",
]
