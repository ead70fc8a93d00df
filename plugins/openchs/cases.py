"""Case creation at an OpenCHS helpline: reporter, then case, then client.

Each step's new id is saved before the next step starts, so a retry resumes where
the last attempt stopped and never creates a second reporter or client. ``src_uid``
is our case id, so the helpline can also tell a repeat apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from plugins.http import json_body
from plugins.types import CaseProgress, DeliveryFailure, SendResult

from . import client
from .wire import created_id

#: Step → helpline resource, in the order they are created.
STEPS = (("reporter", "reporters"), ("case", "cases"), ("client", "clients"))


def _lookup(mapping: Mapping[str, str], value: Any) -> str | None:
    """A site category id for an intake value, matched case-insensitively."""
    if value is None:
        return None
    wanted = str(value).strip().casefold()
    for key, category_id in mapping.items():
        if key.casefold() == wanted:
            return category_id
    return None


def _first(intake: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if intake.get(name) not in (None, ""):
            return intake[name]
    return None


def _is_reporter(intake: Mapping[str, Any]) -> bool:
    """The child usually speaks for themself: true unless the intake says otherwise."""
    value = intake.get("is_reporter")
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    return str(value).strip().casefold() in {"1", "true", "yes", "y"}


def phone_number(urn: str | None) -> str:
    """The number in a ``tel:`` or ``whatsapp:`` URN; other URNs carry no phone number."""
    if not urn:
        return ""
    scheme, _, path = urn.partition(":")
    if scheme not in ("tel", "whatsapp") or not path:
        return ""
    number = path.split("?", 1)[0]
    return number if number.startswith("+") or scheme == "tel" else "+" + number


def bodies(helpline: Mapping[str, Any], case: Any, steps: Mapping[str, str]) -> dict[str, dict]:
    """The body of each step, from the intake and the site's category ids.

    Names are never sent: the child is known to the helpline by the pseudonym only,
    and by a phone number only where the site opted in (``share_phone``).
    """
    mapping = helpline["case"]
    intake = case.intake or {}
    sex_id = _lookup(mapping["sex"], _first(intake, "sex", "gender"))
    location_id = _lookup(mapping["location"], _first(intake, "location"))
    category_id = (_lookup(mapping["category"], _first(intake, "category", "issue"))
                   or mapping["default_category"])
    is_reporter = _is_reporter(intake)
    pseudonym = case.client or "anonymous"
    phone = phone_number(case.urn)  # set only where the site shares phone numbers
    return {
        "reporter": {
            "contact_fname": pseudonym, "contact_lname": "",
            "contact_phone": phone if is_reporter else "",
            "contact_sex_id": sex_id if is_reporter else None,
            "src": helpline["channel"], "src_uid": case.id,
        },
        "case": {
            "reporter_id": steps.get("reporter"),
            "gbv_related": mapping["gbv_related"],
            "case_category_id": category_id,
            "narrative": _first(intake, "narrative") or "",
            "plan": "",
            "priority": mapping["priority"],
            "status": 1,
            "src": helpline["channel"], "src_uid": case.id,
        },
        "client": {
            "case_id": steps.get("case"),
            "contact_fname": pseudonym, "contact_lname": "", "contact_phone": phone,
            "contact_sex_id": sex_id,
            "contact_age": _first(intake, "age"),
            "contact_location_id": location_id,
            "is_reporter": 1 if is_reporter else 0,
        },
    }


def create_case(site_code: str, helpline: Mapping[str, Any], case: Any, progress: CaseProgress,
                save_progress: Callable[[CaseProgress], None],
                http: requests.Session) -> CaseProgress:
    """Run the steps not done yet; return the progress with the helpline's case id."""
    steps = dict(progress.steps)
    reference = progress.reference
    for step, resource in STEPS:
        if step in steps:
            continue
        body = bodies(helpline, case, steps)[step]
        response = client.post(site_code, helpline, http, f"{resource}/", body,
                               f"openchs {resource}")
        new_id = created_id(json_body(response, f"openchs {resource}"), resource)
        if new_id is None:
            raise DeliveryFailure(f"openchs {resource}: no id in the answer", retryable=True,
                                  status_code=response.status_code)
        steps[step] = new_id
        if step == "case":
            reference = new_id
        save_progress(CaseProgress(steps=dict(steps), reference=reference))
    return CaseProgress(steps=steps, reference=reference)


def attach_transcript(site_code: str, helpline: Mapping[str, Any], case: Any, reference: str,
                      transcript: Any, http: requests.Session) -> SendResult:
    """``POST cases/<reference>`` (the reference's update) setting the case's narrative
    to what the child told the chatbot followed by the transcript. The same body each
    time: a retry, or a second close after a return, leaves the case as one would, never
    a transcript twice (the helpline stores every ``msg/``, but an update replaces)."""
    field = helpline["case"]["transcript_field"]
    intake = case.intake or {}
    before = (_first(intake, "narrative") or "") if field == "narrative" else ""
    value = "\n\n".join(part for part in (before, transcript.as_text()) if part)
    response = client.post(site_code, helpline, http, f"cases/{reference}", {field: value},
                           "openchs case transcript")
    return SendResult(status_code=response.status_code, reference=reference)
