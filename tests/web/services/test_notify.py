"""The outbox: senders, retries with backoff, and at-least-once delivery across a crash."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pony import orm

from audit.db import write_session
from audit.governance import now
from web.models import Notification
from web.services.notify import (
    MAX_ATTEMPTS,
    LogSender,
    Message,
    WebhookSender,
    backoff,
    deliver_pending,
    queue,
    sender_from_env,
)


def queued(subject: str = "HIGH EW-DPD-30 for C1") -> int:
    with write_session():
        return queue("rm01", subject, {"customer": "C1", "secret-ish": "revenue 1,234"}).id


class Flaky:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[int] = []

    def send(self, message: Message) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TimeoutError("smtp.example: connection timed out quoting revenue 1,234")
        self.sent.append(message.id)


def test_failures_back_off_then_give_up_and_keep_only_the_error_type(database: object) -> None:
    note = queued()
    sender = Flaky(failures=MAX_ATTEMPTS)
    at = now()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = deliver_pending(sender, at=at)
        assert (report.retrying if attempt < MAX_ATTEMPTS else report.failed) == [note]
        at += backoff(attempt)
    with orm.db_session:
        row = Notification[note]
        assert (row.status, row.attempts, row.last_error) == ("failed", MAX_ATTEMPTS, "TimeoutError")
    assert backoff(1) < backoff(2) < backoff(3) and backoff(40) == dt.timedelta(hours=6)


def test_a_worker_that_dies_mid_send_leaves_the_message_to_be_sent_again(database: object) -> None:
    note = queued()

    class Crash:
        name = "crash"

        def send(self, message: Message) -> None:
            raise SystemExit  # not an Exception: the worker process dies before marking anything

    with pytest.raises(SystemExit):
        deliver_pending(Crash())
    sender = Flaky(failures=0)
    assert deliver_pending(sender).sent == []  # still leased to the dead worker
    assert deliver_pending(sender, at=now() + dt.timedelta(minutes=6)).sent == [note]
    assert sender.sent == [note]


def test_the_log_sender_never_logs_the_body(database: object, caplog: pytest.LogCaptureFixture) -> None:
    note = queued()
    with caplog.at_level(logging.INFO, logger="credo.notify"):
        assert deliver_pending(LogSender()).sent == [note]
    assert "HIGH EW-DPD-30 for C1" in caplog.text and "1,234" not in caplog.text


def test_the_webhook_sender_posts_signed_json(database: object) -> None:
    received: list[tuple[dict, str, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches to
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers["X-Credo-Signature"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        note = queued()
        sender = sender_from_env(
            {
                "CREDO_NOTIFY": "webhook",
                "CREDO_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook",
                "CREDO_WEBHOOK_SECRET": "s3cret",
            }
        )
        assert isinstance(sender, WebhookSender)
        assert deliver_pending(sender).sent == [note]
    finally:
        server.shutdown()
    payload, signature, raw = received[0]
    assert payload["id"] == note and payload["body"]["customer"] == "C1"
    assert signature == "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
