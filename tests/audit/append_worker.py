"""A separate process that appends records one transaction at a time: `python -m tests.audit.append_worker URL N TAG`.

Used by the concurrency test: two of these race each other (and threads in the test process) for the head row.
"""

from __future__ import annotations

import dataclasses
import random
import sys

import web.models  # noqa: F401 - the entities must be declared before the bind
from audit import records
from audit.db import bind_database
from tests.audit.audit_helpers import draft


def main(url: str, count: int, tag: str) -> int:
    bind_database(url)
    rng = random.Random(tag)
    for i in range(count):
        records.append(dataclasses.replace(draft(rng, i), caller_id=f"{tag}-{i}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
