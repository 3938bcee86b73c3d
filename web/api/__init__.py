"""The HTTP API under /api/v1: importing this package registers every operation (see framework.py)."""

from web.api import decisions, monitoring, rules  # noqa: F401 - registers the endpoints, in the docs' order
