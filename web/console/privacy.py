"""What of a borrower's identity a console page may show to whom.

The fact declarations mark `borrower.name` and `borrower.legal_representative` sensitive: the audit trail masks
them for readers who may not unmask (web/api/auth.py UNMASK_ROLES: underwriters, auditors, admins). The console
applies the same rule to everything else that shows them: the customer store's names, and the input rows of an
uploaded portfolio. Authors and approvers work with customer codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from web.api.auth import UNMASK_ROLES
from web.console.security import viewer
from web.services.active import ACTIVE

MASK = "***"


def may_see_identities() -> bool:
    return viewer().has(*UNMASK_ROLES)


def shown(value: Any) -> Any:
    """A sensitive value as this viewer may see it (None stays None: nothing to hide)."""
    return value if value is None or may_see_identities() else MASK


def sensitive_paths() -> frozenset[str]:
    """`fact.field` of every field the rules in force declare sensitive."""
    fields = ACTIVE.current().library.schema.fields
    return frozenset(f"{fact}.{name}" for (fact, name), decl in fields.items() if decl.sensitive)


def masked_input(row: Any, paths: Iterable[str] | None = None) -> Any:
    """A portfolio row (nested JSON, or flat `fact.field` keys from a CSV) with sensitive values masked."""
    if row is None or may_see_identities():
        return row
    wanted = frozenset(paths) if paths is not None else sensitive_paths()
    return _mask(row, wanted, "")


def _mask(value: Any, paths: frozenset[str], prefix: str) -> Any:
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if path in paths and item is not None:
            out[key] = MASK
        else:
            out[key] = _mask(item, paths, f"{path}.")
    return out


__all__ = ["MASK", "masked_input", "may_see_identities", "sensitive_paths", "shown"]
