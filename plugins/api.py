"""The plugin contract: every name a helpline plugin may use, and nothing else.

A plugin imports from here (never from ``adapter``): the kind it registers, the client
it subclasses, the views it is given, the results it returns, the failure it raises,
the callbacks it declares and the events they become, two helpers to judge an HTTP
answer, and the field types the core's own schemas use (attachments). ``docs/
plugins.md`` documents each; the core's records and database are not part of it.
"""

from adapter.api.fields import (
    ATTACHMENT_MAX_LENGTH,
    attachment_list,
    attachment_url,
    content_type_of,
    parse_attachment,
)

from . import hookimpl
from .http import check_response, json_body, retry_after_seconds
from .types import (
    ACK_STATUSES,
    Acknowledgement,
    Assignment,
    Attachment,
    Callback,
    CallbackRefused,
    CallbackRequest,
    CaseProgress,
    CaseView,
    CheckResult,
    ConversationRef,
    ConversationView,
    CounsellorMessage,
    CredentialsExpired,
    DeliveryFailure,
    HelplineClient,
    HelplineClose,
    HelplineEvent,
    HelplineKind,
    MessageView,
    Progress,
    SendResult,
    SiteView,
    TokenLogin,
    Transcript,
    TranscriptLine,
)

__all__ = [
    "ACK_STATUSES",
    "ATTACHMENT_MAX_LENGTH",
    "Acknowledgement",
    "Assignment",
    "Attachment",
    "Callback",
    "CallbackRefused",
    "CallbackRequest",
    "CaseProgress",
    "CaseView",
    "CheckResult",
    "ConversationRef",
    "ConversationView",
    "CounsellorMessage",
    "CredentialsExpired",
    "DeliveryFailure",
    "HelplineClient",
    "HelplineClose",
    "HelplineEvent",
    "HelplineKind",
    "MessageView",
    "Progress",
    "SendResult",
    "SiteView",
    "TokenLogin",
    "Transcript",
    "TranscriptLine",
    "attachment_list",
    "attachment_url",
    "check_response",
    "content_type_of",
    "hookimpl",
    "json_body",
    "parse_attachment",
    "retry_after_seconds",
]
