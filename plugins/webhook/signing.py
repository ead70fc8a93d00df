"""Standard Webhooks: signing what we send, verifying what the helpline sends back.

The ``standardwebhooks`` package does the cryptography (HMAC-SHA256 over
``{id}.{timestamp}.{body}``, a 5-minute tolerance); this module adds key rotation —
any of the site's callback secrets may have signed a callback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class SignatureError(Exception):
    """Missing, malformed, expired or unknown signature: the caller is not the helpline."""


def encode(payload: Mapping[str, Any]) -> str:
    """The exact body we sign and send (compact, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, webhook_id: str, body: str,
                   now: datetime | None = None) -> dict[str, str]:
    """Headers for one send; ``webhook_id`` stays the same across retries."""
    now = now or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=now, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


def verify(secrets: Iterable[str], body: bytes, headers: Mapping[str, str]) -> None:
    """Accept if any secret verifies the body; else raise :class:`SignatureError`."""
    wanted = {k.lower(): v for k, v in headers.items()
              if k.lower() in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("body is not UTF-8") from None
    reason = "no callback secret configured"
    for secret in secrets:
        try:
            Webhook(secret).verify(text, wanted, json_parse=False)
            return
        except WebhookVerificationError as exc:
            reason = str(exc)
        except (ValueError, IndexError):  # a malformed signature header
            reason = "malformed signature header"
    raise SignatureError(reason)
