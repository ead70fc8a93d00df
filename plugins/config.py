"""Config helpers shared by the built-in plugins."""

from __future__ import annotations

from typing import Any

from marshmallow import validate

from .types import DeliveryFailure


def url_or_unset(value: str) -> None:
    """A URL — or empty, when its ``${ENV}`` ref is unset: the adapter still starts, and
    ``sites check`` names the variable (deliveries wait until it is set)."""
    if value:
        validate.URL(require_tld=False, schemes={"http", "https"})(value)


def require_configured(site: Any) -> None:
    """Refuse to call a helpline with half a config; retryable, since an operator who sets
    the variables and restarts should see the waiting deliveries go out."""
    if site.missing_secrets:
        raise DeliveryFailure(
            "site config incomplete: environment variables unset for "
            + ", ".join(item.split(" ", 1)[0] for item in site.missing_secrets),
            retryable=True,
        )
