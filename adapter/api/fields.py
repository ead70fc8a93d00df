"""Field types and checks every schema shares: attachments, and text a database can store.

Attachments arrive as URLs (``https://host/a.jpg``) or in RapidPro's ``<content-type>:<url>``
form (``image/jpeg:https://host/a.jpg``). Only ``http``/``https`` URLs with a host are
accepted: anything else (``file:``, ``javascript:``, ``data:``) would reach a counsellor as
a link. A chatbot's attachment is stored in RapidPro's form when it came with a content type
(``keep_type``), so the helpline can be told what it is (OpenCHS's ``mime``); a helpline's
is stored as the URL alone. :func:`attachment_url` and :func:`content_type_of` read either.

RapidPro also sends a shared location as ``geo:<lat>,<long>``. It is no link, so it is
never an attachment: where a schema allows it (the chatbot's messages), it is checked,
kept as ``geo:<lat>,<long>`` and turned into a line of the message's text
(:func:`split_attachments`); elsewhere (helpline callbacks) it is refused.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, validate

#: An id a chatbot gives us (conversation, message, case): what every dialect accepts.
ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,199}$",
                     error="1-200 characters: letters, digits and . _ : @ / + = -")
#: Message text: the column's length.
TEXT = validate.Length(max=10_000)
#: A child's language as RapidPro keeps it: ISO 639-3, three lowercase letters; empty
#: (``@contact.language`` of a contact without one) means unknown.
LANGUAGE = validate.Regexp(r"^([a-z]{3})?$",
                           error="an ISO 639-3 code (three lowercase letters, e.g. 'swa')")

ATTACHMENT_MAX_LENGTH = 2048
MAX_ATTACHMENTS = 10
GEO_PREFIX = "geo:"

#: ``image``, ``image/jpeg``, ``application/vnd.openxmlformats-officedocument...``.
_CONTENT_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9.+-]{0,63}(/[A-Za-z0-9][A-Za-z0-9.+_-]{0,126})?$")
_COORDINATE = re.compile(r"^[+-]?\d{1,3}(\.\d{1,20})?$")
#: Python's own extension table, never the machine's (``/etc/mime.types`` differs by host).
_BUILT_IN_TYPES = mimetypes.MimeTypes()
_WEB_URL = validate.URL(relative=False, schemes={"http", "https"}, require_tld=False)

#: A character no column can store: NUL (PostgreSQL text refuses it) or half of a
#: surrogate pair (not encodable as UTF-8; JSON lets ``"\ud800"`` through).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL or unpaired surrogate characters"


def storable(text: str) -> bool:
    return UNSTORABLE.search(text) is None


def _key_name(key: str) -> str:
    """A JSON key as an error names it; a key that is itself unstorable is escaped."""
    return key if storable(key) else ascii(key)[1:-1]


def unstorable_paths(data: Any, prefix: str = "", limit: int = 20) -> list[str]:
    """The dotted path of every string (key or value, at any depth) with an unstorable
    character, e.g. ``results.risk.value`` or ``attachments.0``; at most ``limit``.

    Walked without recursion: a body may nest as deep as its size allows.
    """
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, str):
            if not storable(value):
                found.append(path or "body")
        elif isinstance(value, Mapping):
            for key, inner in reversed(list(value.items())):
                name = _key_name(str(key))
                inner_path = f"{path}.{name}" if path else name
                if isinstance(key, str) and not storable(key):
                    found.append(inner_path)
                    continue
                stack.append((inner_path, inner))
        elif isinstance(value, list | tuple):
            for index in reversed(range(len(value))):
                stack.append((f"{path}.{index}" if path else str(index), value[index]))
    return found[:limit]


def _web_url(url: str) -> str:
    try:
        _WEB_URL(url)
    except ValidationError:
        raise ValidationError("must be an http or https URL with a host, or "
                              "<content-type>:<http or https URL>") from None
    return url


def _geo(text: str) -> str:
    parts = text[len(GEO_PREFIX):].split(",")
    if len(parts) == 2 and all(_COORDINATE.match(part.strip()) for part in parts):
        lat, long = (float(part) for part in parts)
        if -90 <= lat <= 90 and -180 <= long <= 180:
            return GEO_PREFIX + ",".join(part.strip() for part in parts)
    raise ValidationError("a location must be geo:<latitude>,<longitude>")


def _is_web(value: str) -> bool:
    return value[:7].lower() == "http://" or value[:8].lower() == "https://"


def parse_attachment(value: str, *, allow_geo: bool, keep_type: bool = False) -> str:
    """What to store for one attachment: the URL, or with ``keep_type`` and a declared
    content type ``<content-type>:<url>`` (the type in lower case); ``geo:lat,long`` for a
    location where ``allow_geo``. ValidationError if unusable."""
    if len(value) > ATTACHMENT_MAX_LENGTH:
        raise ValidationError(f"at most {ATTACHMENT_MAX_LENGTH} characters")
    if _is_web(value):
        return _web_url(value)
    content_type, sep, rest = value.partition(":")
    if sep and content_type.lower() == "geo":
        if not allow_geo:
            raise ValidationError("a location (geo:) is not accepted here")
        return _geo(value)
    if sep and _CONTENT_TYPE.match(content_type) and rest[:4].lower() == "http":
        url = _web_url(rest)
        return f"{content_type.lower()}:{url}" if keep_type else url
    raise ValidationError("must be an http or https URL with a host, or "
                          "<content-type>:<http or https URL>")


def typed_attachment(url: str, content_type: str | None) -> str:
    """A URL and a separately given content type (Weni's ``{url, content_type}``) in the
    stored form; a content type that is not one is dropped (the URL alone)."""
    if content_type and _CONTENT_TYPE.match(content_type.strip()) and _is_web(url):
        return f"{content_type.strip().lower()}:{url}"
    return url


def attachment_url(stored: str) -> str:
    """The URL of a stored attachment, whichever form it was stored in."""
    if _is_web(stored):
        return stored
    content_type, sep, rest = stored.partition(":")
    return rest if sep and _is_web(rest) else stored


def declared_type(stored: str) -> str | None:
    """The content type the sender gave with a stored attachment, if any."""
    if _is_web(stored):
        return None
    content_type, sep, rest = stored.partition(":")
    return content_type if sep and _is_web(rest) else None


def content_type_of(stored: str) -> str | None:
    """The declared content type, else one guessed from the URL's file extension (``.jpg``
    is ``image/jpeg``), else ``None``: unknown."""
    declared = declared_type(stored)
    if declared:
        return declared
    path = urlsplit(attachment_url(stored)).path
    guessed, _ = _BUILT_IN_TYPES.guess_type(path, strict=False)
    return guessed.lower() if guessed else None


class Attachment(fields.String):
    """One attachment: a web URL, or RapidPro's ``<content-type>:<url>``; loaded as the URL
    (``<content-type>:<url>`` with ``keep_type``; ``geo:lat,long`` for a location where
    ``allow_geo``)."""

    def __init__(self, *, allow_geo: bool = False, keep_type: bool = False, **kwargs) -> None:
        description = ("An http(s) URL, or RapidPro's `<content-type>:<url>` (e.g. "
                       "`image/jpeg:https://host/a.jpg`), at most "
                       f"{ATTACHMENT_MAX_LENGTH} characters")
        if allow_geo:
            description += "; a shared location `geo:<lat>,<long>` becomes a line of the text"
        metadata = {"description": description, "maxLength": ATTACHMENT_MAX_LENGTH,
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.allow_geo = allow_geo
        self.keep_type = keep_type

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return parse_attachment(text.strip(), allow_geo=self.allow_geo, keep_type=self.keep_type)


def attachment_list(*, allow_geo: bool = False, keep_type: bool = False, **kwargs) -> fields.List:
    """At most :data:`MAX_ATTACHMENTS` attachments; errors name the index (``attachments.0``)."""
    return fields.List(Attachment(allow_geo=allow_geo, keep_type=keep_type),
                       validate=validate.Length(max=MAX_ATTACHMENTS), **kwargs)


def split_attachments(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """Loaded attachments → (URLs to store as attachments, locations as lines of text)."""
    urls, _, locations = split_attachments_at(items, "attachments")
    return urls, locations


def split_attachments_at(items: Iterable[str], where: str,
                         ) -> tuple[list[str], list[str], list[str]]:
    """Loaded attachments → (attachments to store, the field path each came from, such as
    ``input.attachments.2``, and locations as lines of text)."""
    urls: list[str] = []
    paths: list[str] = []
    locations: list[str] = []
    for index, item in enumerate(items):
        if item.startswith(GEO_PREFIX):
            locations.append("Shared location: " + item[len(GEO_PREFIX):])
        else:
            urls.append(item)
            paths.append(f"{where}.{index}")
    return urls, paths, locations


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list]:
    """marshmallow's nested messages as dotted paths: ``{"contact": {"urn": [...]}}`` →
    ``{"contact.urn": [...]}``, ``{"attachments": {0: [...]}}`` → ``{"attachments.0": [...]}``.
    A nested schema's own error (``_schema``) is its field's."""
    flat: dict[str, list] = {}
    pending: list[tuple[str, Any]] = [(prefix, messages)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, Mapping):
            for key, inner in value.items():
                name = str(key)
                if name == "_schema":
                    pending.append((path or "_schema", inner))
                else:
                    pending.append((f"{path}.{name}" if path else name, inner))
        else:
            listed = value if isinstance(value, list) else [value]
            flat.setdefault(path or "body", []).extend(
                m if isinstance(m, str) else str(m) for m in _leaves(listed))
    return dict(sorted(flat.items()))


def _leaves(items: list) -> Iterator[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _leaves(item)
        else:
            yield item
