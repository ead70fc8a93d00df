"""flask-smorest's Blueprint, documenting invalid arguments as the 400 we answer.

webargs reports a body that fails its schema as 422; this API answers 400 for a
malformed request (and keeps 422 for valid JSON it cannot use, such as ``unroutable``),
so the parser raises 400 and the OpenAPI document says so.
"""

from __future__ import annotations

from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser


class ArgumentsParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ArgumentsParser()
