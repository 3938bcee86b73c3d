"""The browser console's tables: server-side sessions, and simulation runs with their per-case results.

`console_session` holds one row per signed-in browser. The cookie carries a random token; the row is keyed by the
token's sha256, so a copy of the database never yields a usable cookie. A login always makes a new row (the id
rotates) and a logout deletes it; `last_seen_at` drives the idle timeout and `expires_at` the absolute one. `csrf`
is the session's own anti-forgery token: a token from another session is not this one's.

`simulation_run` is a queue and a record at once: the console inserts `queued` rows, a worker process claims one
(`running`, `claimed_by`, `heartbeat_at`), reports progress, and stores the report (`done`) or the error
(`failed`). A claim whose heartbeat stopped belongs to a worker that died: it is queued again, so a run survives a
restart of the web server or of the worker. `subject` ties a run to the version it was started for (NAME@N and
the digest it simulated), which the approval screen shows.

`simulation_case` holds one row per portfolio row of a run, for drill-down: the outcomes, tiers, scores and fired
rules of both sides as columns that a table cell can filter on, and the two decisions in full. Rule keys and reason
codes are stored space-padded (" A B ") so that one LIKE '% A %' finds a key without matching a longer one.

`console_worker` is each worker's heartbeat, so the console can tell whether queued runs have someone to run them.
"""

from yoyo import step

__depends__ = {"0001_initial", "0002_audit", "0003_api"}

PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "SERIAL PRIMARY KEY",
}

SCHEMA = """
CREATE TABLE console_session (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX console_session_user ON console_session (username);
CREATE TABLE simulation_run (
    id {pk},
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    requested_by TEXT NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    policy TEXT NOT NULL,
    as_of DATE NOT NULL,
    baseline TEXT NOT NULL,
    candidate TEXT NOT NULL,
    portfolio_name TEXT NOT NULL,
    portfolio_path TEXT NOT NULL,
    params TEXT NOT NULL,
    subject TEXT,
    subject_digest TEXT,
    progress DOUBLE PRECISION NOT NULL,
    note TEXT,
    attempts INTEGER NOT NULL,
    claimed_by TEXT,
    heartbeat_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    report TEXT,
    error TEXT
);
CREATE INDEX simulation_run_status ON simulation_run (status, requested_at);
CREATE INDEX simulation_run_subject ON simulation_run (subject);
CREATE TABLE simulation_case (
    run INTEGER NOT NULL REFERENCES simulation_run (id),
    row_number INTEGER NOT NULL,
    segment TEXT,
    bad INTEGER,
    rejected BOOLEAN NOT NULL,
    b_outcome TEXT,
    c_outcome TEXT,
    b_tier TEXT,
    c_tier TEXT,
    b_score DOUBLE PRECISION,
    c_score DOUBLE PRECISION,
    b_limit DOUBLE PRECISION,
    c_limit DOUBLE PRECISION,
    b_rate DOUBLE PRECISION,
    c_rate DOUBLE PRECISION,
    b_rules TEXT NOT NULL,
    c_rules TEXT NOT NULL,
    b_reasons TEXT NOT NULL,
    c_reasons TEXT NOT NULL,
    input TEXT,
    decisions TEXT NOT NULL,
    PRIMARY KEY (run, row_number)
);
CREATE INDEX simulation_case_swap ON simulation_case (run, b_outcome, c_outcome);
CREATE TABLE console_worker (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
)
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
    for table in ("console_worker", "simulation_case", "simulation_run", "console_session"):
        cursor.execute(f"DROP TABLE {table}")


steps = [step(apply, rollback)]
