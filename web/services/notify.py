"""Notifications to relationship managers through an outbox, delivered at least once by a pluggable sender.

`queue` writes the message in the caller's transaction, so an alert and its notification commit together or
not at all. `deliver_pending` claims due messages with a lease (a worker that dies mid-send leaves them to be
claimed again when the lease runs out), sends each outside any transaction, and only then marks it sent: a
crash between the two sends it again, never loses it. A failed send is retried with exponential backoff and
marked failed after MAX_ATTEMPTS, for an operator to look at.

Senders: `log` (the default; logs the id, recipient and subject only, never the body), `smtp`, `webhook`
(JSON POST, HMAC-SHA256 signed when a secret is set). `sender_from_env` picks one from CREDO_NOTIFY.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import smtplib
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from pony import orm

from audit.db import db, write_session
from audit.governance import now
from web.models import Alert, Customer, Notification

log = logging.getLogger("credo.notify")

MAX_ATTEMPTS = 8
BACKOFF = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Message:
    id: int
    recipient: str
    address: str | None
    subject: str
    body: dict[str, Any]


class Sender(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver or raise; any exception counts as a failed attempt."""


class LogSender:
    name = "log"

    def send(self, message: Message) -> None:
        log.info("notification %d to %s: %s", message.id, message.recipient, message.subject)


class SmtpSender:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 587,
        sender: str = "credo@localhost",
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def send(self, message: Message) -> None:
        if not message.address:
            raise LookupError("the recipient has no e-mail address")
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.sender, message.address, message.subject
        mail.set_content(json.dumps(message.body, indent=2, ensure_ascii=False))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(mail)


class WebhookSender:
    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook URL starts with http:// or https://")
        self.url, self.secret, self.timeout = url, secret, timeout

    def send(self, message: Message) -> None:
        payload = json.dumps(
            {"id": message.id, "recipient": message.recipient, "subject": message.subject, "body": message.body},
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"credo-notification-{message.id}"}
        if self.secret:
            signature = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()
            headers["X-Credo-Signature"] = f"sha256={signature}"
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # the scheme was checked in __init__
            if not 200 <= response.status < 300:
                raise ConnectionError(f"webhook answered {response.status}")


def sender_from_env(env: Mapping[str, str] | None = None) -> Sender:
    env = os.environ if env is None else env
    kind = env.get("CREDO_NOTIFY", "log")
    if kind == "smtp":
        return SmtpSender(
            env.get("CREDO_SMTP_HOST", "localhost"),
            int(env.get("CREDO_SMTP_PORT", "587")),
            env.get("CREDO_SMTP_FROM", "credo@localhost"),
            username=env.get("CREDO_SMTP_USER"),
            password=env.get("CREDO_SMTP_PASSWORD"),
            starttls=env.get("CREDO_SMTP_STARTTLS", "true").lower() != "false",
        )
    if kind == "webhook":
        return WebhookSender(env["CREDO_WEBHOOK_URL"], env.get("CREDO_WEBHOOK_SECRET"))
    if kind != "log":
        raise ValueError(f"CREDO_NOTIFY must be log, smtp or webhook, not '{kind}'")
    return LogSender()


def queue(
    recipient: str,
    subject: str,
    body: Mapping[str, Any],
    *,
    address: str | None = None,
    customer: Customer | None = None,
    alert: Alert | None = None,
) -> Notification:
    """Add a message to the outbox in the current transaction."""
    stamp = now()
    note = Notification(
        recipient=recipient,
        address=address,
        subject=subject,
        body=json.dumps(dict(body), ensure_ascii=False, sort_keys=True),
        customer=customer,
        alert=alert,
        status="pending",
        attempts=0,
        next_attempt_at=stamp,
        created_at=stamp,
    )
    note.flush()
    return note


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def backoff(attempts: int) -> dt.timedelta:
    return min(BACKOFF * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)


def _claim(at: dt.datetime, limit: int, lease: dt.timedelta) -> list[Message]:
    with write_session():
        query = orm.select(
            n
            for n in Notification
            if n.status == "pending" and n.next_attempt_at <= at and (n.claimed_until is None or n.claimed_until < at)
        ).order_by(Notification.id)
        if db.provider.dialect == "PostgreSQL":
            # Two workers never claim the same row; SQLite's write lock already serialises the claim.
            query = query.for_update(skip_locked=True)
        claimed = []
        for note in query[:limit]:
            note.claimed_until = at + lease
            claimed.append(Message(note.id, note.recipient, note.address, note.subject, json.loads(note.body)))
        return claimed


def deliver_pending(
    sender: Sender, *, at: dt.datetime | None = None, limit: int = 100, lease: dt.timedelta = LEASE
) -> DeliveryReport:
    """Send every due message once; returns what was sent, what will be retried and what gave up."""
    at = at or now()
    report = DeliveryReport()
    for message in _claim(at, limit, lease):
        error: str | None = None
        try:
            sender.send(message)
        except Exception as exc:  # any failure of a sender is one failed attempt, retried later
            error = type(exc).__name__
        with write_session():
            note = Notification[message.id]
            note.claimed_until = None
            if error is None:
                note.status, note.sent_at = "sent", now()
                note.attempts += 1
                report.sent.append(note.id)
                continue
            note.attempts += 1
            note.last_error = error  # the exception's type only: its text may quote the message
            if note.attempts >= MAX_ATTEMPTS:
                note.status = "failed"
                report.failed.append(note.id)
                log.warning("notification %d failed %d times (%s); giving up", note.id, note.attempts, error)
            else:
                note.next_attempt_at = at + backoff(note.attempts)
                report.retrying.append(note.id)
                log.info("notification %d attempt %d failed (%s); retrying", note.id, note.attempts, error)
    return report


__all__ = [
    "DeliveryReport",
    "LogSender",
    "Message",
    "Sender",
    "SmtpSender",
    "WebhookSender",
    "backoff",
    "deliver_pending",
    "queue",
    "sender_from_env",
]
