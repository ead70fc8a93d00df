"""Just enough of RapidPro's expression language (goflow's "excellent") to evaluate the
templates of our flow export with sample values, the way mailroom would.

Templates: ``@path.to.value``, ``@(expression)`` and ``@@`` (a literal ``@``).
Expressions: context paths, string and number literals, ``&`` (concatenation) and
``+`` (addition), and the functions the export uses (``json``, ``object``,
``default``, ``url_encode``). Anything else raises :class:`Unsupported`, and a path the
context lacks raises :class:`Missing`: a test then fails instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
TOKEN = re.compile(r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>\d+(?:\.\d+)?)|"""
                   r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|"""
                   r"""(?P<op>[(),&+]))""")


class Missing(KeyError):
    """A path the context does not have."""


class Unsupported(ValueError):
    """Syntax or a function this evaluator does not know."""


def lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part.lower() in value:
            value = value[part.lower()]
        else:
            raise Missing(path)
    return value


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return str(value)


def _number(value: Any) -> float:
    try:
        return float(as_text(value))
    except ValueError as exc:
        raise Unsupported(f"not a number: {value!r}") from exc


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value in (None, "", [], {}) else value


class _Parser:
    def __init__(self, source: str, context: Mapping[str, Any]) -> None:
        self.tokens = []
        pos = 0
        while pos < len(source):
            if source[pos:].strip() == "":
                break
            match = TOKEN.match(source, pos)
            if not match:
                raise Unsupported(f"cannot read {source[pos:pos + 20]!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        self.pos = 0
        self.context = context

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, op: str | None = None):
        token = self.peek()
        if op is not None and token != ("op", op):
            raise Unsupported(f"expected {op!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.expression()
        if self.pos != len(self.tokens):
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return value

    def expression(self) -> Any:
        value = self.term()
        while self.peek() in (("op", "&"), ("op", "+")):
            _, op = self.take()
            right = self.term()
            if op == "&":
                value = as_text(value) + as_text(right)
            else:
                total = _number(value) + _number(right)
                value = int(total) if total.is_integer() else total
        return value

    def term(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return int(text) if text.isdigit() else float(text)
        if kind == "op" and text == "(":
            value = self.expression()
            self.take(")")
            return value
        if kind != "name":
            raise Unsupported(f"unexpected {text!r}")
        if self.peek() == ("op", "("):
            return self.call(text.lower())
        return lookup(self.context, text)

    def call(self, name: str) -> Any:
        self.take("(")
        if name == "default":  # default() turns a missing path into its fallback
            try:
                value = self.expression()
            except Missing:
                depth = 0
                while True:  # skip the rest of the first argument
                    token = self.take()
                    if token == ("op", "("):
                        depth += 1
                    elif token == ("op", ")"):
                        depth -= 1
                    elif token == ("op", ",") and depth == 0:
                        self.pos -= 1
                        break
                value = None
            self.take(",")
            fallback = self.expression()
            self.take(")")
            return _default(value, fallback)
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.expression())
            while self.peek() == ("op", ","):
                self.take(",")
                args.append(self.expression())
        self.take(")")
        if name == "json":
            (value,) = args
            return json.dumps(value)
        if name == "object":
            if len(args) % 2:
                raise Unsupported("object() needs key, value pairs")
            return {as_text(args[i]): args[i + 1] for i in range(0, len(args), 2)}
        if name == "url_encode":
            (value,) = args
            return quote(as_text(value), safe="")
        raise Unsupported(f"function {name}()")


def evaluate_expression(source: str, context: Mapping[str, Any]) -> Any:
    return _Parser(source, context).parse()


def _closing(template: str, start: int) -> int:
    """The index just past the ``)`` closing the ``(`` at ``start``."""
    depth, pos, in_string = 0, start, False
    while pos < len(template):
        char = template[pos]
        if in_string:
            if char == "\\":
                pos += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise Unsupported(f"unclosed expression in {template!r}")


def evaluate_template(template: str, context: Mapping[str, Any]) -> str:
    out, pos = [], 0
    while pos < len(template):
        at = template.find("@", pos)
        if at < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:at])
        rest = template[at + 1:]
        if rest.startswith("@"):
            out.append("@")
            pos = at + 2
        elif rest.startswith("("):
            end = _closing(template, at + 1)
            out.append(as_text(evaluate_expression(template[at + 2:end - 1], context)))
            pos = end
        elif (match := IDENT.match(rest)) and match.group(0).split(".")[0].lower() in context:
            out.append(as_text(lookup(context, match.group(0))))
            pos = at + 1 + match.end()
        else:  # an @ that starts no expression (an e-mail address) stays as it is
            out.append("@")
            pos = at + 1
    return "".join(out)


def references(template: str) -> set[str]:
    """The context paths a template reads (``results.location.value``, ``fields.x``)."""
    found = set()
    for match in re.finditer(r"@\(?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+)", template):
        found.add(match.group(1).lower())
    for expression in re.finditer(r"@\(", template):
        end = _closing(template, expression.start() + 1)
        inner = re.sub(r'"(?:[^"\\]|\\.)*"', '""', template[expression.start() + 2:end - 1])
        for name in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+", inner):
            found.add(name.group(0).lower())
    return found
