"""Unexpected failures, logged so they can be found without a traceback or an exception's text in the log.

A traceback quotes source lines and the exception's message, and a message can quote the data that broke the code
(a customer's name in a `ValueError`, SQL with its values in a driver's error). So the log gets an incident id, the
exception's type and where it was raised (file:line and function of the innermost frame of Credo's own code);
the person who saw the failure gets the same incident id and nothing more.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def where(exc: BaseException) -> str:
    """`path:line in function` of the innermost frame in this repository's code (else the innermost frame)."""
    tb = exc.__traceback__
    ours = last = None
    while tb is not None:
        code = tb.tb_frame.f_code
        place = (code.co_filename, tb.tb_lineno, code.co_name)
        last = place
        path = Path(code.co_filename)
        if path.is_relative_to(REPO) and ".venv" not in path.relative_to(REPO).parts:
            ours = place
        tb = tb.tb_next
    found = ours or last
    if found is None:
        return "(no frame)"
    filename, line, function = found
    path = Path(filename)
    shown = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    return f"{shown}:{line} in {function}"


def report(log: logging.Logger, what: str, exc: BaseException) -> str:
    """Log an unexpected failure as `what`; returns the incident id to show to whoever met it."""
    incident = secrets.token_hex(6)
    log.error("%s: %s at %s (incident %s)", what, type(exc).__name__, where(exc), incident)
    return incident


__all__ = ["report", "where"]
