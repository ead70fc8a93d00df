"""The plugin contract: every name a helpline plugin may use, and nothing else.

A plugin imports from here (never from ``adapter``): the kind it registers, the client
it subclasses, the views it is given, the results it returns, the failure it raises,
the events its callbacks become, and two helpers to judge an HTTP answer. ``docs/
plugins.md`` documents each; the core's records and database are not part of it.
"""

from . import hookimpl
from .http import check_response, json_body, retry_after_seconds
from .types import (
    Acknowledgement,
    Assignment,
    CaseProgress,
    CaseView,
    CheckResult,
    ConversationRef,
    ConversationView,
    CounsellorMessage,
    DeliveryFailure,
    HelplineClient,
    HelplineClose,
    HelplineEvent,
    HelplineKind,
    MessageView,
    SendResult,
    SiteView,
)

__all__ = [
    "Acknowledgement",
    "Assignment",
    "CaseProgress",
    "CaseView",
    "CheckResult",
    "ConversationRef",
    "ConversationView",
    "CounsellorMessage",
    "DeliveryFailure",
    "HelplineClient",
    "HelplineClose",
    "HelplineEvent",
    "HelplineKind",
    "MessageView",
    "SendResult",
    "SiteView",
    "check_response",
    "hookimpl",
    "json_body",
    "retry_after_seconds",
]
