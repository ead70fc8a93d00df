"""Who is calling: API keys and time-bound tokens, stored hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import cache, wraps

from flask import current_app, g, request
from werkzeug.security import check_password_hash, generate_password_hash

from .access import require_site
from .callers import Caller, cache_for
from .errors import ApiError
from .extensions import db
from .models import ApiClient, ApiToken, utcnow

KEY_PREFIX = "hla_"
SCHEMES = ("token", "bearer")


def hash_secret(secret: str) -> str:
    """A key or token is random and long: a SHA-256 digest is the right stored form."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    return generate_password_hash(password)  # scrypt, salted


def password_matches(stored: str | None, password: str) -> bool:
    if not stored:
        # Spend the same time as a real check, so a missing account is not told apart.
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(stored, password)


@cache
def _dummy_hash() -> str:
    """Made on first need, not at import: scrypt takes 32 MB for a moment, and every
    process (web worker, delivery worker, each CLI command) imports this module."""
    return generate_password_hash("not-a-password")


def credential_from_header() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in SCHEMES and value.strip():
        return value.strip()
    return None


# Built once: every request runs it, and a statement rebuilt per call costs its cache key.
_CLIENT_BY_KEY = db.select(ApiClient).where(ApiClient.key_hash == db.bindparam("digest"))


def client_for_credential(credential: str) -> Caller | None:
    """The active client a key or an unexpired token belongs to: remembered by this
    process (:mod:`adapter.callers`) or read from the database."""
    digest = hash_secret(credential)
    now = utcnow()
    cache = cache_for(current_app)
    version = cache.version()
    entry = cache.get(digest, now) if version is not None else None
    if entry is not None:
        return entry.caller
    client, expires_at = _client_in_database(digest, now)
    if client is None:
        return None  # unknown or revoked: never remembered
    caller = Caller.of(client)
    if version is not None:
        cache.remember(digest, caller, expires_at, version)
    return caller


def _client_in_database(digest: str, now) -> tuple[ApiClient | None, object]:
    """The live client of a key's or token's digest, and the token's expiry (None for a key)."""
    client = db.session.execute(_CLIENT_BY_KEY, {"digest": digest}).scalar_one_or_none()
    if client is not None and hmac.compare_digest(client.key_hash or "", digest):
        return (None if client.revoked_at else client), None
    token = db.session.execute(
        db.select(ApiToken).where(ApiToken.token_hash == digest)
    ).scalar_one_or_none()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None, None
    if token.revoked_at or token.expires_at <= now or token.client is None:
        return None, None
    return (None if token.client.revoked_at else token.client), token.expires_at


def issue_token(*, client: ApiClient | None = None, site: str | None = None, ttl: int) -> str:
    """A new time-bound token (the caller commits)."""
    token = secrets.token_hex(20)  # the shape of a DRF token, which OpenCHS callers expect
    db.session.add(
        ApiToken(
            token_hash=hash_secret(token),
            client_id=client.id if client else None,
            site=site,
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return token


def site_token_valid(site: str, credential: str | None) -> bool:
    """Is this a live callback token issued to the helpline of ``site``?"""
    if not credential:
        return False
    digest = hash_secret(credential)
    token = db.session.execute(
        db.select(ApiToken).where(ApiToken.token_hash == digest)
    ).scalar_one_or_none()
    return bool(
        token
        and hmac.compare_digest(token.token_hash, digest)
        and token.site == site
        and token.revoked_at is None
        and token.expires_at > utcnow()
    )


def unauthorized(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Token"})


CHATBOT_OR_HELPLINE = ("chatbot", "helpline")


def require_client(role: str | tuple[str, ...] = "chatbot") -> Callable:
    """Require a valid key or token of a client in ``role`` (one role, or several)."""
    roles = (role,) if isinstance(role, str) else tuple(role)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            credential = credential_from_header()
            client = client_for_credential(credential) if credential else None
            if client is None:
                raise unauthorized()
            if client.role not in roles:
                raise ApiError(403, "forbidden",
                               f"this route is for {' or '.join(roles)} clients")
            g.client = client
            g.client_name = client.name  # for the request log line, read after the commit
            _rate_limit(client)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _rate_limit(client: Caller) -> None:
    """429 + Retry-After past the client's rate. Redis down: let it through — the
    database, not Redis, decides whether a request can be accepted."""
    import math

    from redis.exceptions import RedisError

    from .queueing import pacer_for

    per_minute = int(current_app.config["RATE_LIMIT_PER_MINUTE"])
    if per_minute <= 0:
        return
    try:
        wait = pacer_for(current_app, "helpline-adapter:rate:").reserve(
            # Namespaced like the queue: deployments sharing a Redis keep their own limits.
            f"{current_app.config['DELIVERY_QUEUE']}:client:{client.id}",
            per_minute * 60,
            burst=int(current_app.config["RATE_LIMIT_BURST"]),
        )
    except RedisError:
        return
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many requests for this client",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})


def require_site_access(site: str) -> None:
    """403 unless the calling client may use ``site`` (:func:`adapter.access.require_site`)."""
    require_site(g.client, site)


def token_ttl() -> int:
    return int(current_app.config["API_TOKEN_TTL_SECONDS"])
