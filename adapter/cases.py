"""Case creation: what the child shared with the chatbot, on its way to the helpline.

The intake is read from explicit fields (``intake``) or from RapidPro ``results`` (keys
configurable per site under ``[intake]``), validated with errors that name the field the
caller sent, and stored with an outbox delivery in the caller's transaction. The
helpline is never called inside the request: the delivery engine calls the site
kind's client (``create_case``) and records ``created`` or ``failed``.

Intake values are a child's own words: nothing here logs them, only ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .audit import audit
from .errors import ApiError
from .extensions import db
from .idempotency import key_as_id
from .models import Case, Conversation, new_id
from .outbox import HELPLINE, add_delivery
from .pseudonyms import client_pseudonym
from .sites import Site
from .state import state_of

log = logging.getLogger(__name__)

PENDING, CREATED, FAILED = "pending", "created", "failed"

#: Intake field → RapidPro ``results`` keys holding it, first non-empty wins.
DEFAULT_KEYS: Mapping[str, tuple[str, ...]] = {
    "age": ("age",),
    "age_group": ("age_group",),
    "sex": ("sex", "gender"),
    "location": ("location",),
    "language": ("language",),
    "category": ("category", "issue"),
    "narrative": ("narrative", "description"),
    "is_reporter": ("is_reporter",),
}
#: Consent flag → results keys holding a yes/no answer.
DEFAULT_CONSENT_KEYS: Mapping[str, tuple[str, ...]] = {
    "share": ("consent", "consent_share"),
    "contact": ("consent_contact",),
}
#: Results keys naming the chatbot's case id (for idempotency).
DEFAULT_CASE_ID_KEYS = ("case_id",)
#: Where a value is free text, RapidPro's category says nothing ("All Responses").
FREE_TEXT = frozenset({"narrative", "age"})
#: Categories RapidPro gives answers it did not sort: the value is the answer.
GENERIC_CATEGORIES = frozenset({"", "all responses", "other", "has text", "has number",
                                "success", "failure"})
#: Fields a routing-only start also carries: alone, they do not make a case.
ROUTING_ONLY = frozenset({"location", "language"})

SHORT = validate.Length(min=1, max=120)


class IntakeSchema(Schema):
    """What a helpline case is made of; every field optional, unknown ones refused."""

    class Meta:
        unknown = RAISE

    age = fields.Integer(validate=validate.Range(min=0, max=120),
                         metadata={"description": "The client's age in years"})
    age_group = fields.String(validate=validate.Length(min=1, max=32),
                              metadata={"description": "When the exact age is not known"})
    sex = fields.String(validate=SHORT, metadata={
        "description": "Mapped to the site's category id (`[helpline.case.sex]`)"})
    location = fields.String(validate=SHORT, metadata={
        "description": "Mapped to the site's location id; also routes the case"})
    language = fields.String(validate=validate.Length(min=2, max=35))
    category = fields.String(validate=SHORT, metadata={
        "description": "The issue; mapped to the site's case category id"})
    narrative = fields.String(validate=validate.Length(min=1, max=10_000))
    consent = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=32)),
                          values=fields.Boolean(), metadata={
                              "description": "Consent flags, e.g. {\"share\": true}"})
    is_reporter = fields.Boolean(metadata={
        "description": "The client is also the reporter (default true)"})


@dataclass(frozen=True)
class IntakeSettings:
    """A site's ``[intake]`` table: which results keys hold what, which consent is needed."""

    keys: Mapping[str, tuple[str, ...]]
    consent_keys: Mapping[str, tuple[str, ...]]
    case_id_keys: tuple[str, ...]
    required_consent: tuple[str, ...]


class _SettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    keys = fields.Dict(keys=fields.String(validate=validate.OneOf(list(DEFAULT_KEYS))),
                       values=fields.List(fields.String()), load_default=dict)
    consent = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                          load_default=dict)
    case_id = fields.List(fields.String(), load_default=lambda: list(DEFAULT_CASE_ID_KEYS))
    required_consent = fields.List(fields.String(), load_default=list)


