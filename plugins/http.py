"""HTTP helpers shared by plugins and the chatbot client: one way to judge an answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import wraps

import requests

from .types import DeliveryFailure

#: 4xx answers that may succeed later, so they are retried (RFC 9110 and common practice).
RETRYABLE_4XX = {408, 409, 425, 429}


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds, from either of its forms (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check_response(response: requests.Response, what: str) -> requests.Response:
    """Return a 2xx response; raise :class:`DeliveryFailure` for anything else."""
    status = response.status_code
    if 200 <= status < 300:
        return response
    retryable = status >= 500 or status in RETRYABLE_4XX
    raise DeliveryFailure(
        f"{what}: HTTP {status}",
        retryable=retryable,
        status_code=status,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def tls_problem(exc: Exception) -> str:
    """What a TLS error says, named by the check that failed (``certificate verify
    failed``) or its type, never its text (which may quote a URL)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return ("certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text
            else type(exc).__name__)


def transport_errors_retryable(func: Callable) -> Callable:
    """TLS failures, connection errors and timeouts are transient: turn them into
    retryable failures that say which (a TLS one as such: often a missing CA bundle)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise DeliveryFailure(f"tls: {tls_problem(exc)}", retryable=True) from exc
        except requests.Timeout as exc:
            raise DeliveryFailure(f"timeout: {type(exc).__name__}", retryable=True) from exc
        except requests.ConnectionError as exc:
            raise DeliveryFailure(f"connection: {type(exc).__name__}", retryable=True) from exc

    return wrapper


def json_body(response: requests.Response, what: str) -> dict | list:
    try:
        return response.json()
    except ValueError as exc:
        raise DeliveryFailure(f"{what}: answer is not JSON", retryable=True,
                              status_code=response.status_code) from exc
