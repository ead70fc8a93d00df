"""Where a re-hosted attachment is kept (``[attachments.rehost] store = "directory"``).

Each file is ``<directory>/<token>``, its content type and expiry beside it in
``<token>.json``; the token (``secrets.token_urlsafe(32)``: 256 bits) is the only name it
has, and the only secret the link needs. An expired file is not served, and the purge
deletes it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _now() -> datetime:
    return datetime.now(UTC)


def store(directory: str, body: bytes, content_type: str, expire_hours: int) -> str:
    """Write a file and its metadata (atomically: never half a file); its token."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    expires = (_now() + timedelta(hours=expire_hours)).isoformat()
    for name, data in ((token, body), (f"{token}.json", json.dumps(
            {"content_type": content_type, "expires_at": expires}).encode())):
        partial = folder / f".{name}.partial"
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(folder / name)
    return token


def stored(directory: str, token: str) -> tuple[Path, str] | None:
    """The file and its content type, or ``None``: no such token, or expired."""
    if not TOKEN.match(token):
        return None
    folder = Path(directory)
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
    except (OSError, ValueError):
        return None
    if datetime.fromisoformat(meta["expires_at"]) <= _now():
        return None
    path = folder / token
    return (path, meta["content_type"]) if path.is_file() else None


def purge(directory: str, *, everything_before: datetime | None = None) -> int:
    """Delete expired files (and, with ``everything_before``, every file older); how many."""
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    removed = 0
    for meta_path in folder.glob("*.json"):
        token = meta_path.stem
        try:
            meta = json.loads(meta_path.read_text())
            expired = datetime.fromisoformat(meta["expires_at"]) <= _now()
        except (OSError, ValueError, KeyError):
            expired = True
        old = everything_before is not None and datetime.fromtimestamp(
            meta_path.stat().st_mtime, UTC) < everything_before
        if expired or old:
            (folder / token).unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            removed += 1
    return removed
