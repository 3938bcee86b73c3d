"""The API's configuration, in three layers: defaults, then an instance file, then `CREDO_*` environment variables.

- defaults: `DEFAULTS` below;
- the instance file: `instance/credo.toml` (or the file `CREDO_CONFIG` names), upper-case keys, TOML so that a
  configuration file is data and never code;
- the environment: `CREDO_<KEY>` for every key in `DEFAULTS` (its value parsed as JSON when it parses, so
  `CREDO_MAX_CONTENT_LENGTH=2000000` is a number and `CREDO_LOG_LEVEL=INFO` stays text). `DATABASE_URL` is also
  read without the prefix, as every `credo` command reads it.

Only known keys are read from the environment: `CREDO_DEMO_PASSWORD` and other secrets of the CLI never land in
the app's config (which error pages and debuggers like to print).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audit.db import REPO

INSTANCE = REPO / "instance"

DEFAULTS: dict[str, Any] = {
    # None: audit.db's default (DATABASE_URL, else instance/credo.db).
    "DATABASE_URL": None,
    # Whole request bodies; Flask answers 413 above this before a byte of JSON is parsed.
    "MAX_CONTENT_LENGTH": 1_000_000,
    # A case is a handful of facts with a few dozen fields each: these bound what the validator walks.
    "MAX_CASE_DEPTH": 8,
    "MAX_CASE_NODES": 5_000,
    "MAX_STRING_LENGTH": 10_000,
    # Idempotency keys live at least this long (the issue asks for 7 days; fewer is never used).
    "IDEMPOTENCY_TTL_DAYS": 7,
    # An `in_progress` claim older than this belongs to a request that died (worker killed): it may be taken over.
    "IDEMPOTENCY_LEASE_SECONDS": 120,
    # Check every JSON answer against its response model before it leaves. The test suite turns it on (its schema
    # tests then catch any answer that drifts from the OpenAPI document); production leaves it off, because
    # re-parsing a decision of ~6 KB against its model costs a tenth of the whole request.
    "VALIDATE_RESPONSES": False,
    "LOG_LEVEL": "INFO",
    # Never True: the werkzeug debugger executes code from the browser. Kept here so a layer cannot turn it on.
    "DEBUG": False,
    "TESTING": False,
}


def _env_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def instance_file(env: Mapping[str, str]) -> Path:
    named = env.get("CREDO_CONFIG")
    return Path(named) if named else INSTANCE / "credo.toml"


def load_config(overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merged configuration; `overrides` (tests, `credo serve`) apply last."""
    env = os.environ if env is None else env
    config = dict(DEFAULTS)
    path = instance_file(env)
    if path.is_file():
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        config.update({k: v for k, v in data.items() if k.isupper()})
    if env.get("DATABASE_URL"):
        config["DATABASE_URL"] = env["DATABASE_URL"]
    for key in DEFAULTS:
        if f"CREDO_{key}" in env:
            config[key] = _env_value(env[f"CREDO_{key}"])
    config.update(overrides or {})
    config["DEBUG"] = False  # whatever a layer said: see DEFAULTS
    config["IDEMPOTENCY_TTL_DAYS"] = max(int(config["IDEMPOTENCY_TTL_DAYS"]), 7)
    return config


__all__ = ["DEFAULTS", "INSTANCE", "instance_file", "load_config"]
