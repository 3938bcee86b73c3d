"""Unexpected failures reach the log as an incident id, a type and a place: no traceback, no exception text."""

from __future__ import annotations

import json
import logging
import re

import pytest

from web import incidents


def _parse_customer_row() -> None:
    json.loads('{"borrower": "ACME Holdings", "revenue": }')  # raises inside the standard library


def test_where_names_the_innermost_frame_of_our_own_code() -> None:
    with pytest.raises(ValueError) as caught:
        _parse_customer_row()
    place = incidents.where(caught.value)
    line = _parse_customer_row.__code__.co_firstlineno + 1
    assert place == f"tests/web/test_incidents.py:{line} in _parse_customer_row"  # not json/decoder.py


def test_where_without_a_traceback() -> None:
    assert incidents.where(RuntimeError("never raised")) == "(no frame)"


def test_report_logs_type_place_and_incident_but_no_text_or_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("credo.test")
    with pytest.raises(ValueError) as caught:
        _parse_customer_row()
    with caplog.at_level(logging.ERROR, logger="credo.test"):
        incident = incidents.report(log, "import failed", caught.value)
    assert re.fullmatch(r"[0-9a-f]{12}", incident)
    [entry] = caplog.records
    text = caplog.text
    assert entry.exc_info is None and "Traceback" not in text
    assert "ACME" not in text and "Expecting value" not in text  # the exception's text stays out
    assert entry.getMessage() == (
        f"import failed: JSONDecodeError at {incidents.where(caught.value)} (incident {incident})"
    )
