"""The ``[helpline]`` table of an OpenCHS site: where the helpline is, how we log in."""

from __future__ import annotations

from marshmallow import Schema, fields, post_load, validate

from plugins.config import url_or_unset

KIND = "openchs"

#: What we send as ``from``: the client's pseudonym, unless the site decides otherwise.
ADDRESS_MODES = ("pseudonym", "contact")


class CaseMappingSchema(Schema):
    """The site's own category ids: they differ per OpenCHS installation."""

    sex = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    location = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    category = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    default_category = fields.String(load_default=None)
    priority = fields.Integer(load_default=2, validate=validate.OneOf([1, 2, 3]))
    gbv_related = fields.Integer(load_default=0, validate=validate.OneOf([0, 1]))
    #: Pseudonymous by default: the client's phone number only if the site opts in.
    share_phone = fields.Boolean(load_default=False)
    #: Where a closed chat's transcript goes ([policies] transcript_to_case): the case's
    #: ``narrative`` (after what the child told the chatbot) or its ``plan``.
    transcript_field = fields.String(load_default="narrative",
                                     validate=validate.OneOf(["narrative", "plan"]))


class OpenCHSConfig(Schema):
    """Validated at start-up; a wrong key fails with the file and the key named."""

    base_url = fields.String(required=True, validate=url_or_unset, metadata={
        "description": "The helpline API base, e.g. https://host/helpline/api/"})
    # Secrets come from ${ENV} refs; an unset one is reported by `sites check`, not here.
    username = fields.String(required=True)
    password = fields.String(required=True)
    #: The incumbent gateway sent "WENI"; helpline dashboards filter on it (``src``).
    channel = fields.String(load_default="WENI", validate=validate.Length(min=1, max=32))
    mime = fields.String(load_default="text/plain")
    address = fields.String(load_default="pseudonym", validate=validate.OneOf(ADDRESS_MODES))
    opening_notice = fields.String(load_default=None)
    #: Told to the counsellor when a child comes back after a close ({previous}: the
    #: earlier session's id, where the return is a new session).
    return_notice = fields.String(load_default="[the child has come back to this conversation]")
    closing_notice = fields.String(load_default="[conversation closed by the client]")
    timeout_notice = fields.String(
        load_default="[conversation closed: no counsellor answered in time]")
    # The helpline logs in to our callback token endpoint with these.
    callback_username = fields.String(load_default=None)
    callback_password = fields.String(load_default=None)
    callback_token_ttl = fields.Integer(load_default=24 * 3600,
                                        validate=validate.Range(min=60))
    case = fields.Nested(CaseMappingSchema, load_default=lambda: CaseMappingSchema().load({}))

    @post_load
    def _trailing_slash(self, data: dict, **_: object) -> dict:
        # ``msg/`` and the case resources are joined to the base: it must end in "/".
        if data["base_url"] and not data["base_url"].endswith("/"):
            data["base_url"] += "/"
        return data


def validate_config(helpline: dict) -> list[str]:
    """Problems that involve several keys (the schema checks one key at a time)."""
    problems = []
    has_user = bool(helpline.get("callback_username"))
    has_password = bool(helpline.get("callback_password"))
    if has_user != has_password:
        missing = "callback_password" if has_user else "callback_username"
        problems.append(f"helpline.{missing}: required with the other callback credential")
    return problems
