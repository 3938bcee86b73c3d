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
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from audit.config import settings
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
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            # O_EXCL: two processes sealing their first record at once must not each write a different key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_key_file(path, create=False)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key.decode("ascii") + "\n")
            out.flush()
            os.fsync(out.fileno())
        return [key]
    return [line.strip().encode("ascii") for line in text.replace(",", "\n").splitlines() if line.strip()]


def _keys(create: bool) -> tuple[MultiFernet, str] | None:
    config = settings()
    if config.key_env:
        keys = [k.strip().encode("ascii") for k in config.key_env.split(",") if k.strip()]
    else:
        keys = _read_key_file(config.key_file, create)
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
