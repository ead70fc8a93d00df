"""Sites (one helpline per country): loaded from TOML files, validated, and routed to."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from .hours import OPENING_PLACEHOLDERS, Hours, HoursError, parse_hours

log = logging.getLogger(__name__)

ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
CHATBOT_EVENTS = (
    "message",
    "assigned",
    "delivered",
    "closed",
    "no_counsellor",
    "still_waiting",
    "case_created",
    "case_failed",
    "after_hours",
)
#: The child-facing texts a site may give per language (``[texts.<language>]``): one per
#: event the child hears about. ``after_hours`` is the opening-hours event's.
TEXT_KEYS = ("assigned", "no_counsellor", "still_waiting", "closed", "after_hours")
#: An ISO 639-3 code as RapidPro keeps a contact's language: three lowercase letters.
LANGUAGE_CODE = re.compile(r"^[a-z]{3}$")
#: [chatbot.weni] keys that stand for the default language's texts (before [texts] existed).
WENI_TEXT_KEYS = {"assigned": "assigned_text", "no_counsellor": "no_counsellor_text",
                  "still_waiting": "still_waiting_text", "after_hours": "after_hours_text"}


class SiteConfigError(ValueError):
    """A site file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class RapidProSettings:
    base_url: str
    token: str | None
    message_mode: str = "broadcasts"  # or "flow_starts"
    params_field: str = "params"  # "extra" for older deployments
    counsellor_prefix: str = "{counsellor}: "
    flows: Mapping[str, str] = field(default_factory=dict)  # event → flow uuid
    rate_per_hour: int = 3000
    ca_bundle: str | None = None  # a private CA's certificates (PEM), for a self-hosted one

    @property
    def api_root(self) -> str:
        """``…/api/v2``, whichever form the site gave: the workspace root
        (``https://host/``) or the API root as RapidPro's own docs print it
        (``https://host/api/v2/``); no segment doubled, none dropped."""
        root = self.base_url.rstrip("/")
        if root.endswith("/api/v2"):
            return root
        if root.endswith("/api"):
            return root + "/v2"
        return root + "/api/v2"

    @property
    def org_key(self) -> str:
        """What RapidPro throttles by: the org, which the token stands for."""
        import hashlib

        return hashlib.sha256(f"{self.base_url}|{self.token}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WeniSettings:
    """``[chatbot.weni]``: this site as a Weni generic ticketer (the ``weni_ticketer``
    dialect). Topics and queues route an open here; the secret signs our callbacks."""

    topics: tuple[str, ...] = ()  # topic uuids (lowercase)
    queues: tuple[str, ...] = ()  # queue uuids (lowercase)
    webhook_secret: str | None = None
    reopen: bool = True  # False: a reopen is answered 422 reopen_not_supported
    #: Told to the child (as a message from the system) when a counsellor takes the
    #: conversation, and when nobody did in time; empty: not sent.
    assigned_text: str = ""
    no_counsellor_text: str = ("No counsellor is free right now. If you are in danger, "
                               "call 116.")
    #: Told at each ``still_waiting`` event ([policies] still_waiting_every); "": not sent.
    still_waiting_text: str = ("You are still in the queue: a counsellor will be with you "
                               "as soon as one is free.")
    #: Told when a child escalates while the site is closed ([hours]); its placeholders
    #: (adapter.hours.OPENING_PLACEHOLDERS) give the next opening in the site's wall time. "": not
    #: sent. With no opening ahead at all, ``no_counsellor_text`` is told instead.
    after_hours_text: str = ("The helpline is closed now. It opens again on {weekday} at "
                             "{time} ({timezone}). If you are in danger, call 116.")


def _after_hours_placeholders(text: str) -> None:
    """A text whose placeholders the event can fill, else refused at load (never a
    KeyError at the moment a child needs the message)."""
    import string

    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValidationError(f"not a valid text template: {exc}") from exc
    unknown = [name for name in names if name not in OPENING_PLACEHOLDERS]
    if unknown:
        raise ValidationError(f"unknown placeholder {{{unknown[0]}}} (known: "
                              + ", ".join("{" + n + "}" for n in OPENING_PLACEHOLDERS) + ")")


@dataclass(frozen=True)
class Texts:
    """``[texts]``: what the child is told at each event, per language. A language
    without a text falls back to the site's default language, then to no text; the gaps
    are not errors at load but are reported by ``sites check`` (:meth:`gaps`)."""

    default_language: str = "eng"
    #: The languages the site serves: ``[texts] languages``, else those with a table.
    languages: tuple[str, ...] = ("eng",)
    by_language: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def text_for(self, key: str, language: str | None) -> tuple[str | None, str | None]:
        """The text for ``key`` in ``language`` (or the fallback) and the language it is
        in; ``(None, None)`` when the site has none."""
        for candidate in (language, self.default_language):
            text = self.by_language.get(candidate or "", {}).get(key)
            if text:
                return text, candidate
        return None, None

    def gaps(self) -> list[str]:
        """One line per text a served language lacks that another language has, and the
        fallback the child gets instead."""
        given = {key for table in self.by_language.values() for key in table}
        lines = []
        for language in self.languages:
            table = self.by_language.get(language, {})
            for key in (k for k in TEXT_KEYS if k in given and k not in table):
                fallback = self.by_language.get(self.default_language, {}).get(key)
                instead = f"falls back to {self.default_language}" \
                    if fallback and language != self.default_language \
                    else "no fallback: the event carries no text"
                lines.append(f"texts.{language}.{key} missing ({instead})")
        return lines


@dataclass(frozen=True)
class Policies:
    assignment_timeout: int = 300
    on_no_counsellor: str = "keep_waiting"  # or "close"
    retention_days: int = 30
    # Calls in flight at once to this site's helpline, per delivery worker (a small
    # helpline must not be flooded); None: the worker's DELIVERY_CONCURRENCY.
    max_in_flight: int | None = None
    # Seconds between `still_waiting` events while a child waits for a counsellor
    # (0: never, the default): nobody waits in silence.
    still_waiting_every: int = 0
    # Seconds after a close within which a child who writes again comes back to the same
    # conversation (the counsellor sees a return) instead of starting over; 0: never.
    reopen_within: int = 0
    # Attach the conversation's transcript (pseudonyms, timestamps, attachment links) to
    # its helpline case when it closes; opt-in, and never once retention purged the text.
    transcript_to_case: bool = False


#: What WhatsApp and Telegram send a chatbot: photos, stickers (``image/webp``), voice notes
#: (``audio/ogg``), videos, and documents (PDF, text, office files).
DEFAULT_ATTACHMENT_TYPES = (
    "image/*", "audio/*", "video/*", "application/pdf", "text/plain", "application/msword",
    "application/vnd.openxmlformats-officedocument.*", "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint", "application/vnd.oasis.opendocument.*",
)
#: ``*/*``, ``image/*``, ``audio/ogg``, ``application/vnd.oasis.opendocument.*``.
_TYPE_PATTERN = re.compile(r"^(\*/\*|[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+_-]*\*?))$")
#: The most a chatbot message may carry at all (the schemas' own limit).
MAX_ATTACHMENTS_PER_MESSAGE = 10


@dataclass(frozen=True)
class RehostSettings:
    """``[attachments.rehost]``: fetch each chatbot attachment and serve it ourselves,
    for a helpline that cannot reach the chatbot's media host (``docs/attachments.md``).
    Off unless ``enabled``: by default the adapter never fetches a URL."""

    enabled: bool = False
    max_bytes: int = 10_000_000
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 3
    store: str = "directory"
    directory: str | None = None
    public_url: str | None = None  # where GET /v1/media/<site>/ is reached, ending in "/"
    expire_hours: int = 72
    #: ``host:port`` pairs that may be private addresses: tests and the local sandbox
    #: only. Logged loudly at start-up.
    unsafe_allow_private_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttachmentSettings:
    """``[attachments]``: what a chatbot message may carry to this site's helpline.

    ``allowed_types`` are MIME patterns; an attachment's type is the one the chatbot
    declared (RapidPro's ``image/jpeg:https://…``), else the one its URL's extension says.
    An attachment whose type is still unknown is accepted unless ``refuse_unknown_types``.
    """

    max_count: int = MAX_ATTACHMENTS_PER_MESSAGE
    allowed_types: tuple[str, ...] = DEFAULT_ATTACHMENT_TYPES
    refuse_unknown_types: bool = False
    rehost: RehostSettings = field(default_factory=RehostSettings)

    def refusal(self, content_type: str | None) -> str | None:
        """Why an attachment of ``content_type`` is refused here, or ``None``."""
        if not content_type:
            return "content type unknown (this site accepts only declared types)" \
                if self.refuse_unknown_types else None
        wanted = content_type.lower()
        main, _, sub = wanted.partition("/")
        for pattern in self.allowed_types:
            if pattern == "*/*":
                return None
            p_main, _, p_sub = pattern.partition("/")
            if p_main != main:
                continue
            if p_sub == "*" or (sub and (p_sub == sub or (
                    p_sub.endswith("*") and sub.startswith(p_sub[:-1])))):
                return None
        return f"content type {wanted} is not accepted at this site"


@dataclass(frozen=True)
class Routing:
    locations: tuple[str, ...] = ()
    urn_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    code: str
    name: str
    plugin: str
    helpline: Mapping[str, Any]
    routing: Routing
    policies: Policies
    rapidpro: RapidProSettings | None
    result_keys: Mapping[str, tuple[str, ...]]
    intake: Mapping[str, Any]
    source: str
    missing_secrets: tuple[str, ...] = ()
    ca_bundle: str | None = None  # the helpline's private CA (PEM); never "verify off"
    weni: WeniSettings | None = None  # [chatbot.weni]
    texts: Texts = field(default_factory=Texts)  # [texts]
    #: [hours]: when a counsellor can be reached; None: always (no table, today's way).
    hours: Hours | None = None
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)

    def verify_for(self, target: str) -> str | bool:
        """What TLS verification of calls to ``target`` trusts: the site's CA bundle for
        that side, else the system's."""
        if target == "chatbot":
            return (self.rapidpro.ca_bundle if self.rapidpro else None) or True
        return self.ca_bundle or True

    def unset_for(self, target: str) -> tuple[str, ...]:
        """The unset secrets of the table a delivery to ``target`` needs (``helpline``,
        or ``rapidpro`` for the chatbot): while any is, that side cannot be called."""
        tables = ("rapidpro.", "chatbot.") if target == "chatbot" else (target + ".",)
        return tuple(m for m in self.missing_secrets if m.startswith(tables))

    def problem_for(self, target: str) -> str | None:
        """One line saying why ``target`` cannot be delivered to, or ``None`` (no secrets)."""
        unset = self.unset_for(target)
        if not unset:
            return None
        names = ", ".join(m.split(" ", 1)[0] for m in unset)
        return f"site config incomplete: {names} unset"


