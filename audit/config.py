"""The decision log's settings, read from the environment at each use (tests and long-running servers can change
them without a restart); the parsed result is kept for as long as the variables it came from are unchanged, since
every decision reads it several times.

| variable | default | what |
|---|---|---|
| `CREDO_AUDIT_KEY` | (unset) | Fernet key(s) sealing sensitive fields, comma-separated: the first seals, all unseal |
| `CREDO_AUDIT_KEY_FILE` | `instance/audit.key` | the key when `CREDO_AUDIT_KEY` is unset (made 0600 at first use) |
| `CREDO_AUDIT_CHECKPOINT` | `instance/audit-checkpoints.jsonl` | the checkpoint file appended to and read by `verify` |
| `CREDO_AUDIT_CHECKPOINT_CMD` | (unset) | a command that receives each checkpoint line on standard input instead |
| `CREDO_AUDIT_CHECKPOINT_EVERY` | 1000 | appends between periodic checkpoints |
| `CREDO_AUDIT_RETENTION_MONTHS` | 25 | the retention floor: `purge` never deletes records younger than this |
| `CREDO_AUDIT_LOCK_TIMEOUT_MS` | 10000 | an append's wait for the head lock (PostgreSQL; SQLite: busy timeout) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from audit.db import REPO

INSTANCE = REPO / "instance"


@dataclass(frozen=True)
class Settings:
    key_env: str | None
    key_file: Path
    checkpoint_path: Path | None
    checkpoint_cmd: str | None
    checkpoint_every: int
    retention_months: int
    lock_timeout_ms: int


def _int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


_NAMES = (
    "CREDO_AUDIT_KEY",
    "CREDO_AUDIT_KEY_FILE",
    "CREDO_AUDIT_CHECKPOINT",
    "CREDO_AUDIT_CHECKPOINT_CMD",
    "CREDO_AUDIT_CHECKPOINT_EVERY",
    "CREDO_AUDIT_RETENTION_MONTHS",
    "CREDO_AUDIT_LOCK_TIMEOUT_MS",
)
_last: tuple[tuple[str | None, ...], Settings] | None = None


def settings() -> Settings:
    global _last
    raw = tuple(map(os.environ.get, _NAMES))
    last = _last
    if last is not None and last[0] == raw:
        return last[1]
    parsed = _parse()
    _last = (raw, parsed)
    return parsed


# Every decision seals (the key) and may owe a checkpoint (the interval): these two read only their own variables,
# a third of what checking all seven for a change costs.
def key_settings() -> tuple[str | None, Path]:
    """(CREDO_AUDIT_KEY, the key file), as settings() gives them."""
    env = os.environ
    key_file = Path(env.get("CREDO_AUDIT_KEY_FILE", "").strip() or INSTANCE / "audit.key")
    return env.get("CREDO_AUDIT_KEY", "").strip() or None, key_file


def checkpoint_every() -> int:
    return _int("CREDO_AUDIT_CHECKPOINT_EVERY", 1000, 1)


def _parse() -> Settings:
    env = os.environ
    key_env, key_file = key_settings()
    command = env.get("CREDO_AUDIT_CHECKPOINT_CMD", "").strip() or None
    explicit = env.get("CREDO_AUDIT_CHECKPOINT", "").strip()
    # With a command configured and no file named, the command is the only destination; `verify` then needs
    # `--checkpoints FILE` (a copy fetched from wherever the command sent them).
    path = Path(explicit) if explicit else (None if command else INSTANCE / "audit-checkpoints.jsonl")
    return Settings(
        key_env=key_env,
        key_file=key_file,
        checkpoint_path=path,
        checkpoint_cmd=command,
        checkpoint_every=checkpoint_every(),
        retention_months=_int("CREDO_AUDIT_RETENTION_MONTHS", 25, 1),
        lock_timeout_ms=_int("CREDO_AUDIT_LOCK_TIMEOUT_MS", 10_000, 1),
    )


__all__ = ["INSTANCE", "Settings", "checkpoint_every", "key_settings", "settings"]
