"""The HTTP API's tables: idempotency keys, the state of underwriter reviews; an index for application status.

Idempotency keys: one row per (caller, key), kept at least 7 days.

`status` is `in_progress` from the moment a request claims the key until its answer is stored (`done`); a
second request with the key meanwhile gets 409. `response_body` is the answer's exact bytes (UTF-8 JSON), so a
retry gets the same bytes. `claim` is the token of the request that holds an `in_progress` row: a request whose
worker died leaves a stale claim that a later retry may take over once its lease has run out.

`decision_review` is the workflow state of an underwriter's review of one automated decision: awaiting a second
underwriter's confirmation, or effective (then `override_id` is the override's record in the decision chain).
The facts live in the chains (the request in the governance log, the override in the decision log); this row is
what a review locks and checks, so two underwriters cannot both make an override effective.

`decision_record_application` serves GET /applications/{id}/status: the newest record of an application.
"""

from yoyo import step

__depends__ = {"0001_initial", "0002_audit"}

PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "SERIAL PRIMARY KEY",
}

SCHEMA = """
CREATE TABLE idempotency_key (
    id {pk},
    caller TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'done')),
    claim TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (caller, idem_key)
);
CREATE INDEX idempotency_key_created ON idempotency_key (created_at);
CREATE TABLE decision_review (
    decision_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('awaiting-confirmation', 'effective')),
    proposal TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at TIMESTAMP NOT NULL,
    confirmed_by TEXT,
    override_id TEXT,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX decision_record_application ON decision_record (application_id, seq)
"""


def _dialect(connection: object) -> str:
    return "sqlite" if type(connection).__module__.startswith("sqlite3") else "postgresql"


def apply(connection: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    for statement in SCHEMA.replace("{pk}", PK[_dialect(connection)]).split(";"):
        if statement.strip():
            cursor.execute(statement)


def rollback(connection: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("DROP INDEX decision_record_application")
    cursor.execute("DROP TABLE decision_review")
    cursor.execute("DROP TABLE idempotency_key")


steps = [step(apply, rollback)]
