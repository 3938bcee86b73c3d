"""The first schema: governance, accounts, rule versions, the customer store, monitoring and the outbox.

Written once for both databases. The SQL is the common subset of SQLite and PostgreSQL (TEXT, INTEGER,
DOUBLE PRECISION, BOOLEAN, DATE, TIMESTAMP, CHECK, partial unique indexes); the only per-dialect piece is the
generated key, `{pk}`, which has no common spelling. Pony maps over these tables and never creates any.
Money is DOUBLE PRECISION on purpose: the engine evaluates in floats, and the store only feeds it. Statement
items are all nullable: a prior period is often known only in part, and the fact declarations, not the store,
say which items a decision needs.
"""

from yoyo import step

__depends__: set[str] = set()

PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "SERIAL PRIMARY KEY",
}

SCHEMA = """
CREATE TABLE governance_head (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO governance_head (id, seq, hash)
VALUES (1, 0, 'sha256:0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE governance_event (
    id {pk},
    seq INTEGER NOT NULL UNIQUE,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX governance_event_subject ON governance_event (subject);

CREATE TABLE app_user (
    id {pk},
    username TEXT NOT NULL UNIQUE,
    display_name TEXT,
    email TEXT,
    password_hash TEXT,
    roles TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE api_key (
    id {pk},
    owner INTEGER NOT NULL REFERENCES app_user (id),
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    label TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP
);
CREATE INDEX api_key_owner ON api_key (owner);

CREATE TABLE rules_state (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    changed_at TIMESTAMP NOT NULL
);
INSERT INTO rules_state (id, generation, changed_at) VALUES (1, 0, CURRENT_TIMESTAMP);
CREATE TABLE rule_version (
    id {pk},
    kind TEXT NOT NULL CHECK (kind IN ('ruleset', 'scorecard', 'policy')),
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    text TEXT NOT NULL,
    digest TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'approved', 'active', 'retired')),
    problems TEXT NOT NULL,
    effective_from DATE,
    effective_to DATE,
    parent INTEGER REFERENCES rule_version (id),
    author TEXT NOT NULL,
    editors TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    submitted_by TEXT,
    submitted_at TIMESTAMP,
    approver TEXT,
    approved_at TIMESTAMP,
    approved_digest TEXT,
    published_by TEXT,
    published_at TIMESTAMP,
    retired_by TEXT,
    retired_at TIMESTAMP,
    rollback_requested_by TEXT,
    rollback_requested_at TIMESTAMP,
    UNIQUE (name, number)
);
CREATE INDEX rule_version_status ON rule_version (status);
CREATE INDEX rule_version_parent ON rule_version (parent);

CREATE TABLE customer (
    id {pk},
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    legal_representative TEXT,
    registered_capital DOUBLE PRECISION NOT NULL,
    industry TEXT NOT NULL,
    region TEXT,
    founded DATE,
    lifecycle_stage TEXT NOT NULL,
    rm TEXT NOT NULL,
    rm_email TEXT,
    policy TEXT NOT NULL,
    existing_exposure DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE financial_statement (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    period_end DATE NOT NULL,
    total_assets DOUBLE PRECISION,
    total_liabilities DOUBLE PRECISION,
    current_assets DOUBLE PRECISION,
    current_liabilities DOUBLE PRECISION,
    revenue DOUBLE PRECISION,
    ebitda DOUBLE PRECISION,
    net_income DOUBLE PRECISION,
    operating_cash_flow DOUBLE PRECISION,
    debt_service DOUBLE PRECISION,
    audited BOOLEAN,
    audit_opinion TEXT,
    recorded_at TIMESTAMP NOT NULL,
    UNIQUE (customer, period_end)
);
CREATE TABLE credit_event (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    kind TEXT NOT NULL CHECK (kind IN ('repayment', 'past_due', 'default', 'restructuring')),
    event_date DATE NOT NULL,
    days_past_due INTEGER NOT NULL,
    amount DOUBLE PRECISION,
    note TEXT,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX credit_event_customer ON credit_event (customer, event_date);
CREATE TABLE project (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    name TEXT NOT NULL,
    total_investment DOUBLE PRECISION,
    sponsor_equity_pct DOUBLE PRECISION,
    expected_irr DOUBLE PRECISION,
    construction_months INTEGER,
    construction_risk TEXT,
    covenant_dscr DOUBLE PRECISION,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX project_customer ON project (customer);
CREATE TABLE application (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    project INTEGER REFERENCES project (id),
    amount DOUBLE PRECISION NOT NULL,
    tenor_months INTEGER NOT NULL,
    product TEXT NOT NULL,
    purpose TEXT,
    status TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'declined', 'withdrawn')),
    requested_on DATE NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX application_customer ON application (customer);
CREATE INDEX application_project ON application (project);

CREATE TABLE rating (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    at TIMESTAMP NOT NULL,
    as_of DATE NOT NULL,
    policy TEXT NOT NULL,
    trigger TEXT NOT NULL,
    outcome TEXT,
    tier TEXT,
    score DOUBLE PRECISION,
    pd DOUBLE PRECISION,
    limit_amount DOUBLE PRECISION,
    rate DOUBLE PRECISION,
    generation INTEGER NOT NULL,
    versions TEXT NOT NULL,
    problems TEXT NOT NULL
);
CREATE INDEX rating_customer ON rating (customer, at);
CREATE TABLE tier_change (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    rating INTEGER NOT NULL REFERENCES rating (id),
    at TIMESTAMP NOT NULL,
    from_tier TEXT,
    to_tier TEXT
);
CREATE INDEX tier_change_customer ON tier_change (customer);
CREATE INDEX tier_change_rating ON tier_change (rating);
CREATE TABLE adjustment_proposal (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    rating INTEGER NOT NULL REFERENCES rating (id),
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('limit', 'rate')),
    current_value DOUBLE PRECISION,
    proposed_value DOUBLE PRECISION,
    status TEXT NOT NULL CHECK (status IN ('proposed', 'accepted', 'rejected'))
);
CREATE INDEX adjustment_proposal_customer ON adjustment_proposal (customer);
CREATE INDEX adjustment_proposal_rating ON adjustment_proposal (rating);
CREATE TABLE alert (
    id {pk},
    customer INTEGER NOT NULL REFERENCES customer (id),
    rating INTEGER REFERENCES rating (id),
    code TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    assignee TEXT NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    seen_count INTEGER NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at TIMESTAMP,
    resolved_by TEXT,
    resolved_at TIMESTAMP
);
-- One live alert per customer and trigger: the database enforces it, so two concurrent re-runs cannot both open one.
CREATE UNIQUE INDEX alert_one_live ON alert (customer, code) WHERE status <> 'resolved';
CREATE INDEX alert_rating ON alert (rating);
CREATE TABLE notification (
    id {pk},
    customer INTEGER REFERENCES customer (id),
    alert INTEGER REFERENCES alert (id),
    recipient TEXT NOT NULL,
    address TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX notification_due ON notification (status, next_attempt_at);
CREATE INDEX notification_customer ON notification (customer);
CREATE INDEX notification_alert ON notification (alert);
"""

TABLES = [
    "notification",
    "alert",
    "adjustment_proposal",
    "tier_change",
    "rating",
    "application",
    "project",
    "credit_event",
    "financial_statement",
    "customer",
    "rule_version",
    "rules_state",
    "api_key",
    "app_user",
    "governance_event",
    "governance_head",
]


def _dialect(connection: object) -> str:
    # yoyo hands the step its DB-API connection: sqlite3's or psycopg2's.
    return "sqlite" if type(connection).__module__.startswith("sqlite3") else "postgresql"


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def apply(connection: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    for statement in _statements(SCHEMA.replace("{pk}", PK[_dialect(connection)])):
        cursor.execute(statement)


def rollback(connection: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    for table in TABLES:
        cursor.execute(f"DROP TABLE {table}")


steps = [step(apply, rollback)]