# ---- file schema -------------------------------------------------------------------

class _RoutingSchema(Schema):
    locations = fields.List(fields.String(), load_default=list)
    urn_prefixes = fields.List(fields.String(), load_default=list)


class _PolicySchema(Schema):
    assignment_timeout = fields.Integer(load_default=300, validate=validate.Range(min=1))
    on_no_counsellor = fields.String(
        load_default="keep_waiting", validate=validate.OneOf(["keep_waiting", "close"])
    )
    retention_days = fields.Integer(load_default=30, validate=validate.Range(min=0))
    max_in_flight = fields.Integer(load_default=None, validate=validate.Range(min=1))
    still_waiting_every = fields.Integer(load_default=0, validate=validate.Range(min=0))
    reopen_within = fields.Integer(load_default=0, validate=validate.Range(min=0))
    transcript_to_case = fields.Boolean(load_default=False)


_HOST_PORT = validate.Regexp(r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$", error="host:port")


class _RehostSchema(Schema):
    enabled = fields.Boolean(load_default=False)
    max_bytes = fields.Integer(load_default=10_000_000,
                               validate=validate.Range(min=1, max=100_000_000))
    connect_timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=60))
    read_timeout = fields.Float(load_default=20.0, validate=validate.Range(min=0.1, max=300))
    total_timeout = fields.Float(load_default=60.0, validate=validate.Range(min=0.1, max=900))
    max_redirects = fields.Integer(load_default=3, validate=validate.Range(min=0, max=10))
    store = fields.String(load_default="directory", validate=validate.OneOf(["directory"]))
    directory = fields.String(load_default=None)
    public_url = fields.Url(load_default=None, require_tld=False)
    expire_hours = fields.Integer(load_default=72, validate=validate.Range(min=1))
    unsafe_allow_private_hosts = fields.List(fields.String(validate=_HOST_PORT),
                                             load_default=list)

    @post_load
    def _complete(self, data: dict, **_: object) -> dict:
        if data["enabled"]:
            missing = {key: ["required when enabled"] for key in ("directory", "public_url")
                       if not data[key]}
            if missing:
                raise ValidationError(missing)
        if data["public_url"] and not data["public_url"].endswith("/"):
            data["public_url"] += "/"
        return data


