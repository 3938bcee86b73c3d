"""Credo's application layer: the entities, the service layer the API, console and CLI share, and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The API's app (web/app.py), for `flask --app web run` and gunicorn `'web:create_app()'`.

    Imported late so that `import web.models` (the CLI, the services) never pays for Flask and the API.
    """
    from web.app import create_app as factory

    return factory(overrides)
