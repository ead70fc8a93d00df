"""Client pseudonyms: the address a helpline sees instead of a phone number."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app


def client_pseudonym(site: str, contact_ref: str | None, namespace: str) -> str:
    """Stable per contact, site and chatbot namespace, so a counsellor recognises a
    returning child.

    Keyed by the deployment's secret: nobody can recompute it from a phone number. The
    namespace is part of it: a chatbot that knows a child's number cannot open a
    conversation under that child's pseudonym and receive replies meant for them.
    """
    if not contact_ref:
        return "client-" + secrets.token_hex(8)
    key = current_app.config["SECRET_KEY"].encode()
    material = f"{site}|{namespace}|{contact_ref}"
    digest = hmac.new(key, material.encode(), hashlib.sha256).hexdigest()
    return "client-" + digest[:16]