class _AttachmentsSchema(Schema):
    max_count = fields.Integer(load_default=MAX_ATTACHMENTS_PER_MESSAGE,
                               validate=validate.Range(min=0, max=MAX_ATTACHMENTS_PER_MESSAGE))
    allowed_types = fields.List(
        fields.String(validate=validate.Regexp(
            _TYPE_PATTERN, error="a MIME pattern in lower case: type/subtype, type/*, "
                                 "type/prefix* or */*")),
        load_default=lambda: list(DEFAULT_ATTACHMENT_TYPES))
    refuse_unknown_types = fields.Boolean(load_default=False)
    rehost = fields.Nested(_RehostSchema, load_default=lambda: _RehostSchema().load({}))


class _RapidProSchema(Schema):
    base_url = fields.Url(required=True, require_tld=False)
    token = fields.String(load_default=None)
    message_mode = fields.String(
        load_default="broadcasts", validate=validate.OneOf(["broadcasts", "flow_starts"])
    )
    params_field = fields.String(
        load_default="params", validate=validate.OneOf(["params", "extra"])
    )
    counsellor_prefix = fields.String(load_default="{counsellor}: ")
    flows = fields.Dict(
        keys=fields.String(validate=validate.OneOf(CHATBOT_EVENTS)),
        values=fields.String(),
        load_default=dict,
    )
    rate_per_hour = fields.Integer(load_default=3000, validate=validate.Range(min=1))
    ca_bundle = fields.String(load_default=None)


