"""What a plugin is given: frozen views of the core's records (``plugins.types``), filled
with only what the site's kind declares it may learn about the child."""

from __future__ import annotations

from plugins.types import (
    Attachment,
    CaseView,
    ConversationView,
    HelplineKind,
    MessageView,
    SiteView,
)

from .api.fields import attachment_url, content_type_of
from .models import Case, Conversation, Message
from .sites import Site


def site_view(site: Site) -> SiteView:
    return SiteView(code=site.code, name=site.name, helpline=site.helpline)


def contact_reference(conversation: Conversation) -> str | None:
    """The chatbot's contact as a helpline would show it: the uuid, else the URN's address."""
    if conversation.contact_uuid:
        return conversation.contact_uuid
    if conversation.contact_urn:
        return conversation.contact_urn.split(":", 1)[-1]
    return None


def conversation_view(kind: HelplineKind, site: Site, conversation: Conversation,
                      ) -> ConversationView:
    shared = kind.shares_contact(site.helpline)
    return ConversationView(
        id=conversation.id, site=conversation.site, client=conversation.client_pseudonym,
        contact=contact_reference(conversation) if shared else None,
        state=conversation.state, risk=conversation.risk, location=conversation.location,
        counsellor=conversation.counsellor, created_at=conversation.created_at,
        closed_at=conversation.closed_at, closed_by=conversation.closed_by,
        reopen_count=conversation.reopen_count or 0,
        previous_session_id=conversation.previous_id)


def media_of(stored: list[str] | None) -> tuple[Attachment, ...]:
    """Stored attachments (a URL, or ``content-type:url``) as the views carry them."""
    return tuple(Attachment(url=attachment_url(item), content_type=content_type_of(item))
                 for item in stored or ())


def message_view(message: Message) -> MessageView:
    media = media_of(message.attachments)
    return MessageView(id=message.id, sender_message_id=message.sender_message_id,
                       conversation_id=message.conversation_id,
                       text=message.text, attachments=tuple(item.url for item in media),
                       sender=message.sender, created_at=message.created_at, media=media)


def case_view(kind: HelplineKind, site: Site, case: Case) -> CaseView:
    return CaseView(id=case.id, conversation_id=case.conversation_id,
                    client=case.client_pseudonym, intake=dict(case.intake or {}),
                    urn=case.contact_urn if kind.shares_phone(site.helpline) else None,
                    created_at=case.created_at)
