"""The OpenAPI 3.1 document, generated from the endpoint registry and the pydantic models that validate traffic.

Pydantic emits JSON Schema 2020-12, which is OpenAPI 3.1's schema dialect, so the models' schemas go into
`components.schemas` unchanged. Every operation lists every status it can answer (the error statuses follow
from what the operation does: auth, a body, path ids, and the query string every operation checks), each with
the one error shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.api.framework import ENDPOINTS, MAX_ID, Endpoint
from web.api.schemas import IDEMPOTENCY_KEY, ErrorResponse

API_PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"

STATUS_TEXT = {
    200: "OK",
    202: "Accepted: recorded, waiting for a second underwriter's confirmation",
    400: "The body is not JSON",
    401: "No API key, or not a valid one",
    403: "The key lacks the scope, or its user the role",
    404: "No such thing",
    409: "Conflicts with the current state, or the Idempotency-Key is in use",
    413: "The body is too large",
    415: "The body is not application/json, or names a charset other than UTF-8",
    422: "The request does not validate: every problem by JSON path",
    503: "Unavailable (the database, the audit trail, or for /health what failed): retry",
}


def _models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"ErrorResponse": ErrorResponse}
    for ep in ENDPOINTS:
        for model in (ep.body, ep.response):
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def _statuses(ep: Endpoint) -> list[int]:
    """What dispatch can answer for `ep`, step by step (framework.dispatch), besides the handler's own `errors`."""
    # 422 for all: dispatch checks the query string of every operation, and one without a query model refuses
    # any parameter at all (GET /health?x=1).
    statuses = {422, 503}
    if ep.scopes is not None:
        statuses |= {401, 403}
    if ep.method == "POST":
        statuses |= {400, 409, 413, 415}
    if ep.params:
        statuses.add(404)
    statuses |= set(ep.errors)
    return sorted(statuses)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # An optional parameter is one left out: a query string cannot say null.
        choices = [c for c in prop.get("anyOf", ()) if c != {"type": "null"}]
        if "anyOf" in prop and len(choices) == 1:
            prop = {**{k: v for k, v in prop.items() if k not in ("anyOf", "default")}, **choices[0]}
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _operation(ep: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "security": [{"bearerAuth": []}] if ep.scopes is not None else [],
    }
    description = ep.description
    if ep.scopes is not None:
        scopes = " or ".join(f"`{s}`" for s in ep.scopes)
        description = f"{description}\n\nScope: {scopes} (or `admin`).".strip()
        op["x-credo-scopes"] = list(ep.scopes)
    if description:
        op["description"] = description
    parameters: list[dict[str, Any]] = []
    for name, spec in ep.params.items():
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0, "maximum": MAX_ID}
            if spec.integer
            else {"type": "string", "pattern": f"^{spec.pattern}$"}
        )
        parameter = {"name": name, "in": "path", "required": True, "description": spec.description, "schema": schema}
        if spec.example is not None:
            parameter["example"] = int(spec.example) if spec.integer else spec.example
        parameters.append(parameter)
    if ep.query is not None:
        parameters += _query_parameters(ep.query)
    if ep.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retries with the same key and body get the stored answer; kept at least 7 days.",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY},
            }
        )
    if parameters:
        op["parameters"] = parameters
    if ep.body is not None:
        op["requestBody"] = {"required": ep.body_required, "content": {"application/json": {"schema": _ref(ep.body)}}}
    success: dict[str, Any] = {"description": STATUS_TEXT.get(ep.status, "OK")}
    if ep.response is not None:
        success["content"] = {"application/json": {"schema": _ref(ep.response)}}
    if ep.links:
        success["links"] = {
            name: {"operationId": operation, "parameters": dict(parameters)}
            for name, (operation, parameters) in ep.links.items()
        }
    responses: dict[str, Any] = {str(ep.status): success}
    for status in _statuses(ep):
        if str(status) in responses or status in ep.alternate:
            continue
        responses[str(status)] = {
            "description": STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorResponse)}},
        }
    for status in ep.alternate:
        alternate: dict[str, Any] = {"description": STATUS_TEXT.get(status, "OK")}
        if ep.response is not None:
            alternate["content"] = {"application/json": {"schema": _ref(ep.response)}}
        responses[str(status)] = alternate
    op["responses"] = responses
    return op


def document(version: str = "1.0.0") -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _models()], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        paths.setdefault(API_PREFIX + ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Credo decision API",
            "version": version,
            "description": (
                "Automated credit decisions, explained and recorded; monitoring, alerts and rules. "
                'Every error answers `{"error": {"code", "message", "problems": [{"path", "code", '
                '"message"}]}}`. Every POST honours `Idempotency-Key`.'
            ),
        },
        "servers": [{"url": "/"}],
        "tags": _tags(),
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from `credo keys create NAME --scopes decide,read`",
                }
            },
        },
    }


def _tags() -> list[dict[str, str]]:
    return [{"name": name} for name in dict.fromkeys(ep.tag for ep in ENDPOINTS)]


__all__ = ["API_PREFIX", "document"]
