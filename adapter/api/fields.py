"""Field types and checks every schema shares: attachments, and text a database can store.

Attachments arrive as URLs (``https://host/a.jpg``) or in RapidPro's ``<content-type>:<url>``
form (``image/jpeg:https://host/a.jpg``). Only ``http``/``https`` URLs with a host are
accepted and stored, as the URL alone (what
:mod:`adapter.dialects.rapidpro_webhook.wire` always kept): anything else (``file:``,
``javascript:``, ``data:``) would reach a counsellor as a link.

RapidPro also sends a shared location as ``geo:<lat>,<long>``. It is no link, so it is
never an attachment: where a schema allows it (the chatbot's messages), it is checked,
kept as ``geo:<lat>,<long>`` and turned into a line of the message's text
(:func:`split_attachments`); elsewhere (helpline callbacks) it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

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


def parse_attachment(value: str, *, allow_geo: bool) -> str:
    """The URL to store for one attachment (or ``geo:lat,long``); ValidationError if unusable."""
    if len(value) > ATTACHMENT_MAX_LENGTH:
        raise ValidationError(f"at most {ATTACHMENT_MAX_LENGTH} characters")
    if value[:7].lower() == "http://" or value[:8].lower() == "https://":
        return _web_url(value)
    content_type, sep, rest = value.partition(":")
    if sep and content_type.lower() == "geo":
        if not allow_geo:
            raise ValidationError("a location (geo:) is not accepted here")
        return _geo(value)
    if sep and _CONTENT_TYPE.match(content_type) and rest[:4].lower() == "http":
        return _web_url(rest)
    raise ValidationError("must be an http or https URL with a host, or "
                          "<content-type>:<http or https URL>")


class Attachment(fields.String):
    """One attachment: a web URL, or RapidPro's ``<content-type>:<url>``; loaded as the URL
    (``geo:lat,long`` for a location where ``allow_geo``)."""

    def __init__(self, *, allow_geo: bool = False, **kwargs) -> None:
        description = ("An http(s) URL, or RapidPro's `<content-type>:<url>` (e.g. "
                       "`image/jpeg:https://host/a.jpg`), at most "
                       f"{ATTACHMENT_MAX_LENGTH} characters")
        if allow_geo:
            description += "; a shared location `geo:<lat>,<long>` becomes a line of the text"
        metadata = {"description": description, "maxLength": ATTACHMENT_MAX_LENGTH,
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.allow_geo = allow_geo

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return parse_attachment(text.strip(), allow_geo=self.allow_geo)


def attachment_list(*, allow_geo: bool = False, **kwargs) -> fields.List:
    """At most :data:`MAX_ATTACHMENTS` attachments; errors name the index (``attachments.0``)."""
    return fields.List(Attachment(allow_geo=allow_geo),
                       validate=validate.Length(max=MAX_ATTACHMENTS), **kwargs)


def split_attachments(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """Loaded attachments → (URLs to store as attachments, locations as lines of text)."""
    urls: list[str] = []
    locations: list[str] = []
    for item in items:
        if item.startswith(GEO_PREFIX):
            locations.append("Shared location: " + item[len(GEO_PREFIX):])
        else:
            urls.append(item)
    return urls, locations


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
