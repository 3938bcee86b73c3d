"""Demo accounts, the seeded portfolio, accounts' passwords and API keys."""

from __future__ import annotations

import datetime as dt

from pony import orm

from web.demo import DEMO_ACCOUNTS, create_demo_accounts, portfolio_fingerprint, seed_portfolio, synthetic_portfolio
from web.models import ApiKey, Customer, FinancialStatement, User
from web.services import customers
from web.services.users import check_password, create_api_key, revoke_api_key, verify_api_key


def test_the_portfolio_is_the_same_for_the_same_seed() -> None:
    first, again = synthetic_portfolio(40), synthetic_portfolio(40)
    assert portfolio_fingerprint(first) == portfolio_fingerprint(again)
    assert portfolio_fingerprint(first) != portfolio_fingerprint(synthetic_portfolio(40, seed=7))
    assert len({r["customer"]["code"] for r in first}) == 40
    for record in first:
        assert [s["period_end"].year for s in record["statements"]] == [2023, 2024, 2025]
        assert record["application"]["product"] in ("project_loan", "term_loan")
        assert (record["project"] is not None) == (record["customer"]["policy"] == "project-finance")


def test_the_seeded_portfolio_decides_under_the_baseline(baseline: list) -> None:
    assert seed_portfolio(25) == 25
    assert seed_portfolio(25) == 0  # never seeded twice
    with orm.db_session:
        assert orm.count(c for c in Customer) == 25 and orm.count(s for s in FinancialStatement) == 75
    results = [customers.reassess(f"C{n:05d}", as_of=dt.date(2026, 3, 31)) for n in range(1, 26)]
    assert all(not r.problems for r in results)
    assert {r.outcome for r in results} >= {"approve", "decline"}


def test_demo_accounts_get_random_passwords_shown_once_and_stored_hashed(database: object) -> None:
    created = create_demo_accounts(env={})
    assert [(u, r) for u, r, _ in created] == list(DEMO_ACCOUNTS)
    passwords = [p for _, _, p in created]
    assert all(p and len(p) >= 16 for p in passwords) and len(set(passwords)) == len(passwords)
    with orm.db_session:
        for username, _, password in created:
            stored = User.get(username=username).password_hash
            assert password not in stored and stored.startswith("scrypt:")
    assert check_password("approver1", passwords[1]).roles == {"approver"}
    assert check_password("approver1", passwords[0]) is None
    assert create_demo_accounts(env={}) == []  # existing accounts keep their passwords; none is shown again


def test_the_demo_password_can_come_from_the_environment(database: object) -> None:
    created = create_demo_accounts(env={"CREDO_DEMO_PASSWORD": "correct horse battery"})
    assert all(p is None for _, _, p in created)  # not printed: whoever set it knows it
    assert check_password("admin", "correct horse battery") is not None


def test_api_keys_are_hashed_at_rest_and_scoped(people: dict) -> None:
    key = create_api_key("bob", ["rules:read", "decide"], label="ci")
    with orm.db_session:
        row = ApiKey.select().first()
        assert key not in (row.key_hash, row.prefix) and key.startswith(row.prefix)
    found = verify_api_key(key)
    assert found is not None and found.username == "bob" and found.scopes == {"rules:read", "decide"}
    assert verify_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    revoke_api_key(row.prefix, "root")
    assert verify_api_key(key) is None
