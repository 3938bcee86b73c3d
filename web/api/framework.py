"""The endpoint registry: one declaration per operation drives routing, validation, auth, idempotency and OpenAPI.

    @endpoint("POST", "/decisions", scopes=("decide",), body=DecisionRequest, response=Decision,
              transaction="service", summary="...")
    def create_decision(call: Call) -> dict: ...

What `dispatch` does for every request, in this order (each step answers in the one error shape):

1. auth: `Authorization: Bearer` → 401 (missing, invalid) / 403 (no scope); path ids that cannot exist → 404
   (a case-insensitive id, PathParam.upper, reaches the handler in upper case); the query string → 422 (unknown
   or repeated parameters, values off the query model);
2. body (POST): 415 unless JSON in UTF-8, 413 over MAX_CONTENT_LENGTH, 400 unparsable (not UTF-8, a lone
   surrogate, a member named twice), 422 too deep or too big;
3. `Idempotency-Key` (POST): the stored answer, 409 while in progress, 422 when reused for another request;
4. validation against the endpoint's request model (strict: `"5"` is not a number) → 422 with JSON paths;
5. the handler, in the endpoint's transaction:
   - `read`: one Pony `db_session`;
   - `write`: one write transaction (BEGIN IMMEDIATE on SQLite); the stored idempotent answer commits with it;
   - `service`: none of ours: the decision service evaluates first and then commits its audit record in a
     transaction of its own, holding the write lock for the insert alone; an outer session would make that
     transaction a nested no-op and hold the lock through the evaluation;
6. the answer is checked against the response model (VALIDATE_RESPONSES) and sent as compact JSON.

OPTIONS on a path of the registry answers 204 with `Allow` (`options`), in place of Flask's automatic answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Response, current_app, request
from pony import orm
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from audit.db import write_session
from web.api import idempotency
from web.api.auth import Authenticated, authenticate, require
from web.api.errors import JSON, ApiError, error_response, from_validation, json_path, to_api_error
from web.api.schemas import IDEMPOTENCY_KEY

log = logging.getLogger("credo.api")

Transaction = Literal["read", "write", "service"]
PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_KEY = re.compile(IDEMPOTENCY_KEY)


# Pony maps `int` ids to 32-bit columns: a larger number names nothing, and Pony would refuse to look it up.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class PathParam:
    """A path parameter: what the server admits (`pattern`, which OpenAPI publishes as is) and what the handler gets.

    `upper`: the value is handed to the handler in upper case, the form it is stored in. For identifiers whose
    spelling is case-insensitive (a ULID is Crockford base32), so that the pattern admits both cases and no handler
    has to remember to normalise before a lookup. The pattern must then admit lower case too (checked below).
    """

    pattern: str
    description: str
    integer: bool = False
    example: str | None = None
    upper: bool = False

    def __post_init__(self) -> None:
        if self.upper and self.integer:
            raise TypeError("an integer path parameter has no case")
        if self.upper and re.fullmatch(r"[^a-z]*", self.pattern):
            # Upper-casing what only upper case can match would be a no-op: the declaration meant something else.
            raise TypeError(f"{self.pattern!r}: an `upper` parameter's pattern must admit lower case as well")

    def value(self, text: str) -> str | int | None:
        """What the handler gets for `text`, or None when it cannot name anything."""
        if not re.fullmatch(self.pattern, text):
            return None
        if self.integer:
            number = int(text)
            return number if number <= MAX_ID else None
        if not self.upper:
            return text
        # Case-insensitive in ASCII only: upper() of some other letters is ASCII ('ſ' → 'S') or longer ('ß' → 'SS'),
        # and would let a spelling through that the published pattern does not admit.
        return text.upper() if text.isascii() else None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    func: Callable[..., Any]
    summary: str
    description: str
    tag: str
    scopes: tuple[str, ...] | None  # None: public
    body: type[BaseModel] | None
    body_required: bool
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    alternate: tuple[int, ...]  # other statuses answered with the response model (a review's 202, health's 503)
    transaction: Transaction
    params: dict[str, PathParam] = field(default_factory=dict)
    # OpenAPI links from the success answer: name → (operationId, {parameter: runtime expression}).
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return self.func.__name__


ENDPOINTS: list[Endpoint] = []


@dataclass
class Call:
    """What a handler gets: the caller, the validated body and query, the path parameters, the idempotency key."""

    auth: Authenticated | None
    body: Any
    query: Any
    params: dict[str, Any]
    idempotency_key: str | None = None
    request_sha256: str | None = None

    @property
    def username(self) -> str:
        assert self.auth is not None
        return self.auth.username

    @property
    def config(self) -> Any:
        return current_app.config


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    scopes: tuple[str, ...] | None,
    response: type[BaseModel] | None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    query: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    alternate: tuple[int, ...] = (),
    transaction: Transaction = "read",
    params: dict[str, PathParam] | None = None,
    links: dict[str, tuple[str, dict[str, str]]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        names = PATH_PARAM.findall(path)
        declared = params or {}
        missing = [n for n in names if n not in declared]
        if missing:
            raise TypeError(f"{path}: declare the path parameter(s) {missing}")
        ENDPOINTS.append(
            Endpoint(
                method=method,
                path=path,
                func=func,
                summary=summary,
                description=(func.__doc__ or "").strip(),
                tag=tag,
                scopes=scopes,
                body=body,
                body_required=body_required,
                query=query,
                response=response,
                status=status,
                errors=errors,
                alternate=alternate,
                transaction=transaction,
                params={n: declared[n] for n in names},
                links=links or {},
            )
        )
        return func

    return register


# --- request parsing -----------------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _DuplicateMember(Exception):
    """A member name given twice in one object. Raised from inside the parser, which knows no path: the slow path
    parses again to find it (not a ValueError, so that it cannot be mistaken for a syntax error)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The hot path of every POST: one dict() and a length comparison, ~1 µs on a decision request.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateMember
    return obj


