"""The ``[helpline]`` table of a webhook site: where to post, and the signing secrets."""

from __future__ import annotations

from marshmallow import Schema, fields, post_load
from standardwebhooks.webhooks import Webhook

from plugins.config import url_or_unset

KIND = "webhook"


class WebhookConfig(Schema):
    url = fields.String(required=True, validate=url_or_unset, metadata={
        "description": "Where the helpline receives our signed events"})
    # ``whsec_<base64>``; from a ${ENV} ref. An unset one is reported by `sites check`.
    secret = fields.String(required=True, metadata={
        "description": "Signs what we send (Standard Webhooks)"})
    callback_secrets = fields.List(fields.String(), load_default=None, metadata={
        "description": "Accepted on the helpline's callbacks; several during a key "
                       "rotation. Default: the signing secret."})

    @post_load
    def _default_callback_secrets(self, data: dict, **_: object) -> dict:
        # Unset ${ENV} refs resolve to "": an old rotation key that is gone is skipped.
        given = data.get("callback_secrets")
        secrets = given if given is not None else [data["secret"]]
        data["callback_secrets"] = [s for s in secrets if s]
        return data


def validate_config(helpline: dict) -> list[str]:
    """Secrets that are set must be usable keys; naming the key, never the value."""
    problems = []
    candidates = [("helpline.secret", helpline.get("secret"))]
    candidates += [(f"helpline.callback_secrets[{i}]", s)
                   for i, s in enumerate(helpline.get("callback_secrets") or [])]
    for key, secret in candidates:
        if not secret:
            continue
        try:
            Webhook(secret)
        except Exception:  # the library raises several types for a bad key
            problems.append(f"{key}: not a Standard Webhooks secret (whsec_<base64>)")
    return problems
