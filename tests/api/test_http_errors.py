"""Bad input gets a clear 4xx in the one error shape, by JSON path; nothing else ever shows a traceback."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import requests

from engine.evaluate import EvaluationError
from tests.api.conftest import AS_OF, Api, decision_request

JSON = {"Content-Type": "application/json"}


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "problems"}, body
    for problem in body["error"]["problems"]:
        assert set(problem) == {"path", "code", "message"}, problem
    return dict(body["error"])


def test_health_needs_no_key_and_checks_database_and_policies(api: Api) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"]["ok"] and body["policies"]["ok"]
    assert "2 of 2 policies ready" in body["policies"]["detail"]


def test_unknown_route_and_wrong_method_answer_in_the_one_shape(api: Api) -> None:
    missing = api.get("/no-such-thing", "admin")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not-found"
    wrong = api.request("DELETE", "/policies", "admin")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method-not-allowed"
    assert "GET" in wrong.headers["Allow"]
    outside = requests.get(api.base.rsplit("/api/v1", 1)[0] + "/favicon.ico", timeout=10)
    assert outside.status_code == 404 and error_of(outside)["code"] == "not-found"


def test_an_invalid_case_lists_every_problem_by_json_path(api: Api) -> None:
    body = decision_request()
    body["case"]["financials"]["ebitda"] = "lots"
    body["case"]["credit"]["max_dpd_12m"] = -3
    body["case"]["borrower"]["colour"] = "blue"
    response = api.post("/decisions", "decide", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid-case"
    paths = {p["path"] for p in error["problems"]}
    assert {"$.case.financials.ebitda", "$.case.credit.max_dpd_12m", "$.case.borrower.colour"} <= paths


def test_an_integer_too_large_for_a_double_is_a_422_on_decisions_and_monitoring(api: Api) -> None:
    body = decision_request()
    body["case"]["application"]["amount"] = 10**400  # valid JSON; float() of it overflows
    for path, payload, scope in (
        ("/decisions", body, "decide"),
        ("/monitoring/evaluate", {"case": body["case"], "as_of": body["as_of"]}, "monitor"),
    ):
        response = api.post(path, scope, json=payload)
        assert response.status_code == 422, (path, response.text)
        assert "$.case.application.amount" in {p["path"] for p in error_of(response)["problems"]}


def test_the_envelope_is_validated_strictly_with_paths(api: Api) -> None:
    response = api.post(
        "/decisions", "decide", json={"policy": "Project Finance!", "case": [], "as_of": "30/06/2026", "asof": 1}
    )
    assert response.status_code == 422
    paths = {p["path"] for p in error_of(response)["problems"]}
    assert {"$.policy", "$.case", "$.as_of", "$.asof"} <= paths
    # A string is not a number, even when it spells one.
    review = api.post(
        "/decisions/" + "0" * 26 + "/review", "underwriter1", json={"outcome": "approve", "reason": "x", "limit": "5"}
    )
    assert review.status_code == 422 and {p["path"] for p in error_of(review)["problems"]} == {"$.limit"}


def test_unknown_policy_is_404(api: Api) -> None:
    response = api.post("/decisions", "decide", json={"policy": "no-such-policy", "case": {}, "as_of": "2026-06-30"})
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown-policy"


def test_oversized_body_is_413(api: Api) -> None:
    big = b'{"policy": "project-finance", "case": {"x": "' + b"a" * 1_100_000 + b'"}}'
    response = api.post("/decisions", "decide", data=big, headers=JSON)
    assert response.status_code == 413
    assert error_of(response)["code"] == "body-too-large"
    # Chunked, the body has no length to check up front: it must not be cut at the limit and parsed as JSON.
    chunked = api.post("/decisions", "decide", data=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
                       headers=JSON)
    assert chunked.status_code == 413, chunked.text
    assert error_of(chunked)["code"] == "body-too-large"


def test_wrong_content_type_is_415(api: Api) -> None:
    body = json.dumps(decision_request())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = api.post("/decisions", "decide", data=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert error_of(response)["code"] == "unsupported-media-type"


def test_unparsable_json_and_non_json_numbers_are_400(api: Api) -> None:
    for raw in (b'{"policy": ', b"\xff\xfe", b'{"policy": "project-finance", "case": {"x": NaN}}'):
        response = api.post("/decisions", "decide", data=raw, headers=JSON)
        assert response.status_code == 400, raw
        error = error_of(response)
        assert error["code"] == "bad-json" and error["problems"][0]["path"] == "$"


def test_deep_or_huge_cases_are_refused_before_anything_walks_them(api: Api) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    response = api.post("/decisions", "decide", json={"policy": "project-finance", "case": deep})
    assert response.status_code == 422 and error_of(response)["code"] == "body-too-complex"
    wide = {"policy": "project-finance", "case": {"f": {f"k{i}": i for i in range(6000)}}}
    response = api.post("/decisions", "decide", json=wide)
    assert response.status_code == 422 and error_of(response)["code"] == "body-too-complex"
    long_text = {"policy": "project-finance", "case": {"borrower": {"name": "n" * 20_000}}}
    response = api.post("/decisions", "decide", json=long_text)
    assert response.status_code == 422
    assert error_of(response)["problems"][0]["path"] == "$.case.borrower.name"


def test_missing_body_and_unknown_query_parameters(api: Api) -> None:
    response = api.post("/decisions", "decide")
    assert response.status_code == 422 and error_of(response)["code"] == "body-required"
    response = api.get("/policies", "read", params={"colour": "blue"})
    assert response.status_code == 422 and error_of(response)["problems"][0]["path"] == "query:colour"
    response = api.get("/alerts", "monitor", params={"limit": "many", "status": "lost"})
    assert response.status_code == 422
    assert {p["path"] for p in error_of(response)["problems"]} == {"query:limit", "query:status"}


def test_malformed_ids_are_404(api: Api) -> None:
    for path in ("/decisions/not-a-decision-id", "/alerts/abc/acknowledge", "/rulesets/Bad Name/versions"):
        method = "POST" if path.endswith("acknowledge") else "GET"
        response = api.request(method, path, "admin", json={} if method == "POST" else None)
        assert response.status_code == 404, path
        error_of(response)


def test_an_unexpected_failure_is_a_500_without_a_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import web.api.rules

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(web.api.rules.rules, "list_versions", broken)
    with caplog.at_level(logging.ERROR, logger="credo.api"):
        response = api.get("/rulesets/project-finance/versions", "read")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal-error" and "incident" in error["message"]
    assert "secret" not in response.text and "RuntimeError" not in response.text
    # The log names the incident, the type and the place, and nothing of the exception's text or its traceback.
    incident = error["message"].rsplit("incident ", 1)[1].rstrip(")")
    [entry] = [r for r in caplog.records if incident in r.getMessage()]
    assert entry.exc_info is None and "Traceback" not in caplog.text and "secret" not in caplog.text
    assert "RuntimeError at tests/api/test_http_errors.py:" in entry.getMessage()


def test_an_evaluation_failure_follows_on_error_and_is_recorded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.evaluate

    def fail(self: Any, matcher: Any) -> None:
        raise EvaluationError("engine-fault", "the rule engine failed on this case")

    monkeypatch.setattr(engine.evaluate._State, "run", fail)
    response = api.post("/decisions", "decide", json=decision_request("approve-energy.json"))
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["outcome"] == "refer"  # project-finance's on_error
    assert decision["error"]["code"] == "engine-fault"
    assert [r["code"] for r in decision["reasons"]] == ["R-ERROR"]
    monkeypatch.undo()
    recorded = api.get(f"/decisions/{decision['decision_id']}", "read")
    assert recorded.status_code == 200
    assert recorded.json()["decision"]["error"]["code"] == "engine-fault"


def test_no_debugger_and_security_headers(api: Api) -> None:
    response = api.get("/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Werkzeug Debugger" not in api.get("/no-such-thing").text


def test_a_member_given_twice_is_refused_by_its_json_path(api: Api) -> None:
    # Last-one-wins would decide on a request another reader of it could take for a different policy.
    case = json.dumps(decision_request()["case"])
    ambiguous = f'{{"policy": "nope", "policy": "project-finance", "case": {case}, "as_of": "2026-06-30"}}'
    response = api.post("/decisions", "decide", data=ambiguous.encode(), headers=JSON)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "bad-json"
    assert error["problems"] == [
        {"path": "$.policy", "code": "duplicate-member", "message": "this member is given more than once in its object"}
    ]
    nested = f'{{"policy": "project-finance", "case": {case[:-1]}, "extra": {{"x": 1, "x": 2}}}}}}'
    response = api.post("/decisions", "decide", data=nested.encode(), headers=JSON)
    assert response.status_code == 400 and error_of(response)["problems"][0]["path"] == "$.case.extra.x"
    monitoring = b'{"case": {"a": 1}, "as_of": "2026-06-30", "as_of": "2026-07-01"}'
    response = api.post("/monitoring/evaluate", "monitor", data=monitoring, headers=JSON)
    assert response.status_code == 400 and error_of(response)["problems"][0]["path"] == "$.as_of"


@pytest.mark.parametrize(
    ("raw", "problem", "path"),
    [
        (json.dumps(decision_request()).encode("utf-16"), "not-utf-8", "$"),
        (json.dumps(decision_request()).encode("utf-16-le"), "not-utf-8", "$"),
        (json.dumps(decision_request()).encode("utf-32"), "not-utf-8", "$"),
        (b"\xef\xbb\xbf" + json.dumps(decision_request()).encode(), "byte-order-mark", "$"),
        (b'{"policy": "project-finance", "case": {"note": "\\ud800"}}', "lone-surrogate", "$.case.note"),
        (b'{"policy": "project-finance", "case": {"n": ["\\udc00\\ud800"]}}', "lone-surrogate", "$.case.n[0]"),
        (b'{"policy": "project-finance", "case": {"\\ud800x": 1}}', "lone-surrogate", '$.case["\\ud800x"]'),
        (b'{"policy": "project-finance", "case": {"note": "\xed\xa0\x80"}}', "not-utf-8", "$"),
    ],
)
def test_what_is_not_utf8_json_text_is_400_from_our_parser_not_a_422_from_pydantic(
    api: Api, raw: bytes, problem: str, path: str
) -> None:
    response = api.post("/decisions", "decide", data=raw, headers=JSON)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "bad-json"
    assert (error["problems"][0]["code"], error["problems"][0]["path"]) == (problem, path)
    assert "RFC 8259" in error["problems"][0]["message"] or problem == "lone-surrogate"


def test_escapes_that_make_characters_still_pass(api: Api) -> None:
    body = decision_request()
    body["case"]["borrower"]["name"] = "Ac\u00e9me \U0001f600 \\ud800"  # a pair, and a backslash that escapes nothing
    raw = json.dumps(body).encode()  # ASCII with \u escapes, the astral character as a surrogate pair
    assert b"\\ud83d\\ude00" in raw
    response = api.post("/decisions", "decide", data=raw, headers=JSON)
    assert response.status_code == 200, response.text


def test_every_operation_documents_the_422_it_gives_for_an_unknown_query_parameter(api: Api) -> None:
    response = api.get("/health", params={"x": "1"})
    assert response.status_code == 422 and error_of(response)["code"] == "unknown-parameter"
    spec = api.get("/openapi.json").json()
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation["responses"].get("422", {}).get("content", {}).get("application/json", {}).get("schema")
        != error_schema
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("policy", "as_of", "status", "code"),
    [("no-such-policy", AS_OF, 404, "unknown-policy"), ("project-finance", "1990-01-01", 422, "policy-not-in-force")],
)
def test_a_policy_is_refused_with_one_code_by_decisions_and_monitoring(
    api: Api, policy: str, as_of: str, status: int, code: str
) -> None:
    case = decision_request()["case"]
    for path, key in (("/decisions", "decide"), ("/monitoring/evaluate", "monitor")):
        response = api.post(path, key, json={"policy": policy, "case": case, "as_of": as_of})
        assert response.status_code == status, (path, response.text)
        error = error_of(response)
        assert error["code"] == code, path
        assert [(p["path"], p["code"]) for p in error["problems"]] == [("$.policy", code)], path


def test_a_decision_id_is_case_insensitive_like_every_ulid(api: Api) -> None:
    # Crockford base32 ignores case: a client that lower-cases ids (a URL normaliser, a case-folding store) must
    # reach the same decision, which is stored in upper case.
    decided = api.post("/decisions", "decide", json=decision_request()).json()
    upper = decided["decision_id"]
    lower, mixed = upper.lower(), upper[:13].lower() + upper[13:]
    for spelling in (lower, mixed):
        record = api.get(f"/decisions/{spelling}", "read")
        assert record.status_code == 200, record.text
        assert record.json()["decision_id"] == upper
    replay = api.post(f"/decisions/{lower}/replay", "read")
    assert replay.status_code == 200, replay.text
    review = api.post(f"/decisions/{lower}/review", "underwriter1", json={"outcome": "decline", "reason": "checked"})
    assert review.status_code == 200, review.text
    assert review.json()["decision_id"] == upper
    # The document admits what the server admits, and still not what it refuses.
    spec = api.get("/openapi.json").json()
    for path in ("/decisions/{decision_id}", "/decisions/{decision_id}/review", "/decisions/{decision_id}/replay"):
        operations = spec["paths"]["/api/v1" + path]
        [parameter] = [p for op in operations.values() for p in op["parameters"] if p["name"] == "decision_id"]
        pattern = parameter["schema"]["pattern"]
        assert re.search(pattern, lower) and re.search(pattern, mixed), (path, pattern)
        assert not re.search(pattern, "u" * 26) and not re.search(pattern, "\u017f" * 26), (path, pattern)
    assert api.get("/decisions/" + "\u017f" * 26, "read").status_code == 404  # upper() of it would be 'S' * 26


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16", "us-ascii"])
def test_a_charset_other_than_utf8_is_415(api: Api, charset: str) -> None:
    body = json.dumps(decision_request()).encode()
    response = api.post(
        "/decisions", "decide", data=body, headers={"Content-Type": f"application/json; charset={charset}"}
    )
    assert response.status_code == 415, response.text
    error = error_of(response)
    assert error["code"] == "unsupported-media-type"
    assert [p["path"] for p in error["problems"]] == ["header:Content-Type"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", 'application/json; charset="UTF-8"'])
def test_a_utf8_charset_is_accepted(api: Api, content_type: str) -> None:
    body = json.dumps(decision_request()).encode()
    response = api.post("/decisions", "decide", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_a_repeated_query_parameter_is_refused_not_read_as_its_first_value(api: Api) -> None:
    response = api.get("/alerts", "monitor", params=[("status", "open"), ("status", "resolved"), ("limit", "5")])
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "repeated-parameter"
    assert [(p["path"], p["code"]) for p in error["problems"]] == [("query:status", "repeated-parameter")]
    # Given once, the same parameters pass.
    assert api.get("/alerts", "monitor", params={"status": "open", "limit": "5"}).status_code == 200


def test_options_answers_204_with_allow_and_no_body(api: Api) -> None:
    for path, allow in (
        ("/decisions", "OPTIONS, POST"),
        ("/decisions/" + "0" * 26, "GET, HEAD, OPTIONS"),
        ("/alerts", "GET, HEAD, OPTIONS"),
        ("/openapi.json", "GET, HEAD, OPTIONS"),
        ("/docs", "GET, HEAD, OPTIONS"),
    ):
        response = api.request("OPTIONS", path)
        assert response.status_code == 204, (path, response.status_code, response.text[:200])
        assert response.headers["Allow"] == allow, path
        assert response.content == b"" and "text/html" not in response.headers.get("Content-Type", ""), path
    for path in ("/no-such-thing", "/decisions/not-a-decision-id"):
        missing = api.request("OPTIONS", path)
        assert missing.status_code == 404, path
        assert error_of(missing)["code"] == "not-found"
    docs = requests.get(api.base + "/docs", timeout=10)
    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