class _Duplicated(dict[str, Any]):
    """An object that repeated `name`, marked so that a walk can tell where it sits in the document."""

    name: str


def _marking_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Duplicated(obj)
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            marked.name = name
            break
        seen.add(name)
    return marked


# One decoder each, built once: json.loads builds a JSONDecoder per call when given a hook.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_object)
_LOCATOR = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_marking_object)
_SURROGATE = re.compile("[\ud800-\udfff]")
# "\ud800" to "\udfff" as written in JSON text: a body of escaped Chinese names (json.dumps' default) has many
# \u escapes, and only these can make a surrogate, so only they make the parsed body worth walking.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-32 LE begins like UTF-16 LE


def _bad_json(code: str, message: str, path: str = "$") -> ApiError:
    return ApiError(400, "bad-json", "the body is not valid JSON", [{"path": path, "code": code, "message": message}])


def _find(value: Any, found: Callable[[Any], str | None]) -> tuple[list[Any], str] | None:
    """The first place, in document order, where `found` says something: (the keys down to it, what it said)."""
    stack: list[tuple[list[Any], Any]] = [([], value)]
    while stack:
        trail, item = stack.pop()
        said = found(item)
        if said is not None:
            return trail, said
        if isinstance(item, dict):
            for k in reversed(item):
                said = found(k)
                if said is not None:  # a member name is a string too
                    return [*trail, k], said
                stack.append(([*trail, k], item[k]))
        elif isinstance(item, list):
            stack.extend(([*trail, i], v) for i, v in reversed(list(enumerate(item))))
    return None


def _duplicate_in(value: Any) -> str | None:
    return value.name if isinstance(value, _Duplicated) else None


def _surrogate_in(value: Any) -> str | None:
    if isinstance(value, str) and _SURROGATE.search(value):
        return "a \\u escape names half of a surrogate pair: not a character"
    return None


def parse_json(raw: bytes) -> Any:
    """The body as JSON text exactly as RFC 8259 has systems exchange it, or 400 `bad-json` naming the problem.

    Stricter than json.loads in what pydantic (the model validation that follows) would refuse anyway, so that the
    client hears about it as unparsable JSON rather than as a schema problem: UTF-8 only (no UTF-16 or UTF-32, no
    byte order mark, no surrogates encoded as bytes) and no lone surrogate escape ("\\ud800"). And stricter than
    both in one more way: a member name given twice in an object is refused, not "last one wins", because a
    lending decision must not be taken on a request that two readers could read differently.
    """
    try:
        text = raw.decode("utf-8")  # strict: also refuses surrogates encoded as bytes, which json.loads lets through
        if text.startswith("\ufeff"):
            raise _bad_json("byte-order-mark", "JSON text must not begin with a byte order mark (RFC 8259 section 8.1)")
        parsed = _DECODER.decode(text)
    except _DuplicateMember:
        trail, name = _find(_LOCATOR.decode(text), _duplicate_in) or ([], "?")
        raise _bad_json(
            "duplicate-member", "this member is given more than once in its object", json_path([*trail, name])
        ) from None
    except UnicodeDecodeError:
        raise _bad_json("not-utf-8", _encoding_problem(raw)) from None
    except (ValueError, RecursionError) as exc:
        if b"\x00" in raw[:4]:  # UTF-16 or UTF-32 text of ASCII characters is valid UTF-8 with NULs in it
            raise _bad_json("not-utf-8", _encoding_problem(raw)) from None
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "the body is not valid JSON"
        raise _bad_json("bad-json", message) from None
    if _SURROGATE_ESCAPE.search(text):  # only an escape can make one once the bytes are strict UTF-8
        lone = _find(parsed, _surrogate_in)
        if lone is not None:
            raise _bad_json("lone-surrogate", lone[1], json_path(lone[0]))
    return parsed


