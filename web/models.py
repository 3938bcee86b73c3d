"""Every entity but the governance events, declared on audit.db's one `db` and mapped over the migrations' tables.

Import this module before `audit.db.bind_database()`: Pony maps the entities that exist when it binds.
People are named by username in the rules and alert columns (author, approver, assignee): names are what the
governance log records, and a user who leaves keeps their name in history.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pony import orm

from audit.db import db
from audit.governance import GovernanceEvent  # noqa: F401 - declared on db; imported so binding maps it

ROLES = ("author", "approver", "underwriter", "auditor", "admin")
STATUSES = ("draft", "submitted", "approved", "active", "retired")
ALERT_STATUSES = ("open", "acknowledged", "resolved")


class User(db.Entity):
    _table_ = "app_user"
    id = orm.PrimaryKey(int, auto=True)
    username = orm.Required(str, unique=True)
    display_name = orm.Optional(str, nullable=True)
    email = orm.Optional(str, nullable=True)
    password_hash = orm.Optional(str, nullable=True)  # None: cannot log in (the system account)
    roles = orm.Optional(str)  # comma-separated, from ROLES; empty for the system account
    active = orm.Required(bool, default=True)
    created_at = orm.Required(dt.datetime)
    api_keys = orm.Set("ApiKey")

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class ApiKey(db.Entity):
    _table_ = "api_key"
    id = orm.PrimaryKey(int, auto=True)
    owner = orm.Required(User)
    prefix = orm.Required(str, unique=True)  # the key's public first characters: the lookup handle
    key_hash = orm.Required(str)  # sha256 of the whole key; the key itself is shown once and never stored
    scopes = orm.Required(str)
    label = orm.Optional(str, nullable=True)
    created_at = orm.Required(dt.datetime)
    expires_at = orm.Optional(dt.datetime)
    revoked_at = orm.Optional(dt.datetime)
    last_used_at = orm.Optional(dt.datetime)


class RulesState(db.Entity):
    """One row: the generation of the active set, bumped by every publish, rollback and retire."""

    _table_ = "rules_state"
    id = orm.PrimaryKey(int)
    generation = orm.Required(int)
    changed_at = orm.Required(dt.datetime)


class RuleVersion(db.Entity):
    _table_ = "rule_version"
    id = orm.PrimaryKey(int, auto=True)
    kind = orm.Required(str)
    name = orm.Required(str)
    number = orm.Required(int)
    text = orm.Required(orm.LongStr, autostrip=False)  # exact: the digest covers every byte
    digest = orm.Required(str)
    status = orm.Required(str)
    problems = orm.Required(orm.LongStr)  # JSON list of Problem.to_dict(), as of the last save
    effective_from = orm.Optional(dt.date)
    effective_to = orm.Optional(dt.date)
    parent = orm.Optional("RuleVersion", reverse="children")
    children = orm.Set("RuleVersion", reverse="parent")
    author = orm.Required(str)
    editors = orm.Required(str)  # JSON list: everyone who wrote this text; none of them may approve it
    created_at = orm.Required(dt.datetime)
    updated_at = orm.Required(dt.datetime)
    submitted_by = orm.Optional(str, nullable=True)
    submitted_at = orm.Optional(dt.datetime)
    approver = orm.Optional(str, nullable=True)
    approved_at = orm.Optional(dt.datetime)
    approved_digest = orm.Optional(str, nullable=True)  # the approval is bound to exactly this text
    published_by = orm.Optional(str, nullable=True)
    published_at = orm.Optional(dt.datetime)
    retired_by = orm.Optional(str, nullable=True)
    retired_at = orm.Optional(dt.datetime)
    rollback_requested_by = orm.Optional(str, nullable=True)
    rollback_requested_at = orm.Optional(dt.datetime)
    orm.composite_key(name, number)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    @property
    def editor_list(self) -> list[str]:
        return list(json.loads(self.editors))

    @property
    def problem_list(self) -> list[dict[str, Any]]:
        return list(json.loads(self.problems))


class Customer(db.Entity):
    _table_ = "customer"
    id = orm.PrimaryKey(int, auto=True)
    code = orm.Required(str, unique=True)  # the bank's customer number: the only handle logs may show
    name = orm.Required(str)
    legal_representative = orm.Optional(str, nullable=True)
    registered_capital = orm.Required(float)
    industry = orm.Required(str)
    region = orm.Optional(str, nullable=True)
    founded = orm.Optional(dt.date)
    lifecycle_stage = orm.Required(str)
    rm = orm.Required(str)  # the relationship manager's username: every alert's assignee
    rm_email = orm.Optional(str, nullable=True)
    policy = orm.Required(str)  # the policy this customer is monitored under
    existing_exposure = orm.Required(float, default=0.0)
    created_at = orm.Required(dt.datetime)
    updated_at = orm.Required(dt.datetime)
    statements = orm.Set("FinancialStatement")
    credit_events = orm.Set("CreditEvent")
    projects = orm.Set("Project")
    applications = orm.Set("Application")
    ratings = orm.Set("Rating")
    tier_changes = orm.Set("TierChange")
    proposals = orm.Set("AdjustmentProposal")
    alerts = orm.Set("Alert")
    notifications = orm.Set("Notification")


class FinancialStatement(db.Entity):
    _table_ = "financial_statement"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    period_end = orm.Required(dt.date)
    # balance sheet
    total_assets = orm.Optional(float)
    total_liabilities = orm.Optional(float)
    current_assets = orm.Optional(float)
    current_liabilities = orm.Optional(float)
    # income statement
    revenue = orm.Optional(float)
    ebitda = orm.Optional(float)
    net_income = orm.Optional(float)
    # cash flow
    operating_cash_flow = orm.Optional(float)
    debt_service = orm.Optional(float)
    audited = orm.Optional(bool)
    audit_opinion = orm.Optional(str, nullable=True)
    recorded_at = orm.Required(dt.datetime)
    orm.composite_key(customer, period_end)


class CreditEvent(db.Entity):
    """A repayment (with the days it was late), a past-due observation, a default or a restructuring."""

    _table_ = "credit_event"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    kind = orm.Required(str)
    event_date = orm.Required(dt.date)
    days_past_due = orm.Required(int, default=0)
    amount = orm.Optional(float)
    note = orm.Optional(str, nullable=True)
    recorded_at = orm.Required(dt.datetime)


class Project(db.Entity):
    _table_ = "project"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    name = orm.Required(str)
    total_investment = orm.Optional(float)
    sponsor_equity_pct = orm.Optional(float)
    expected_irr = orm.Optional(float)
    construction_months = orm.Optional(int)
    construction_risk = orm.Optional(str, nullable=True)
    covenant_dscr = orm.Optional(float)
    created_at = orm.Required(dt.datetime)
    applications = orm.Set("Application")


class Application(db.Entity):
    _table_ = "application"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    project = orm.Optional(Project)
    amount = orm.Required(float)
    tenor_months = orm.Required(int)
    product = orm.Required(str)
    purpose = orm.Optional(str, nullable=True)
    status = orm.Required(str, default="requested")
    requested_on = orm.Required(dt.date)
    created_at = orm.Required(dt.datetime)


class Rating(db.Entity):
    """One re-run of a customer's monitoring policy: what the rules said, under which versions."""

    _table_ = "rating"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    at = orm.Required(dt.datetime)
    as_of = orm.Required(dt.date)
    policy = orm.Required(str)
    trigger = orm.Required(str)
    outcome = orm.Optional(str, nullable=True)
    tier = orm.Optional(str, nullable=True)
    score = orm.Optional(float)
    pd = orm.Optional(float)
    limit_amount = orm.Optional(float)
    rate = orm.Optional(float)
    generation = orm.Required(int)
    versions = orm.Required(orm.LongStr)  # JSON: the name, version and digest of every document used
    problems = orm.Required(orm.LongStr)  # JSON: why the case could not be decided, when it could not
    tier_changes = orm.Set("TierChange")
    proposals = orm.Set("AdjustmentProposal")
    alerts = orm.Set("Alert")