def settings_for(site: Site) -> IntakeSettings:
    """The site's intake settings over our defaults; a bad table is the operator's 500."""
    try:
        raw = _SettingsSchema().load(dict(site.intake or {}))
    except ValidationError as exc:
        raise ApiError(500, "site_misconfigured",
                       f"{site.source}: intake: {sorted(exc.messages)}") from None
    keys = {**DEFAULT_KEYS, **{k: tuple(v) for k, v in raw["keys"].items()}}
    consent = {**DEFAULT_CONSENT_KEYS, **{k: tuple(v) for k, v in raw["consent"].items()}}
    return IntakeSettings(keys=keys, consent_keys=consent, case_id_keys=tuple(raw["case_id"]),
                          required_consent=tuple(raw["required_consent"]))


def check_settings(site: Site) -> list[str]:
    """Problems with a site's ``[intake]`` table, for start-up and ``sites check``."""
    try:
        _SettingsSchema().load(dict(site.intake or {}))
    except ValidationError as exc:
        return [f"intake.{key}: {message}" for key, message in sorted(exc.messages.items())]
    return []


# ---- reading the intake --------------------------------------------------------------

def _result(results: Mapping[str, Any], key: str, free_text: bool) -> Any:
    """One result's answer: RapidPro's category when it sorted the answer, else the value."""
    item = results.get(key)
    if not isinstance(item, Mapping):
        return item
    value, category = item.get("value"), item.get("category")
    if not free_text and isinstance(category, str) \
            and category.strip().casefold() not in GENERIC_CATEGORIES:
        return category
    return value


