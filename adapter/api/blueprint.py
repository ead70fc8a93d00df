"""flask-smorest's Blueprint, documenting invalid arguments as the 400 we answer.

webargs reports a body that fails its schema as 422; this API answers 400 for a
malformed request (and keeps 422 for valid JSON it cannot use, such as ``unroutable``),
so the parser raises 400 and the OpenAPI document says so.

Before any schema sees them, every string of a JSON body or query string (keys and
values, at any depth) is checked for characters no database column can store (NUL,
an unpaired surrogate): a 400 naming each such field (``results.risk.value``), where
they would otherwise fail at the database, long after validation.
"""

from __future__ import annotations

from functools import cache

import marshmallow as ma
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser

from .fields import UNSTORABLE_MESSAGE, unstorable_paths


@cache
def schema_instance(schema: type[ma.Schema]) -> ma.Schema:
    """One instance per schema class: building one deep-copies its fields (a quarter of a
    millisecond, on every request otherwise). Our schemas keep no per-call state."""
    return schema()


class ArgumentsParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _get_schema(self, argmap, req) -> ma.Schema:
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return schema_instance(argmap)
        return super()._get_schema(argmap, req)

    def _load_location_data(self, *, schema: ma.Schema, req, location: str):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if location == "json" and data is not core.missing:
            bad = unstorable_paths(data)
        elif location == "query":
            bad = unstorable_paths({key: values if len(values) > 1 else values[0]
                                    for key, values in req.args.lists()})
        else:
            bad = []
        if bad:
            # Raised as a schema error: answered like one (400 invalid_request, by field).
            raise ma.ValidationError({path: [UNSTORABLE_MESSAGE] for path in bad})
        return data


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ArgumentsParser()