class TierChange(db.Entity):
    _table_ = "tier_change"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    rating = orm.Required(Rating)
    at = orm.Required(dt.datetime)
    from_tier = orm.Optional(str, nullable=True)
    to_tier = orm.Optional(str, nullable=True)


class AdjustmentProposal(db.Entity):
    _table_ = "adjustment_proposal"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    rating = orm.Required(Rating)
    at = orm.Required(dt.datetime)
    kind = orm.Required(str)  # limit | rate
    current_value = orm.Optional(float)
    proposed_value = orm.Optional(float)
    status = orm.Required(str, default="proposed")


class Alert(db.Entity):
    _table_ = "alert"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Required(Customer)
    rating = orm.Optional(Rating)
    code = orm.Required(str)  # the trigger
    severity = orm.Required(str)
    message = orm.Required(str)
    status = orm.Required(str, default="open")
    assignee = orm.Required(str)
    opened_at = orm.Required(dt.datetime)
    last_seen_at = orm.Required(dt.datetime)
    seen_count = orm.Required(int, default=1)
    acknowledged_by = orm.Optional(str, nullable=True)
    acknowledged_at = orm.Optional(dt.datetime)
    resolved_by = orm.Optional(str, nullable=True)
    resolved_at = orm.Optional(dt.datetime)
    notifications = orm.Set("Notification")


class Notification(db.Entity):
    """The outbox: written in the transaction that raised it, delivered afterwards, at least once."""

    _table_ = "notification"
    id = orm.PrimaryKey(int, auto=True)
    customer = orm.Optional(Customer)
    alert = orm.Optional(Alert)
    recipient = orm.Required(str)
    address = orm.Optional(str, nullable=True)
    subject = orm.Required(str)
    body = orm.Required(orm.LongStr, autostrip=False)  # JSON
    status = orm.Required(str, default="pending")
    attempts = orm.Required(int, default=0)
    next_attempt_at = orm.Required(dt.datetime)
    claimed_until = orm.Optional(dt.datetime)
    last_error = orm.Optional(str, nullable=True)
    created_at = orm.Required(dt.datetime)
    sent_at = orm.Optional(dt.datetime)


__all__ = [
    "ALERT_STATUSES",
    "ROLES",
    "STATUSES",
    "AdjustmentProposal",
    "Alert",
    "ApiKey",
    "Application",
    "CreditEvent",
    "Customer",
    "FinancialStatement",
    "Notification",
    "Project",
    "Rating",
    "RuleVersion",
    "RulesState",
    "TierChange",
    "User",
]
