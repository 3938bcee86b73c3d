"""The one Pony `Database`, bound late to SQLite or PostgreSQL, and the migration runner.

The schema belongs to the migrations in `migrations/` (yoyo-migrations), never to Pony: Pony maps over the
tables they create (`create_tables=False`, `check_tables=True`), so the same versioned steps build SQLite and
PostgreSQL databases and an out-of-date database is refused at bind time instead of half-working.

`DATABASE_URL` picks the database: `sqlite:///relative/or/absolute.db` (four slashes for an absolute path)
or `postgresql://user:password@host:port/name` (psycopg2). The default is a SQLite file under `instance/`.
Every SQLite connection runs in WAL mode with `synchronous=FULL` (a committed governance step survives a power
cut) and a busy timeout, so a second process waits for a writer instead of failing at once.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pony import orm

from engine.errors import CredoError

REPO = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO / "migrations"
DEFAULT_PATH = REPO / "instance" / "credo.db"
BUSY_TIMEOUT_MS = 10_000

db = orm.Database()

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class DatabaseURL:
    dialect: Dialect
    url: str  # as configured; may hold a password, so only `redacted` is ever printed or logged
    path: Path | None = None  # the SQLite file

    @property
    def redacted(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        if parts.username:
            netloc = f"{parts.username}:***@{netloc}" if parts.password else f"{parts.username}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @property
    def yoyo_uri(self) -> str:
        # yoyo reads `sqlite:///` + path; an absolute path keeps it independent of the working folder.
        return f"sqlite:///{self.path}" if self.dialect == "sqlite" else self.url


def parse_url(url: str | None = None) -> DatabaseURL:
    """The configured database: the argument, else `DATABASE_URL`, else `instance/credo.db`."""
    url = url or os.environ.get("DATABASE_URL") or ""
    if not url:
        return DatabaseURL("sqlite", f"sqlite:///{DEFAULT_PATH}", DEFAULT_PATH)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        raw = url.split("://", 1)[1]
        if not raw.startswith("/") or raw in ("/", "/:memory:"):
            raise CredoError.single(
                "bad-database-url",
                "a SQLite DATABASE_URL names a file: sqlite:///relative/path.db or sqlite:////absolute/path.db",
            )
        path = Path(raw[1:]).expanduser()
        path = path if path.is_absolute() else (Path.cwd() / path)
        return DatabaseURL("sqlite", url, path.resolve())
    if scheme in ("postgresql", "postgres"):
        # yoyo and libpq both read postgresql://; postgres:// is the common alias.
        return DatabaseURL("postgresql", "postgresql://" + url.split("://", 1)[1])
    raise CredoError.single(
        "bad-database-url",
        f"unsupported database URL scheme '{scheme or url[:12]}'",
        hint="use sqlite:///path/to/file.db or postgresql://user@host/name",
    )


@db.on_connect(provider="sqlite")
def _sqlite_pragmas(_database: orm.Database, connection: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")


_lock = threading.RLock()
_bound: DatabaseURL | None = None
_binding_ids = itertools.count(1)
_binding_id = 0


def bound() -> DatabaseURL | None:
    return _bound


def binding_id() -> int:
    """Changes on every bind, so caches keyed on the data (the active rules snapshot) never cross databases."""
    return _binding_id


def bind_database(url: str | None = None) -> DatabaseURL:
    """Bind `db` (and every entity declared on it so far) to the configured database; idempotent.

    Import the modules that declare entities (web.models) before binding: Pony maps what exists at this call.
    """
    global _bound, _binding_id
    target = parse_url(url)
    with _lock:
        if _bound == target:
            return target
        unbind()
        if target.dialect == "sqlite":
            assert target.path is not None
            if not target.path.exists():
                raise CredoError.single(
                    "no-database",
                    f"no database at {target.redacted}",
                    hint="run `credo db init` (or `credo db upgrade`) first",
                )
            db.bind(provider="sqlite", filename=str(target.path), create_db=False)
        else:
            db.bind(provider="postgres", dsn=target.url)
        try:
            db.generate_mapping(create_tables=False, check_tables=True)
        except Exception as exc:  # Pony and both drivers raise many types here; all of them mean "not ready"
            unbind()
            raise CredoError.single(
                "database-not-ready",
                f"the database at {target.redacted} does not hold the current Credo tables ({type(exc).__name__})",
                hint="run `credo db upgrade`",
            ) from None
        _bound = target
        _binding_id = next(_binding_ids)
        return target


def unbind() -> None:
    """Release the binding so the same `db` can be bound elsewhere (tests run one process over two databases).

    Pony has no public unbind: this resets what `bind` and `generate_mapping` set, including the SQL each
    entity cached for the old dialect (parameter styles differ between sqlite3 and psycopg2).
    """
    global _bound
    with _lock:
        if db.provider is not None:
            db.disconnect()
        db.provider = db.provider_name = db.schema = None
        db._insert_cache.clear()
        db._translator_cache.clear()
        db._constructed_sql_cache.clear()
        for entity in db.entities.values():
            for cache in (
                "_find_sql_cache_",
                "_load_sql_cache_",
                "_batchload_sql_cache_",
                "_insert_sql_cache_",
                "_update_sql_cache_",
                "_delete_sql_cache_",
            ):
                getattr(entity, cache).clear()
            entity._cached_max_id_sql_ = None
            for attr in entity._attrs_:
                attr.lazy_sql_cache = None  # lazy columns (LongStr) load with SQL of their own
                if hasattr(attr, "cached_load_sql"):  # collections (Set) cache theirs too
                    attr.cached_load_sql = {}
                    attr.cached_add_m2m_sql = attr.cached_remove_m2m_sql = None
                    attr.cached_count_sql = attr.cached_empty_sql = None
        _bound = None


@contextmanager
def write_session() -> Iterator[None]:
    """A transaction that holds its write lock from its first statement.

    Pony otherwise reads in autocommit mode until the first write, so a read-check-write step (a status
    check, then the change) would not be atomic. On SQLite this is `BEGIN IMMEDIATE` (plus Pony's in-process
    lock); on PostgreSQL a real transaction from the first SELECT, in which the services lock rows with
    `SELECT ... FOR UPDATE`.
    """
    if orm.core.local.db_session is not None:
        # Nested in a caller's session: Pony ignores an inner db_session, so the caller's transaction rules.
        yield
        return
    target = _bound
    if target is not None and target.dialect == "sqlite" and target.path is not None:
        with _SQLITE_WRITERS.turn(target.path), orm.db_session(immediate=True):
            yield
        return
    with orm.db_session(immediate=True):
        yield


class _SQLiteWriterTurns:
    """Whose turn it is to write a SQLite file, across processes: an advisory lock beside the file.

    SQLite's own busy handler makes a waiting writer sleep 1, 2, 5, 10 ... 100 ms between attempts, so under steady
    writes from two processes a waiter can sleep tens of milliseconds after the lock came free. Waiting for this
    lock first (polled every 0.2 ms) gives the SQLite lock to the next writer at once. It only orders writers that
    use write_session(); others still meet SQLite's lock, which alone decides correctness. A writer that waits
    longer than the busy timeout goes on to SQLite's lock anyway, and fails there as before.
    """

    POLL_S = 0.0002

    def __init__(self) -> None:
        self._threads = threading.Lock()  # one writer per process at a time (Pony serialises them as well)
        self._fd: int | None = None
        self._owner: tuple[int, Path] | None = None  # the process and file the descriptor was opened for

    def _descriptor(self, path: Path) -> int | None:
        # Per process: a descriptor inherited across fork() would share its lock with the parent.
        owner = (os.getpid(), path)
        if self._owner != owner:
            if self._fd is not None and self._owner is not None and self._owner[0] == owner[0]:
                os.close(self._fd)
            self._fd, self._owner = None, owner
            try:
                self._fd = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None  # a read-only folder: SQLite's lock alone orders the writers
        return self._fd

    @contextmanager
    def turn(self, path: Path) -> Iterator[None]:
        with self._threads:
            fd = self._descriptor(path)
            locked = fd is not None and self._wait(fd)
            try:
                yield
            finally:
                if locked:
                    assert fd is not None
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _wait(self, fd: int) -> bool:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(self.POLL_S)
            except OSError:
                return False


_SQLITE_WRITERS = _SQLiteWriterTurns()


# --- migrations ---------------------------------------------------------------------------------------------


def _backend(target: DatabaseURL) -> Any:
    from yoyo import get_backend  # imported late: only `db upgrade` and tests need yoyo

    if target.dialect == "sqlite":
        assert target.path is not None
        target.path.parent.mkdir(parents=True, exist_ok=True)
    return get_backend(target.yoyo_uri)


def _migrations() -> Any:
    from yoyo import read_migrations

    return read_migrations(str(MIGRATIONS))


def pending_migrations(url: str | None = None) -> list[str]:
    target = parse_url(url)
    backend = _backend(target)
    try:
        return [m.id for m in backend.to_apply(_migrations())]
    finally:
        backend.connection.close()


def upgrade(url: str | None = None) -> list[str]:
    """Apply every pending migration, under yoyo's lock so two processes never migrate at once."""
    target = parse_url(url)
    backend = _backend(target)
    try:
        with backend.lock():
            todo = backend.to_apply(_migrations())
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()


__all__ = [
    "DatabaseURL",
    "bind_database",
    "binding_id",
    "bound",
    "db",
    "parse_url",
    "pending_migrations",
    "unbind",
    "upgrade",
    "write_session",
]
