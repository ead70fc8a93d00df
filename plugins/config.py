"""Config helpers shared by the built-in plugins."""

from __future__ import annotations

from marshmallow import validate


def url_or_unset(value: str) -> None:
    """A URL — or empty, when its ``${ENV}`` ref is unset: the adapter still starts, and
    ``sites check`` names the variable (deliveries wait until it is set)."""
    if value:
        validate.URL(require_tld=False, schemes={"http", "https"})(value)