def _encoding_problem(raw: bytes) -> str:
    if raw.startswith(_UTF16_BOMS) or b"\x00" in raw[:4]:
        return "the body looks like UTF-16 or UTF-32: JSON text must be UTF-8 (RFC 8259 section 8.1)"
    return "the body is not valid UTF-8: JSON text must be UTF-8 (RFC 8259 section 8.1)"


def _check_shape(value: Any, config: Any, size: int) -> None:
    """Bound what a body of `size` bytes may hold before anything walks it: depth, members, string lengths.

    The walk runs on every POST, so it keeps no path while it goes: a path is rebuilt only for a problem. Every
    value and every character of a string takes at least one byte of JSON, so a body no longer than both limits
    cannot break either, and then only containers are visited, for the depth.
    """
    max_depth = int(config["MAX_CASE_DEPTH"]) + 2  # the envelope ({"case": {"fact": {...}}}) adds two levels
    max_nodes = int(config["MAX_CASE_NODES"])
    max_string = int(config["MAX_STRING_LENGTH"])
    if size <= min(max_nodes, max_string):
        max_nodes = max_string = size + 1
        skip_scalars = True
    else:
        skip_scalars = False
    nodes = 0
    trail: list[Any] = []  # the keys down to the node being looked at, for the message

    def fail(code: str, message: str) -> ApiError:
        return ApiError(
            422,
            "body-too-complex",
            "the request body exceeds the API's size limits",
            [{"path": json_path(trail), "code": code, "message": message}],
        )

    def walk(item: Any, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > max_nodes:
            trail.clear()
            raise fail("too-many-values", f"more than {max_nodes} values")
        kind = type(item)
        if kind is str:
            if len(item) > max_string:
                raise fail("too-long", f"longer than {max_string} characters")
        elif kind is dict or kind is list:
            if depth >= max_depth:
                raise fail("too-deep", f"nested deeper than {max_depth} levels")
            pairs = item.items() if kind is dict else enumerate(item)
            for k, v in pairs:
                if skip_scalars and type(v) is not dict and type(v) is not list:
                    continue
                trail.append(k)
                if kind is dict and len(k) > max_string:
                    raise fail("too-long", "a member name is too long")
                walk(v, depth + 1)
                trail.pop()

    walk(value, 0)


def _check_media_type() -> None:
    """415 unless the body is declared as JSON, and as UTF-8 if a charset is named at all.

    The body is always read as UTF-8 (RFC 8259 section 8.1: JSON exchanged between systems is UTF-8), so a request
    that says another charset would be read otherwise than its sender meant: refused rather than guessed at.
    """
    if request.mimetype != "application/json":
        sent = (request.mimetype or "(none)")[:80]
        raise ApiError(
            415,
            "unsupported-media-type",
            "send the request body as JSON (Content-Type: application/json)",
            [{"path": "header:Content-Type", "code": "not-json", "message": f"'{sent}'"}],
        )
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        raise ApiError(
            415,
            "unsupported-media-type",
            "JSON must be sent as UTF-8 (Content-Type: application/json or application/json; charset=utf-8)",
            [{"path": "header:Content-Type", "code": "not-utf-8", "message": f"charset '{charset[:80]}'"}],
        )


def _read_json(ep: Endpoint) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON (None when there is none)."""
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if has_body:
        _check_media_type()
    raw = request.get_data(cache=False)  # 413 from werkzeug past MAX_CONTENT_LENGTH
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body has no length to check up front, and werkzeug stops reading it at the limit without
        # saying so: what was read is a cut-off prefix. One more byte tells (werkzeug raises 413 past the limit).
        request.stream.read(1)
    if not raw.strip():
        if ep.body_required:
            raise ApiError(
                422,
                "body-required",
                "this endpoint needs a JSON body",
                [{"path": "$", "code": "required", "message": "a JSON object is required"}],
            )
        return b"{}", {}
    _check_media_type()
    parsed = parse_json(raw)
    _check_shape(parsed, current_app.config, len(raw))
    return raw, parsed


def _validate_body(ep: Endpoint, raw: bytes) -> Any:
    assert ep.body is not None
    try:
        # JSON mode, strict: what the schema says is what passes ("5" is no integer, 1 no boolean).
        return ep.body.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _validate_query(ep: Endpoint) -> Any:
    if ep.query is None:
        if request.args:
            name = next(iter(request.args))
            raise ApiError(
                422,
                "unknown-parameter",
                f"unknown query parameter '{name}'",
                [{"path": f"query:{name}", "code": "unknown-parameter", "message": "not a parameter"}],
            )
        return None
    # A name given twice is refused rather than read as its first value (werkzeug's default): the client meant
    # something by the second one, and a filter quietly ignored answers a different question than was asked. (No
    # query model takes a list; one that did would read request.args.getlist for it.)
    repeated = [name for name in request.args if len(request.args.getlist(name)) > 1]
    if repeated:
        raise ApiError(
            422,
            "repeated-parameter",
            f"the query parameter '{repeated[0][:80]}' is given more than once",
            [
                {"path": f"query:{name}", "code": "repeated-parameter", "message": "give this parameter once"}
                for name in repeated
            ],
        )
    values = dict(request.args.items())
    try:
        # Lax mode: a query string is text, so "50" must become the integer 50 here.
        return ep.query.model_validate(values)
    except ValidationError as exc:
        error = from_validation(exc, root="query")
        for p in error.problems:
            p["path"] = p["path"].replace("query.", "query:", 1)
        raise error from None


def _validate_params(params: dict[str, PathParam], values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in params.items():
        value = values[name]
        parsed = spec.value(value)
        if parsed is None:
            # An id that cannot exist: the thing it names is not there.
            raise ApiError(
                404,
                "not-found",
                f"no such {name.replace('_', ' ')}: '{value[:80]}'",
                [{"path": f"path:{name}", "code": "malformed-id", "message": spec.description}],
            )
        out[name] = parsed
    return out


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ApiError(
            422,
            "bad-idempotency-key",
            "Idempotency-Key must be 1-200 characters of A-Z a-z 0-9 . _ : -",
            [{"path": "header:Idempotency-Key", "code": "pattern", "message": "not a valid key"}],
        )
    return key


# --- answers ------------------------------------------------------------------------------------------------------


def utc(value: dt.datetime | None) -> str | None:
    """A stored time as RFC 3339 text: every stored time is naive UTC (audit.governance.now), so it says Z."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def render(ep: Endpoint, payload: Any) -> bytes:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    # pydantic-core's encoder: the same compact UTF-8 JSON as json.dumps, in a quarter of the time (a decision
    # with its trace is ~6 KB). Handlers pass times through utc() first: this encoder would drop naive UTC's Z.
    out = to_json(data)
    if ep.response is not None and current_app.config["VALIDATE_RESPONSES"]:
        try:
            ep.response.model_validate_json(out)
        except ValidationError as exc:
            # A bug of ours, not the client's: logged with the paths (never the values), answered as a 500.
            paths = [json_path(e["loc"]) for e in exc.errors(include_input=False)][:10]
            log.error("%s %s: answer does not match %s at %s", ep.method, ep.path, ep.response.__name__, paths)
            raise ApiError(500, "internal-error", "the server produced an invalid answer") from None
    return out


def _respond(status: int, body: bytes, replayed: bool = False) -> Response:
    response = Response(body, status=status, mimetype=JSON)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _storable(status: int) -> bool:
    # 5xx: the work may not have happened; the client should retry and the retry should run.
    return status < 500


def dispatch(ep: Endpoint, path_values: dict[str, str]) -> Response:
    config = current_app.config
    auth: Authenticated | None = None
    if ep.scopes is not None:
        auth = authenticate(request.headers.get("Authorization"))
        require(auth, ep.scopes)
    params = _validate_params(ep.params, path_values)
    query = _validate_query(ep)
    raw, parsed, key, digest = b"", None, None, None
    if ep.method == "POST":
        key = _idempotency_key()
        raw, parsed = _read_json(ep)
        if key is not None:  # the canonical re-encoding costs as much as the parse: only when it is needed
            digest = idempotency.request_hash(ep.method, request.path, parsed)
    held: idempotency.Claim | None = None
    if key is not None:
        caller = auth.caller_id if auth else "anonymous"
        outcome = idempotency.claim(
            caller,
            key,
            digest or "",
            lease_seconds=float(config["IDEMPOTENCY_LEASE_SECONDS"]),
            ttl_days=int(config["IDEMPOTENCY_TTL_DAYS"]),
        )
        if isinstance(outcome, idempotency.Stored):
            return _respond(outcome.status, outcome.body, replayed=True)
        held = outcome
    try:
        body = _validate_body(ep, raw) if ep.body is not None else None
        call = Call(auth, body, query, params, key, digest)
        if ep.transaction == "write":
            stored = False
            with write_session():
                status, out = _run(ep, call)
                if held is not None:
                    idempotency.finish(held, status, out)
                    stored = True
            if stored:  # only once the effect and its stored answer have committed together
                held = None
        elif ep.transaction == "read":
            with orm.db_session:
                status, out = _run(ep, call)
        else:
            status, out = _run(ep, call)
    except Exception as exc:  # every failure answers in the one shape; the claim is settled either way
        error = to_api_error(exc)
        response = error_response(error)
        if held is not None:
            _settle(held, error.status, response.get_data())
        return response
    if held is not None:
        _settle(held, status, out)
    return _respond(status, out)


def _run(ep: Endpoint, call: Call) -> tuple[int, bytes]:
    result = ep.func(call)
    status = ep.status
    if isinstance(result, tuple):
        status, result = result
    return status, render(ep, result)


def _settle(held: idempotency.Claim, status: int, body: bytes) -> None:
    try:
        if _storable(status):
            idempotency.finish(held, status, body)
        else:
            idempotency.release(held)
    except Exception as exc:  # the answer stands; a retry within the lease gets 409, after it runs again
        log.error("could not store the idempotent answer (%s)", type(exc).__name__)


def allowed_methods(endpoints: list[Endpoint]) -> list[str]:
    """The methods a path answers, for `Allow`: its operations, HEAD where there is a GET (werkzeug answers it from
    the GET), and OPTIONS itself."""
    methods = {ep.method for ep in endpoints}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods | {"OPTIONS"})


