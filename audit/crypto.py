"""Sealing the sensitive values of a record under a key that lives outside the database.

`cryptography`'s Fernet (AES-128-CBC with an HMAC-SHA256 tag, a random IV per token) seals; MultiFernet lets
`CREDO_AUDIT_KEY` hold several comma-separated keys, so a key can be rotated: the first seals, every one unseals.
Without `CREDO_AUDIT_KEY` the key lives in a file (`instance/audit.key` by default), created with mode 0600 the
first time something must be sealed. Key material is never logged or printed; a record names its key only by
`key_id`, a short digest of the sealing key.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from audit.config import key_settings
from audit.errors import AuditUnavailable

_cache: dict[tuple[str, ...], tuple[MultiFernet, str]] = {}
_lock = threading.Lock()


def key_id_of(key: bytes) -> str:
    return "k1:" + hashlib.sha256(b"credo-audit-key-id\n" + key).hexdigest()[:16]


def _read_key_file(path: Path, create: bool) -> list[bytes]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if not create:
            return []
        return _create_key_file(path)
    return [line.strip().encode("ascii") for line in text.replace(",", "\n").splitlines() if line.strip()]


def _create_key_file(path: Path) -> list[bytes]:
    """A new key file, visible only once complete: written aside, then linked into place.

    Two processes (or threads) sealing their first record at once must end with one key, and neither may read
    the file half-written: link() fails if the name exists, and then the key already there is the one used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key.decode("ascii") + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return _read_key_file(path, create=False)
    finally:
        aside.unlink(missing_ok=True)
    # The name must survive a power cut as surely as the records sealed under the key it holds.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return [key]


# The key file's text, kept while the file's identity (device, inode, size, change time) stays the same, and that
# identity looked at no more than once a second: a rotated or replaced key is in use within a second, and a
# decision pays neither a file read nor a stat for its record.
RECHECK_S = 1.0
_file_keys: dict[Path, tuple[tuple[int, int, int, int], list[bytes], float]] = {}


def _file_identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _keys_from_file(path: Path, create: bool) -> list[bytes]:
    now = time.monotonic()
    known = _file_keys.get(path)
    if known is not None and now - known[2] < RECHECK_S:
        return known[1]
    identity = _file_identity(path)
    if known is not None and identity == known[0]:
        _file_keys[path] = (identity, known[1], now)
        return known[1]
    keys = _read_key_file(path, create)
    # Kept under the identity seen BEFORE the read: a file replaced meanwhile differs from it and is read again.
    if keys and identity is not None:
        _file_keys[path] = (identity, keys, now)
    return keys


def _keys(create: bool) -> tuple[MultiFernet, str] | None:
    key_env, key_file = key_settings()
    if key_env:
        keys = [k.strip().encode("ascii") for k in key_env.split(",") if k.strip()]
    else:
        keys = _keys_from_file(key_file, create)
    if not keys:
        return None
    cache_key = tuple(k.decode("ascii") for k in keys)
    with _lock:
        found = _cache.get(cache_key)
        if found is None:
            try:
                found = (MultiFernet([Fernet(k) for k in keys]), key_id_of(keys[0]))
            except (ValueError, TypeError):
                raise AuditUnavailable(
                    "the audit key is not a valid Fernet key (32 url-safe base64 bytes)", "audit-key-invalid"
                ) from None
            _cache[cache_key] = found
        return found


def seal(plaintext: str) -> tuple[str, str]:
    """(token, key_id) for a text; creates the key file on first use when no key is configured."""
    try:
        keys = _keys(create=True)
    except OSError as exc:
        raise AuditUnavailable(
            f"cannot create the audit key file ({type(exc).__name__})", "audit-key-unavailable"
        ) from None
    assert keys is not None
    fernet, key_id = keys
    return fernet.encrypt(plaintext.encode("utf-8")).decode("ascii"), key_id


def unseal(token: str) -> str:
    """The sealed text; AuditUnavailable when no key is configured or none of the keys opens the token."""
    try:
        keys = _keys(create=False)
    except OSError:
        keys = None
    if keys is None:
        raise AuditUnavailable(
            "no audit key is configured here, so sensitive values stay masked", "audit-key-unavailable"
        )
    try:
        return keys[0].decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise AuditUnavailable("the configured audit key does not open this record", "audit-key-mismatch") from None


def has_key() -> bool:
    try:
        return _keys(create=False) is not None
    except (OSError, AuditUnavailable):
        return False


__all__ = ["has_key", "key_id_of", "seal", "unseal"]
