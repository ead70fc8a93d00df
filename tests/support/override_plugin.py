"""A country's plugin that overrides one site of a built-in kind (the hooks for genuine
overrides): it takes over one step of the site's client, adds a rule across the site's
keys, and reads the site's callbacks its own way. Sites it does not name are left alone."""

from __future__ import annotations

from plugins.api import CounsellorMessage, SendResult, hookimpl
from plugins.openchs.wire import events as openchs_events

SITE = "ov"  # the site this country plugin takes care of


@hookimpl
def helpline_client(site, kind):
    if site.code != SITE:
        return None

    class OverriddenClient(kind.client):
        def open(self, conversation):
            response = self.http.post(self.config["url"],
                                      json={"action": "open", "session_id": conversation.id,
                                            "by": "country plugin"})
            return SendResult(status_code=response.status_code)

    return OverriddenClient


@hookimpl
def validate_site(site):
    if site.code == SITE and site.policies.assignment_timeout > 3600:
        return ["policies.assignment_timeout: this country waits at most an hour"]
    return None


@hookimpl
def helpline_events_from_callback(site, action, payload, headers):
    if site.code != SITE or action != "message":
        return None
    events = openchs_events(action, payload)
    return [CounsellorMessage(ref=e.ref, text=e.text.strip(), message_id=e.message_id,
                              counsellor=e.counsellor or "country-desk",
                              attachments=e.attachments) for e in events]
