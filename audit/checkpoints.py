"""Checkpoints: the chain's head (and the governance log's) written outside the database.

Whoever can write the database can rewrite the whole chain and recompute every hash; what they cannot rewrite is
a line already handed to another system. A checkpoint is one JSON line:

    {"chain": "<chain id>", "kind": "periodic|manual|purge", "seq": S, "head_hash": "sha256:…", "count": S - base,
     "base_seq": B, "base_hash": "sha256:…", "governance_seq": G, "governance_hash": "sha256:…", "at": "…Z",
     "fingerprints": {"from": F, "prefixes": "…"}}

`fingerprints` holds the first 8 hex digits of each record hash in (F, S]. The full head hash is what proves
integrity; the prefixes only let `verify` name the exact first record that a full re-hash (or an inserted record)
changed, instead of "somewhere before seq S". Eight bytes per record outside the database.

Lines are appended to a file under an exclusive lock and fsynced, or piped to a command (`CREDO_AUDIT_CHECKPOINT_CMD`,
e.g. one that ships them to WORM storage or a log service). A periodic checkpoint is written after the commit of
every Nth record; `credo audit checkpoint` and `purge` write one at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pony import orm

from audit import store
from audit.chain import utc_text
from audit.config import checkpoint_every, settings

log = logging.getLogger(__name__)

PREFIX = 8  # hex digits of each record hash kept in a checkpoint


class CheckpointError(Exception):
    pass


def _prefix(digest: str) -> str:
    return digest.split(":", 1)[-1][:PREFIX]


def build(kind: str, seq: int | None = None) -> dict[str, Any]:
    """The checkpoint line for the chain as committed now, at `seq` (default: the head)."""
    every = settings().checkpoint_every
    with orm.db_session:
        head = store.query_one("SELECT seq, hash, base_seq, base_hash, chain_id FROM audit_head WHERE id = 1")
        if head is None:
            raise CheckpointError("audit_head row 1 is missing")
        head_seq, head_hash, base_seq, base_hash, chain_id = (
            int(head[0]),
            str(head[1]),
            int(head[2]),
            str(head[3]),
            head[4],
        )
        seq = head_seq if seq is None else seq
        if seq > head_seq:
            raise CheckpointError(f"seq {seq} is beyond the head ({head_seq})")
        start = max(base_seq, ((seq - 1) // every) * every) if seq > base_seq else seq
        rows = store.query(
            "SELECT seq, hash FROM decision_record WHERE seq > ? AND seq <= ? ORDER BY seq", (start, seq)
        )
        if seq == head_seq:
            at_hash = head_hash
        elif seq == base_seq:
            at_hash = base_hash
        else:
            at_hash = str(rows[-1][1]) if rows and int(rows[-1][0]) == seq else ""
        gov = store.query_one("SELECT seq, hash FROM governance_head WHERE id = 1")
    if len(rows) != seq - start or not at_hash:
        raise CheckpointError(f"records between seq {start} and {seq} are missing: run `credo audit verify`")
    return {
        "chain": chain_id,
        "kind": kind,
        "seq": seq,
        "head_hash": at_hash,
        "count": seq - base_seq,
        "base_seq": base_seq,
        "base_hash": base_hash,
        "governance_seq": int(gov[0]) if gov else 0,
        "governance_hash": str(gov[1]) if gov else "",
        "at": utc_text(),
        "fingerprints": {"from": start, "prefixes": "".join(_prefix(str(h)) for _, h in rows)},
    }


def emit(line: dict[str, Any]) -> None:
    """Hand one checkpoint line to its destinations; raises CheckpointError if any of them fails."""
    config = settings()
    text = json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
    if config.checkpoint_path is not None:
        try:
            config.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            with open(config.checkpoint_path, "a", encoding="utf-8") as out:
                # One writer at a time across processes: a line is never interleaved with another.
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)
                try:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                finally:
                    fcntl.flock(out.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            raise CheckpointError(f"cannot append to {config.checkpoint_path}: {exc.strerror}") from None
    if config.checkpoint_cmd is not None:
        try:
            subprocess.run(
                shlex.split(config.checkpoint_cmd), input=text, text=True, check=True, timeout=30, capture_output=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CheckpointError(f"the checkpoint command failed ({type(exc).__name__})") from None


def write(kind: str = "manual", seq: int | None = None) -> dict[str, Any]:
    line = build(kind, seq)
    emit(line)
    return line


def write_due(first: int, last: int) -> None:
    """The periodic checkpoints that records first..last made due; after their commit, never failing the append.

    A decision already committed stands; a lost checkpoint only widens what the next one has to vouch for,
    and is logged so that operations can write one by hand (`credo audit checkpoint`).
    """
    every = checkpoint_every()
    for seq in range(((first + every - 1) // every) * every, last + 1, every):
        try:
            write("periodic", seq)
        except Exception as exc:  # the decision is committed; a checkpoint failure must not turn it into an error
            log.error("checkpoint at seq %d not written: %s", seq, exc)


# --- reading -----------------------------------------------------------------------------------------------------


@dataclass
class Checkpoints:
    """The lines of one chain, indexed for verification."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable lines

    @property
    def last(self) -> dict[str, Any] | None:
        return max(self.lines, key=lambda line: (line["seq"], line["base_seq"]), default=None)

    def heads(self) -> dict[int, str]:
        """seq -> full hash vouched for by some line (its head, or its base after a purge)."""
        out: dict[int, str] = {}
        for line in self.lines:
            out.setdefault(line["seq"], line["head_hash"])
            if line["base_seq"] > 0:
                out.setdefault(line["base_seq"], line["base_hash"])
        return out

    def fingerprints(self) -> list[tuple[int, int, str]]:
        """(from, to, prefixes) ranges, sorted by start."""
        out = []
        for line in self.lines:
            fp = line.get("fingerprints") or {}
            start, prefixes = fp.get("from"), fp.get("prefixes")
            if isinstance(start, int) and isinstance(prefixes, str) and len(prefixes) == (line["seq"] - start) * PREFIX:
                out.append((start, line["seq"], prefixes))
        return sorted(out)


REQUIRED = {"chain": str, "seq": int, "head_hash": str, "base_seq": int, "base_hash": str}


def parse(lines: Iterable[str], chain_id: str) -> Checkpoints:
    found = Checkpoints()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            found.problems.append(f"checkpoint line {number} is not JSON")
            continue
        if not isinstance(line, dict) or any(not isinstance(line.get(k), t) for k, t in REQUIRED.items()):
            found.problems.append(f"checkpoint line {number} lacks seq, head_hash, base_seq, base_hash or chain")
            continue
        if line["chain"] == chain_id:
            found.lines.append(line)
    return found


def read(chain_id: str, path: Path | None = None) -> Checkpoints | None:
    """The checkpoints of this chain from `path` (default: the configured file); None when there is no file."""
    path = path or settings().checkpoint_path
    if path is None or not path.exists():
        return None
    with open(path, encoding="utf-8") as stream:
        return parse(stream, chain_id)


__all__ = ["PREFIX", "CheckpointError", "Checkpoints", "build", "emit", "parse", "read", "write", "write_due"]
