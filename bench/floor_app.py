"""The server floor of bench/api.py: a WSGI app that reads the request and answers fixed bytes.

Served by the same gunicorn command as Credo and driven by the same clients, it measures what HTTP alone costs
on this machine in this run: gunicorn's parsing, threads and sockets, and the clients. Whatever Credo spends above
it is the application's (Flask, auth, validation, the engine, the audit record).

The answer is `CREDO_BENCH_FLOOR_BYTES` bytes of JSON, as large as a real decision, so both runs move as many
bytes through the sockets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

_SIZE = max(16, int(os.environ.get("CREDO_BENCH_FLOOR_BYTES", "6000")))
ANSWER = b'{"padding":"' + b"x" * (_SIZE - 14) + b'"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]
