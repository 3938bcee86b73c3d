"""Console sign-in throttling: five failed sign-ins to one account within 15 minutes lock it for everyone, correct
password included, until the oldest failure leaves the window; a successful sign-in starts the count afresh."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pony import orm

from audit import store
from tests.console.conftest import Console, login
from web.services import users


def _events(action: str, username: str) -> int:
    with orm.db_session:
        row = store.query_one(
            "SELECT COUNT(*) FROM governance_event WHERE action = ? AND subject = ?", (action, f"user:{username}")
        )
    assert row is not None
    return int(row[0])


def test_five_failures_lock_the_account_and_the_lock_ends_with_the_window(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = console.app.test_client()
    for _ in range(users.LOCKOUT_FAILURES):
        assert login(client, "auditor1", "not the password").status_code == 401
    refused = login(client, "auditor1")  # the right password, too late
    # The same answer as a wrong password or a made-up name: a lock must not tell a stranger the account exists.
    wrong = login(console.app.test_client(), "nobody-at-all", "guess")
    assert refused.status_code == wrong.status_code == 401
    said = [re.search(r'role="alert">(.*?)</p>', r.get_data(as_text=True)).group(1) for r in (refused, wrong)]
    assert said[0] == said[1] and "in the last 15 minutes" in said[0]
    assert _events("console-login-failed", "auditor1") == users.LOCKOUT_FAILURES  # no check, no new failure
    assert _events("console-login-refused", "auditor1") == 1
    # other accounts are not affected
    assert login(console.app.test_client(), "approver1").status_code == 302
    # once the oldest failure is out of the window, the account opens again
    later = users.now() + users.LOCKOUT_WINDOW + dt.timedelta(seconds=1)
    monkeypatch.setattr(users, "now", lambda: later)
    assert users.locked_until("auditor1") is None
    assert login(client, "auditor1").status_code == 302


def test_a_successful_sign_in_starts_the_count_afresh(console: Console) -> None:
    client = console.app.test_client()
    for _ in range(users.LOCKOUT_FAILURES - 1):
        assert login(client, "author1", "not the password").status_code == 401
    assert login(client, "author1").status_code == 302
    fresh = console.app.test_client()
    for _ in range(users.LOCKOUT_FAILURES - 1):
        assert login(fresh, "author1", "not the password").status_code == 401
    assert users.locked_until("author1") is None
    assert login(fresh, "author1").status_code == 302


def test_unknown_names_lock_nothing(console: Console) -> None:
    client = console.app.test_client()
    for _ in range(users.LOCKOUT_FAILURES + 1):
        assert login(client, "nobody-at-all", "guess").status_code == 401
    assert users.locked_until("nobody-at-all") is None


def test_a_blank_user_name_is_a_failed_sign_in_that_counts_against_no_one(console: Console) -> None:
    with orm.db_session:
        before = store.query_one("SELECT COUNT(*) FROM governance_event WHERE action = 'console-login-failed'")
    client = console.app.test_client()
    for blank in ("", "   "):
        answer = login(client, blank, "whatever")
        assert answer.status_code == 401, answer.get_data(as_text=True)[:500]
        assert "Wrong user name or password" in answer.get_data(as_text=True)
    with orm.db_session:
        after = store.query_one("SELECT COUNT(*) FROM governance_event WHERE action = 'console-login-failed'")
    assert after == before


def test_a_failed_sign_in_keeps_the_user_name_typed(console: Console) -> None:
    page = login(console.app.test_client(), "approver2", "not the password").get_data(as_text=True)
    assert 'name="username" value="approver2"' in page