_UUID = validate.Regexp(r"^[0-9A-Fa-f-]{1,64}$", error="a uuid")


class _WeniSchema(Schema):
    topics = fields.List(fields.String(validate=_UUID), load_default=list)
    queues = fields.List(fields.String(validate=_UUID), load_default=list)
    webhook_secret = fields.String(load_default=None)
    reopen = fields.Boolean(load_default=True)
    assigned_text = fields.String(load_default="", validate=validate.Length(max=1000))
    no_counsellor_text = fields.String(load_default=WeniSettings.no_counsellor_text,
                                       validate=validate.Length(max=1000))
    still_waiting_text = fields.String(load_default=WeniSettings.still_waiting_text,
                                       validate=validate.Length(max=1000))
    after_hours_text = fields.String(
        load_default=WeniSettings.after_hours_text,
        validate=[validate.Length(max=1000), _after_hours_placeholders])


class _ChatbotSchema(Schema):
    weni = fields.Nested(_WeniSchema, load_default=None)


class _SiteSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$"))
    name = fields.String(required=True)
    plugin = fields.String(required=True)
    enabled = fields.Boolean(load_default=True)
    routing = fields.Nested(_RoutingSchema, load_default=lambda: _RoutingSchema().load({}))
    policies = fields.Nested(_PolicySchema, load_default=lambda: _PolicySchema().load({}))
    rapidpro = fields.Nested(_RapidProSchema, load_default=None)
    chatbot = fields.Nested(_ChatbotSchema, load_default=None)
    result_keys = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), load_default=dict
    )
    intake = fields.Dict(load_default=dict)
    # Language tables have the languages' codes as keys: checked by _load_texts.
    texts = fields.Dict(load_default=dict)
    hours = fields.Dict(load_default=None)  # read by adapter.hours.parse_hours
    attachments = fields.Nested(_AttachmentsSchema,
                                load_default=lambda: _AttachmentsSchema().load({}))
    helpline = fields.Dict(required=True)
    # TLS for a helpline behind a private CA: a PEM file of the CA's certificates.
    # Verification itself cannot be turned off.
    ca_bundle = fields.String(load_default=None)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def _resolve_env(value: Any, path: str, missing: list[str]) -> Any:
    """Replace ``${VAR}`` references by the environment's values; note the missing ones."""
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            name = match.group(1)
            if not os.environ.get(name):  # empty is unset: never a call with "" as a secret
                missing.append(f"{path} (${{{name}}})")
                return ""
            return os.environ[name]

        return ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}" if path else k, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