def options(params: dict[str, PathParam], allow: str, path_values: dict[str, str]) -> Response:
    """OPTIONS on an API path: 204 with `Allow` and no body.

    Flask's automatic answer is a 200 text/html with an empty body, which a JSON client cannot tell from a broken
    page. Public, like any CORS preflight, and answered without a database; an id that cannot exist is still a 404,
    as for every other method on the path.
    """
    try:
        _validate_params(params, path_values)
    except ApiError as error:
        return error_response(error)
    response = Response(status=204)
    response.headers["Allow"] = allow
    response.headers.pop("Content-Type", None)  # no body, so nothing to type (werkzeug sets text/html by default)
    return response


def blueprint() -> Blueprint:
    bp = Blueprint("api", __name__)
    by_path: dict[str, list[Endpoint]] = {}
    for ep in ENDPOINTS:
        by_path.setdefault(ep.path, []).append(ep)
    for path, endpoints in by_path.items():
        rule = PATH_PARAM.sub(lambda m: f"<{m.group(1)}>", path)
        for ep in endpoints:

            def view(_ep: Endpoint = ep, **values: str) -> Response:
                return dispatch(_ep, values)

            # OPTIONS is answered once per path below, not by Flask for each operation.
            bp.add_url_rule(
                rule, endpoint=ep.operation_id, view_func=view, methods=[ep.method], provide_automatic_options=False
            )

        def answer_options(
            _params: dict[str, PathParam] = endpoints[0].params,
            _allow: str = ", ".join(allowed_methods(endpoints)),
            **values: str,
        ) -> Response:
            return options(_params, _allow, values)

        bp.add_url_rule(
            rule,
            endpoint=f"options:{path}",
            view_func=answer_options,
            methods=["OPTIONS"],
            provide_automatic_options=False,
        )
    return bp


__all__ = ["ENDPOINTS", "Call", "Endpoint", "PathParam", "blueprint", "dispatch", "endpoint", "render"]
