"""The generic ticketer's bodies → protocol requests, and its routing.

Nothing of the contact but its uuid is kept (its URN routes, by prefix, and is then
dropped): names, URNs and the assignee never reach the helpline, the database or the
logs. The helpline sees the client's pseudonym.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...api.fields import parse_attachment, split_attachments_at, typed_attachment
from ...errors import ApiError
from ...protocol import ClientMessage, StartRequest
from ...sites import Site, SiteRegistry

DIALECT = "weni_ticketer"


def instant(text: str | None) -> datetime | None:
    """An RFC 3339 time as Go writes it (``Z`` or an offset, up to nanoseconds), as naive
    UTC; None when absent or unreadable (the contract's times are informative)."""
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = value.partition(".")
    if dot:  # Python reads at most six fractional digits
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        value = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def rfc3339(moment: datetime | None) -> str | None:
    """A naive UTC time as the contract writes it."""
    if moment is None:
        return None
    return moment.isoformat(timespec="seconds") + "Z"


def ticket_body(body: str | None) -> dict[str, Any]:
    """The ticket's ``body``: JSON a flow wrote (``risk``, ``location``, ``text``,
    ``history_after``), or plain text (the handoff's note)."""
    if not body or not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"text": body}
    if not isinstance(parsed, dict):
        return {"text": body}
    return {key: str(parsed[key]) for key in ("risk", "location", "text", "site")
            if isinstance(parsed.get(key), str | int | float) and str(parsed[key]).strip()}


def route(registry: SiteRegistry, body: Mapping[str, Any]) -> tuple[Site | None, list[str]]:
    """The site for an open: a site's ``[chatbot.weni]`` queue uuid, else its topic uuid,
    else the usual fallbacks (explicit site, location, URN prefix) among the sites that
    serve Weni tickets. What was tried, for an ``unroutable`` answer."""
    weni_sites = [site for site in registry if site.weni is not None]
    topic = body.get("topic") or {}
    tried: list[str] = []
    queue_uuid = str(topic.get("queue_uuid") or "").lower()
    topic_uuid = str(topic.get("uuid") or "").lower()
    if queue_uuid:
        tried.append(f"queue {queue_uuid!r}")
        for site in weni_sites:
            if queue_uuid in site.weni.queues:
                return site, tried
    if topic_uuid:
        tried.append(f"topic {topic_uuid!r}")
        for site in weni_sites:
            if topic_uuid in site.weni.topics:
                return site, tried
    hints = _routing_hints(body)
    found, more = SiteRegistry(weni_sites).route(site=hints["site"], location=hints["location"],
                                                 urn=hints["urn"])
    return found, tried + more


def _routing_hints(body: Mapping[str, Any]) -> dict[str, str | None]:
    contact = body.get("contact") or {}
    metadata = body.get("metadata") or {}
    note = ticket_body(body.get("body"))
    contact_fields = contact.get("fields_") or {}
    location = metadata.get("location") or note.get("location")
    if not location and isinstance(contact_fields.get("location"), str | int):
        location = str(contact_fields["location"])
    return {"site": metadata.get("site") or note.get("site"), "location": location,
            "urn": contact.get("urn") or next(iter(contact.get("urns") or []), None)}


def start_request(body: Mapping[str, Any]) -> StartRequest:
    contact = body.get("contact") or {}
    metadata = body.get("metadata") or {}
    note = ticket_body(body.get("body"))
    hints = _routing_hints(body)
    urn = hints["urn"]
    if urn and len(urn) > 255:
        raise ApiError(400, "invalid_request", "invalid fields: contact.urn",
                       {"contact.urn": ["at most 255 characters"]})
    for name, limit in (("risk", 64), ("location", 120)):
        if len(note.get(name, "")) > limit:
            raise ApiError(400, "invalid_request", f"invalid fields: body.{name}",
                           {f"body.{name}": [f"at most {limit} characters"]})
    ticket_id = body["ticket_id"]
    return StartRequest(
        conversation_id=ticket_id,
        location=hints["location"],
        risk=note.get("risk"),
        contact_uuid=contact.get("uuid") or None,
        # The URN only routes (above): callbacks name the ticket, never the contact, so
        # the child's number is never stored. Without a contact uuid the pseudonym is
        # made afresh.
        urn=None,
        text=note.get("text"),
        message_id=f"ticket-body-{ticket_id}"[:200] if note.get("text") else None,
        dialect=DIALECT,
        callback_url=(metadata.get("webhook_base_url") or None),
        language=contact.get("language") or metadata.get("language") or None,
    )


def attachments(items: list[Mapping[str, Any]] | None, where: str,
                ) -> tuple[list[str], list[str], list[str]]:
    """The contract's ``[{url, content_type}]`` → attachments we store (http/https only;
    ``content_type:url`` when it gave a content type), the field each came from
    (``attachments.1``), and shared locations as lines of text."""
    loaded = []
    errors = {}
    for index, item in enumerate(items or []):
        try:
            url = parse_attachment(str(item.get("url") or "").strip(), allow_geo=True,
                                   keep_type=True)
        except Exception as exc:  # noqa: BLE001 - marshmallow's ValidationError
            errors[f"{where}.{index}.url"] = [str(getattr(exc, "messages", [exc])[0])]
            continue
        loaded.append(typed_attachment(url, item.get("content_type"))
                      if url.startswith(("http://", "https://")) else url)
    if errors:
        raise ApiError(400, "invalid_request", "invalid fields: " + ", ".join(sorted(errors)),
                       errors)
    return split_attachments_at(loaded, where)


def client_message(body: Mapping[str, Any], key: str | None) -> ClientMessage:
    urls, paths, locations = attachments(body.get("attachments"), "attachments")
    text = body.get("text") or None
    if locations:
        text = "\n".join([text, *locations] if text else locations)
    message_id = body.get("message_id") or (key[:200] if key else None)
    return ClientMessage(message_id=message_id, text=text, attachments=urls,
                         attachment_paths=paths)


WHO = {"incoming": "child", "outgoing": "bot"}


def history_message(entry: Mapping[str, Any], index: int) -> ClientMessage:
    """One message of the conversation before the handoff, as the counsellor reads it:
    labelled as earlier, with its time and who wrote it (the child or the bot)."""
    urls, paths, locations = attachments(entry.get("attachments"),
                                         f"messages.{index}.attachments")
    sender_type = str((entry.get("sender") or {}).get("type") or "")
    who = "agent" if sender_type == "agent" else WHO.get(entry.get("direction"), "child")
    moment = instant(entry.get("sent_at"))
    when = f" {moment:%Y-%m-%d %H:%M} UTC" if moment else ""
    text = "\n".join(filter(None, [entry.get("text") or None, *locations]))
    message_id = entry.get("message_id")
    return ClientMessage(
        # The platform's own id: a message already forwarded live is not told twice.
        message_id=message_id or None,
        text=f"[earlier{when}, {who}] {text}".rstrip() if text or not urls
        else f"[earlier{when}, {who}]",
        attachments=urls, attachment_paths=paths)


def sorted_history(messages: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By ``sent_at`` (mailroom's batches, and one-by-one sends, may come in any order);
    a message without a readable time keeps its place after the dated ones."""
    dated = [(instant(m.get("sent_at")), i, m) for i, m in enumerate(messages)]
    return [m for _, _, m in sorted(dated, key=lambda t: (t[0] is None, t[0] or datetime.min,
                                                          t[1]))]