def load_site_file(
    path: Path, kinds: Mapping[str, Any], default_result_keys: Mapping
) -> Site | None:
    """Load and validate one site file; ``None`` if it says ``enabled = false``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SiteConfigError(f"{path}: not valid TOML: {exc}") from exc
    missing: list[str] = []
    resolved = _resolve_env(raw, "", missing)
    try:
        data = _SiteSchema().load(resolved)
    except ValidationError as exc:
        raise SiteConfigError(f"{path}: " + "; ".join(_flatten(exc.messages))) from exc
    if not data["enabled"]:
        return None
    kind = kinds.get(data["plugin"])
    if kind is None:
        raise SiteConfigError(
            f"{path}: plugin: unknown helpline kind {data['plugin']!r}"
            f" (known: {', '.join(sorted(kinds)) or 'none'})"
        )
    try:
        helpline = kind.config_schema().load(data["helpline"])
    except ValidationError as exc:
        raise SiteConfigError(
            f"{path}: " + "; ".join(_flatten(exc.messages, "helpline"))
        ) from exc
    result_keys = {k: tuple(v) for k, v in default_result_keys.items()}
    result_keys.update({k: tuple(v) for k, v in data["result_keys"].items()})
    rp = data["rapidpro"]
    for key, bundle in (("ca_bundle", data["ca_bundle"]),
                        ("rapidpro.ca_bundle", (rp or {}).get("ca_bundle"))):
        if bundle and not (Path(bundle).is_file() and os.access(bundle, os.R_OK)):
            raise SiteConfigError(f"{path}: {key}: no readable file at {bundle!r}")
    weni = (data["chatbot"] or {}).get("weni")
    raw_secret = ((raw.get("chatbot") or {}).get("weni") or {}).get("webhook_secret")
    if weni is not None and raw_secret and not ENV_REF.fullmatch(str(raw_secret)):
        raise SiteConfigError(f"{path}: chatbot.weni.webhook_secret: must be a ${{ENV_VAR}} "
                              "reference, never the secret itself")
    if weni is not None and not weni["webhook_secret"] and not any(
            m.startswith("chatbot.weni.webhook_secret") for m in missing):
        raise SiteConfigError(f"{path}: chatbot.weni.webhook_secret: required (as ${{ENV}})")
    try:
        hours = parse_hours(data["hours"]) if data["hours"] is not None else None
    except HoursError as exc:
        raise SiteConfigError(f"{path}: {exc}") from exc
    return Site(
        code=data["code"],
        name=data["name"],
        plugin=data["plugin"],
        helpline=MappingProxyType(helpline),
        routing=Routing(
            locations=tuple(v.casefold() for v in data["routing"]["locations"]),
            urn_prefixes=tuple(data["routing"]["urn_prefixes"]),
        ),
        policies=Policies(**data["policies"]),
        rapidpro=RapidProSettings(**rp) if rp else None,
        result_keys=MappingProxyType(result_keys),
        intake=MappingProxyType(data["intake"]),
        source=str(path),
        missing_secrets=tuple(missing),
        ca_bundle=data["ca_bundle"],
        attachments=AttachmentSettings(
            max_count=data["attachments"]["max_count"],
            allowed_types=tuple(data["attachments"]["allowed_types"]),
            refuse_unknown_types=data["attachments"]["refuse_unknown_types"],
            rehost=_rehost(data["code"], data["attachments"]["rehost"])),
        weni=WeniSettings(
            topics=tuple(t.lower() for t in weni["topics"]),
            queues=tuple(q.lower() for q in weni["queues"]),
            webhook_secret=weni["webhook_secret"] or None, reopen=weni["reopen"],
            assigned_text=weni["assigned_text"],
            no_counsellor_text=weni["no_counsellor_text"],
            still_waiting_text=weni["still_waiting_text"],
            after_hours_text=weni["after_hours_text"]) if weni is not None else None,
        texts=_load_texts(path, data["texts"], weni),
        hours=hours,
    )


def _load_texts(path: Path, raw: Mapping[str, Any], weni: Mapping[str, Any] | None) -> Texts:
    """``[texts]``, checked key by key (its tables are named by language codes). The
    ``[chatbot.weni]`` texts fill the default language's gaps: a site written before
    ``[texts]`` keeps what its child was told."""
    settings = ("default_language", "languages")

    def fail(key: str, problem: str) -> SiteConfigError:
        return SiteConfigError(f"{path}: texts.{key}: {problem}")

    default = raw.get("default_language", "eng")
    if not isinstance(default, str) or not LANGUAGE_CODE.match(default):
        raise fail("default_language", "an ISO 639-3 code (three lowercase letters)")
    listed = raw.get("languages")
    if listed is not None and not (isinstance(listed, list) and all(
            isinstance(code, str) and LANGUAGE_CODE.match(code) for code in listed)):
        raise fail("languages", "a list of ISO 639-3 codes (three lowercase letters)")
    tables: dict[str, dict[str, str]] = {}
    for language, table in raw.items():
        if language in settings:
            continue
        if not LANGUAGE_CODE.match(language):
            raise fail(language, "not an ISO 639-3 code (three lowercase letters) nor one "
                       f"of {', '.join(settings)}")
        if not isinstance(table, Mapping):
            raise fail(language, "a table of texts")
        for key, text in table.items():
            if key not in TEXT_KEYS:
                raise fail(f"{language}.{key}", f"unknown text (known: {', '.join(TEXT_KEYS)})")
            if not isinstance(text, str) or not text.strip() or len(text) > 1000:
                raise fail(f"{language}.{key}", "a text of 1 to 1000 characters")
            if key == "after_hours":
                try:
                    _after_hours_placeholders(text)
                except ValidationError as exc:
                    raise fail(f"{language}.{key}", " ".join(exc.messages)) from exc
        tables[language] = dict(table)
    if weni is not None:
        own = tables.setdefault(default, {})
        for key, setting in WENI_TEXT_KEYS.items():
            if weni[setting] and key not in own:
                own[key] = weni[setting]
    languages = tuple(listed) if listed is not None else tuple(
        dict.fromkeys([default, *(code for code in tables if tables[code])]))
    return Texts(default_language=default, languages=languages,
                 by_language=MappingProxyType({code: MappingProxyType(table)
                                               for code, table in tables.items() if table}))


def _rehost(code: str, table: Mapping[str, Any]) -> RehostSettings:
    settings = RehostSettings(**{**table, "unsafe_allow_private_hosts": tuple(
        table["unsafe_allow_private_hosts"])})
    if settings.enabled and settings.unsafe_allow_private_hosts:
        log.warning("site.rehost_private_hosts_allowed",
                    extra={"site": code, "count": len(settings.unsafe_allow_private_hosts)})
    return settings


class SiteRegistry:
    """The sites of this deployment, and how a start is routed to one of them."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self._sites: dict[str, Site] = {}
        for site in sites:
            if site.code in self._sites:
                raise SiteConfigError(
                    f"{site.source}: code: {site.code!r} is already used by "
                    f"{self._sites[site.code].source}"
                )
            self._sites[site.code] = site

    def __iter__(self):
        return iter(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def get(self, code: str | None) -> Site | None:
        return self._sites.get(code) if code else None

    def route(
        self, *, site: str | None, location: str | None, urn: str | None
    ) -> tuple[Site | None, list[str]]:
        """The site for a start: explicit code, else location, else URN prefix.

        Returns the site (or None) and what was tried, for a clear ``unroutable`` error.
        """
        tried: list[str] = []
        if site:
            tried.append(f"site={site!r}")
            return self._sites.get(site), tried
        if location:
            tried.append(f"location={location!r}")
            wanted = location.strip().casefold()
            for candidate in self._sites.values():
                if wanted in candidate.routing.locations:
                    return candidate, tried
        if urn:
            scheme = urn.split(":", 1)[0]
            tried.append(f"urn scheme {scheme!r} and prefix")
            best: tuple[int, Site] | None = None
            for candidate in self._sites.values():
                for prefix in candidate.routing.urn_prefixes:
                    if urn.startswith(prefix) and (best is None or len(prefix) > best[0]):
                        best = (len(prefix), candidate)
            if best:
                return best[1], tried
        if not tried:
            tried.append("no site, location or URN given")
        return None, tried


def load_sites(
    directory: str | Path, kinds: Mapping[str, Any], default_result_keys: Mapping
) -> SiteRegistry:
    """Every ``*.toml`` in ``directory``; a missing folder or a bad file fails start-up."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SiteConfigError(f"{folder}: the countries folder does not exist")
    sites = []
    for path in sorted(folder.glob("*.toml")):
        site = load_site_file(path, kinds, default_result_keys)
        if site is None:
            continue
        if site.missing_secrets:  # one line per site; `sites check` names each variable
            log.warning("site.secrets_missing",
                        extra={"site": site.code, "count": len(site.missing_secrets)})
        sites.append(site)
    return SiteRegistry(sites)
