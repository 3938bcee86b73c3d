"""The decision log: insert-only decision records, their locked head row, and triggers guarding both audit tables.

`decision_record` holds one row per answered decision, hash-chained by `seq` (see audit/chain.py for the hash).
Times are fixed-format ISO text (`2026-05-01T09:30:00.123456Z`), not TIMESTAMP: the hash covers exactly the stored
characters, and text compares and sorts the same way on both databases. JSON columns hold canonical JSON text.

`audit_head` (one row) is what every append locks; it also holds the chain's base after a purge (`base_seq`,
`base_hash`: the last purged record) and a random `chain_id` that tells this chain's checkpoints from another's.

Triggers reject UPDATE and DELETE on `decision_record` and `governance_event` (and TRUNCATE on PostgreSQL).
The one exception is `credo audit purge`: it opens `audit_purge_gate` inside its own transaction, deletes, and closes
it before committing, so no other transaction ever sees the gate open (SQLite: the purge holds the write lock;
PostgreSQL: the open row is never committed). The triggers stop mistakes and the application; an attacker with the
database owner's rights can drop them, which is what the hash chain and the external checkpoints are for.
"""

import uuid

from yoyo import step

__depends__ = {"0001_initial"}

SEQ = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "BIGINT PRIMARY KEY"}

TABLES = """
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    base_seq BIGINT NOT NULL,
    base_hash TEXT NOT NULL,
    chain_id TEXT NOT NULL
);
CREATE TABLE audit_purge_gate (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    open INTEGER NOT NULL
);
INSERT INTO audit_purge_gate (id, open) VALUES (1, 0);
CREATE TABLE decision_record (
    seq {seq},
    decision_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    caller_kind TEXT NOT NULL,
    caller_id TEXT NOT NULL,
    idempotency_key TEXT,
    request_sha256 TEXT,
    application_id TEXT,
    policy TEXT NOT NULL,
    policy_version INTEGER,
    policy_digest TEXT NOT NULL,
    library TEXT NOT NULL,
    engine TEXT NOT NULL,
    as_of TEXT NOT NULL,
    input TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tier TEXT,
    score DOUBLE PRECISION,
    pd DOUBLE PRECISION,
    limit_amount DOUBLE PRECISION,
    rate DOUBLE PRECISION,
    decision TEXT NOT NULL,
    latency_us BIGINT NOT NULL,
    masked TEXT NOT NULL,
    sealed TEXT,
    key_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX decision_record_at ON decision_record (at);
CREATE INDEX decision_record_policy ON decision_record (policy, at);
CREATE UNIQUE INDEX decision_record_idempotency ON decision_record (caller_kind, caller_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
"""

SQLITE_TRIGGERS = [
    """CREATE TRIGGER decision_record_no_update BEFORE UPDATE ON decision_record
    BEGIN SELECT RAISE(ABORT, 'decision_record is insert-only'); END""",
    """CREATE TRIGGER decision_record_no_delete BEFORE DELETE ON decision_record
    WHEN (SELECT open FROM audit_purge_gate WHERE id = 1) IS NOT 1
    BEGIN SELECT RAISE(ABORT, 'decision_record is insert-only: only credo audit purge deletes'); END""",
    """CREATE TRIGGER governance_event_no_update BEFORE UPDATE ON governance_event
    BEGIN SELECT RAISE(ABORT, 'governance_event is insert-only'); END""",
    """CREATE TRIGGER governance_event_no_delete BEFORE DELETE ON governance_event
    BEGIN SELECT RAISE(ABORT, 'governance_event is insert-only'); END""",
]

POSTGRES_TRIGGERS = [
    """CREATE FUNCTION audit_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'decision_record'
           AND (SELECT open FROM audit_purge_gate WHERE id = 1) = 1 THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '% is insert-only (% refused)', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$""",
    """CREATE TRIGGER decision_record_insert_only BEFORE UPDATE OR DELETE ON decision_record
    FOR EACH ROW EXECUTE FUNCTION audit_insert_only()""",
    """CREATE TRIGGER decision_record_no_truncate BEFORE TRUNCATE ON decision_record
    FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only()""",
    """CREATE TRIGGER governance_event_insert_only BEFORE UPDATE OR DELETE ON governance_event
    FOR EACH ROW EXECUTE FUNCTION audit_insert_only()""",
    """CREATE TRIGGER governance_event_no_truncate BEFORE TRUNCATE ON governance_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only()""",
]

GENESIS = "sha256:" + "0" * 64


def _dialect(connection: object) -> str:
    return "sqlite" if type(connection).__module__.startswith("sqlite3") else "postgresql"


def apply(connection: object) -> None:
    dialect = _dialect(connection)
    cursor = connection.cursor()  # type: ignore[attr-defined]
    for statement in TABLES.replace("{seq}", SEQ[dialect]).split(";"):
        if statement.strip():
            cursor.execute(statement)
    # A fresh chain gets a fresh id: a checkpoint file shared by several databases never confuses their chains.
    marks = "?, ?, ?, ?, ?, ?" if dialect == "sqlite" else "%s, %s, %s, %s, %s, %s"
    cursor.execute(
        f"INSERT INTO audit_head (id, seq, hash, base_seq, base_hash, chain_id) VALUES ({marks})",
        (1, 0, GENESIS, 0, GENESIS, uuid.uuid4().hex),
    )
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_TRIGGERS:
        cursor.execute(statement)


def rollback(connection: object) -> None:
    dialect = _dialect(connection)
    cursor = connection.cursor()  # type: ignore[attr-defined]
    if dialect == "sqlite":
        for name in (
            "decision_record_no_update",
            "decision_record_no_delete",
            "governance_event_no_update",
            "governance_event_no_delete",
        ):
            cursor.execute(f"DROP TRIGGER {name}")
    else:
        cursor.execute("DROP TRIGGER governance_event_insert_only ON governance_event")
        cursor.execute("DROP TRIGGER governance_event_no_truncate ON governance_event")
    for table in ("decision_record", "audit_purge_gate", "audit_head"):
        cursor.execute(f"DROP TABLE {table}")
    if dialect == "postgresql":
        cursor.execute("DROP FUNCTION audit_insert_only()")


steps = [step(apply, rollback)]
