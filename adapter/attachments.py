"""A site's limits on the attachments a chatbot message carries (``[attachments]``).

Screened before the message is stored: the text and the attachments the site accepts are
stored and delivered as any message is; each refused attachment is named by the field it
came in (``attachments.1``, ``input.attachments.0``) with the reason, for the dialect to
answer (a 422 that also carries the accepted message's id). Screening is a pure function
of the body and the site's settings, so a repeat of the request is screened the same way
and gets the same answer, with nothing stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .api.fields import content_type_of
from .sites import Site


@dataclass(frozen=True)
class Screened:
    kept: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)  # field path → reasons


def screen(site: Site, attachments: Sequence[str], paths: Sequence[str] = ()) -> Screened:
    """Which of a message's attachments ``site`` accepts, and why each other one is not.

    ``paths`` name where each attachment came from (default ``attachments.<index>``).
    Over ``max_count``, the first ones are kept and the later ones refused.
    """
    limits = site.attachments
    kept: list[str] = []
    refused: dict[str, list[str]] = {}
    for index, stored in enumerate(attachments):
        path = paths[index] if index < len(paths) else f"attachments.{index}"
        reason = limits.refusal(content_type_of(stored))
        if reason is None and len(kept) >= limits.max_count:
            reason = f"at most {limits.max_count} attachments per message at this site"
        if reason is None:
            kept.append(stored)
        else:
            refused[path] = [reason]
    return Screened(kept=kept, refused=refused)


def screen_message(site: Site, msg):
    """A :class:`adapter.protocol.ClientMessage` (or ``StartRequest``) with only the
    attachments ``site`` accepts, and the refusals."""
    screened = screen(site, msg.attachments, msg.attachment_paths)
    if not screened.refused:
        return msg, {}
    return replace(msg, attachments=screened.kept,
                   attachment_paths=[]), screened.refused


def refusal_message(refused: dict[str, list[str]]) -> str:
    return "attachments refused: " + ", ".join(sorted(refused))
