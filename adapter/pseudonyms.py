"""Client pseudonyms: the address a helpline sees instead of a phone number."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app


def client_pseudonym(site: str, contact_ref: str | None) -> str:
    """Stable per contact and site, so a counsellor recognises a returning child.

    Keyed by the deployment's secret: nobody can recompute it from a phone number.
    """
    if not contact_ref:
        return "client-" + secrets.token_hex(8)
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"{site}|{contact_ref}".encode(), hashlib.sha256).hexdigest()
    return "client-" + digest[:16]