def _from_results(results: Mapping[str, Any], settings: IntakeSettings,
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """Intake fields found in ``results``, and the results key each came from."""
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, keys in settings.keys.items():
        for key in keys:
            value = _result(results, key, name in FREE_TEXT)
            if value not in (None, ""):
                raw[name], sources[name] = _normalise(value), f"results.{key}"
                break
    consent: dict[str, Any] = {}
    for flag, keys in settings.consent_keys.items():
        for key in keys:
            value = _result(results, key, False)
            if value not in (None, ""):
                consent[flag] = _normalise(value)
                sources[f"consent.{flag}"] = f"results.{key}"
                break
    if consent:
        raw["consent"] = consent
    return raw, sources


def _normalise(value: Any) -> Any:
    """RapidPro sends every answer as text: trim it, lowercase yes/no, "13.0" is 13."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.casefold() in {"yes", "no", "true", "false", "y", "n"}:
        return text.casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def wants_case(body: Mapping[str, Any], site: Site) -> bool:
    """A start opens a case when it says so (``intake``) or its results carry intake
    beyond the routing fields (a location alone is how any start is routed)."""
    if body.get("intake") is not None:
        return True
    raw, _ = _from_results(body.get("results") or {}, settings_for(site))
    return bool(set(raw) - ROUTING_ONLY)


def read_intake(body: Mapping[str, Any], site: Site) -> dict[str, Any]:
    """The validated intake of a request body: results first, explicit ``intake`` over them.

    Raises 400 naming each bad field as the caller sent it (``intake.age`` or
    ``results.child_age``), and 422 ``consent_required`` when the site needs a consent
    flag the intake does not give.
    """
    settings = settings_for(site)
    raw, sources = _from_results(body.get("results") or {}, settings)
    explicit = body.get("intake") or {}
    if not isinstance(explicit, Mapping):
        raise ApiError(400, "invalid_request", "intake must be an object",
                       {"intake": ["Not a valid mapping type."]})
    for name, value in explicit.items():
        if name == "consent" and isinstance(value, Mapping) and isinstance(raw.get("consent"),
                                                                           dict):
            raw["consent"] = {**raw["consent"], **value}
        else:
            raw[name] = value
        sources[name] = f"intake.{name}"
        if name == "consent" and isinstance(value, Mapping):
            sources.update({f"consent.{flag}": f"intake.consent.{flag}" for flag in value})
    try:
        intake = IntakeSchema().load(raw)
    except ValidationError as exc:
        errors = _named_errors(exc.messages, sources)
        raise ApiError(400, "invalid_request",
                       "invalid intake fields: " + ", ".join(sorted(errors)), errors) from None
    if not intake:
        raise ApiError(400, "invalid_request", "the case has no intake",
                       {"intake": ["send intake fields, or results with intake keys"]})
    missing = [flag for flag in settings.required_consent
               if not (intake.get("consent") or {}).get(flag)]
    if missing:
        raise ApiError(422, "consent_required", "the site needs consent to open a case",
                       {sources.get(f"consent.{flag}", f"intake.consent.{flag}"):
                        ["consent is required to share this with the helpline"]
                        for flag in missing})
    return intake


def _named_errors(messages: Mapping[str, Any], sources: Mapping[str, str]) -> dict[str, list]:
    """Validation messages keyed by the field the caller sent. Messages name rules, never
    quote values, so they are safe to return and to log."""
    named: dict[str, list] = {}
    for name, problem in messages.items():
        if name == "consent" and isinstance(problem, Mapping):
            for flag, inner in problem.items():
                flat = inner.get("value", inner) if isinstance(inner, Mapping) else inner
                named[sources.get(f"consent.{flag}", f"intake.consent.{flag}")] = \
                    flat if isinstance(flat, list) else [str(flat)]
            continue
        named[sources.get(name, f"intake.{name}")] = \
            problem if isinstance(problem, list) else [str(problem)]
    return named


#: ``cases.external_id``.
MAX_CASE_ID_LENGTH = 200


def chatbot_case_id(body: Mapping[str, Any], site: Site | None,
                    idempotency_key: str | None) -> str | None:
    """The chatbot's id for the case: explicit, a results key, the run, the Idempotency-Key.

    One read from ``results`` longer than its column is a 400 naming it; a long
    Idempotency-Key becomes its stable digest."""
    if body.get("case_id"):
        return str(body["case_id"])
    results = body.get("results") or {}
    keys: Sequence[str] = settings_for(site).case_id_keys if site else DEFAULT_CASE_ID_KEYS
    for key in keys:
        value = _result(results, key, True)
        if value not in (None, ""):
            text = str(value)
            if len(text) > MAX_CASE_ID_LENGTH:
                where = f"results.{key}.value" if isinstance(results.get(key), Mapping) \
                    else f"results.{key}"
                raise ApiError(400, "invalid_request", f"invalid fields: {where}",
                               {where: [f"at most {MAX_CASE_ID_LENGTH} characters"]})
            return text
    run_uuid = (body.get("run") or {}).get("uuid")
    if run_uuid:
        return run_uuid
    return key_as_id(idempotency_key) if idempotency_key else None


# ---- opening and finding cases -------------------------------------------------------

def case_for_conversation(conversation: Conversation) -> Case | None:
    """The case opened with a conversation, if any (the first one)."""
    return db.session.execute(
        db.select(Case).where(Case.conversation_id == conversation.id)
        .order_by(Case.created_at).limit(1)
    ).scalar_one_or_none()


def shares_phone(site: Site) -> bool:
    """Whether the site opted in to give the helpline the client's phone number (as its
    kind declares it: ``HelplineKind.shares_phone``)."""
    return state_of().kinds[site.plugin].shares_phone(site.helpline)


def open_case(site: Site, intake: Mapping[str, Any], *, actor: str, namespace: str,
              conversation: Conversation | None = None, external_id: str | None = None,
              contact_uuid: str | None = None, urn: str | None = None) -> Case:
    """Add a pending case of ``namespace`` (its chatbot's, as a conversation's) and its
    delivery to the session; the caller commits.

    The case has its own delivery lane: a helpline slow to create cases never holds
    up the messages of the conversation it came with.
    """
    if conversation is not None:
        # Without an ORM relationship the flush does not order the two inserts: the
        # conversation's row must exist before the case's foreign key names it.
        db.session.flush()
        contact_uuid = contact_uuid or conversation.contact_uuid
        urn = urn or conversation.contact_urn
        pseudonym = conversation.client_pseudonym
    else:
        pseudonym = client_pseudonym(site.code, contact_uuid or urn, namespace)
    case = Case(
        id=new_id(),
        namespace=conversation.namespace if conversation is not None else namespace,
        external_id=external_id,
        site=site.code,
        conversation_id=conversation.id if conversation is not None else None,
        status=PENDING,
        intake=dict(intake),
        contact_uuid=contact_uuid,
        # The URN is kept only to reach the client without a contact uuid, or for a
        # site that chose to share phone numbers with its helpline.
        contact_urn=urn if (not contact_uuid or shares_phone(site)) else None,
        client_pseudonym=pseudonym,
        opened_by=actor,
    )
    db.session.add(case)
    audit(actor, "case_opened", conversation=conversation, case_id=case.id, site=site.code)
    add_delivery(site=site.code, target=HELPLINE, action="case", case_id=case.id)
    log.info("case.accepted", extra={"case_id": case.id, "site": site.code,
                                     "conversation_id": case.conversation_id})
    return case
