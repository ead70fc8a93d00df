"""Fault switches shared by the sandbox peers.

A test flips a switch over the control API (``POST /_sandbox/faults``) to make a peer
misbehave the way real ones do — down, slow, a burst of 5xx, sudden 401s, 429
throttling — and then checks that the adapter copes. Counters (``fail_next`` and the
like) are consumed one request at a time, so a test can fail exactly N calls and know
the N+1th succeeds.

Switches (all reset by ``POST /_sandbox/reset``):

=========================  ==========================================================
``down: bool``             503 + ``Connection: close`` to every non-control request.
``slow: float``            Sleep this many seconds before answering any request.
``fail_next: int``         The next N targeted requests answer ``fail_status``.
``fail_status: int``       Status for ``fail_next`` (default 503).
``retry_after: number``    ``Retry-After`` seconds sent with ``fail_next`` and 429s.
``fail_status_permanent``  Every targeted request answers this status until cleared
                           (``null``/``0``), e.g. 400 for a permanent rejection.
``unauthorized_next: int`` The next N targeted requests answer 401.
``throttle_next: int``     The next N targeted requests answer 429 + ``Retry-After``.
``fail_path: str``         Narrow "targeted" to paths containing this string.
=========================  ==========================================================

Which paths are "targeted" by default is each peer's choice (the helpline: ``msg/``;
RapidPro: its API endpoints), as is the error body, so the switches speak each peer's dialect.
A peer may also declare extra switches of its own (``extra`` specs), which this module
validates and stores but leaves to the peer to interpret.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, jsonify

#: name -> (accepted types, default). ``None`` in the types means "may be null".
Spec = dict[str, tuple[tuple[type | None, ...], Any]]

COMMON_SPEC: Spec = {
    "down": ((bool,), False),
    "slow": ((int, float), 0.0),
    "fail_next": ((int,), 0),
    "fail_status": ((int,), 503),
    "retry_after": ((int, float, None), None),
    "fail_status_permanent": ((int, None), None),
    "unauthorized_next": ((int,), 0),
    "throttle_next": ((int,), 0),
    "fail_path": ((str, None), None),
}

#: Builds a peer-specific JSON error body from (status, message).
ErrorBody = Callable[[int, str], dict]


def throttle_message(wait: int) -> str:
    """Django REST framework's throttle text, which RapidPro returns as ``detail``."""
    unit = "second" if wait == 1 else "seconds"
    return f"Request was throttled. Expected available in {wait} {unit}."


class FaultError(ValueError):
    """A fault update named an unknown switch or gave it a value of the wrong type."""


class Faults:
    """Thread-safe fault switches; :meth:`intercept` turns them into responses."""

    def __init__(
        self, error_body: ErrorBody, targets: Callable[[str], bool], extra: Spec | None = None
    ) -> None:
        self._spec: Spec = {**COMMON_SPEC, **(extra or {})}
        self._error_body = error_body
        self._targets = targets
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Put every switch back to its default (healthy) value."""
        with self._lock:
            self._values = {name: default for name, (_, default) in self._spec.items()}

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and apply ``changes`` all-or-nothing; return the new switch values."""
        for name, value in changes.items():
            self._validate(name, value)
        with self._lock:
            self._values.update(changes)
            return dict(self._values)

    def snapshot(self) -> dict[str, Any]:
        """Current switch values (a copy)."""
        with self._lock:
            return dict(self._values)

    def get(self, name: str) -> Any:
        """One switch's current value."""
        with self._lock:
            return self._values[name]

    def take(self, name: str) -> bool:
        """Consume one unit of counter ``name``; False when it is already zero."""
        with self._lock:
            if self._values.get(name, 0) > 0:
                self._values[name] -= 1
                return True
            return False

    def intercept(self, path: str) -> Response | None:
        """The fault response for a request to ``path``, or None to let it through.

        ``down`` and ``slow`` hit every request; the counters only hit targeted paths
        (the peer's ``targets``, or those containing ``fail_path`` when it is set) so a
        test can fail, say, message deliveries while token calls keep working.
        """
        values = self.snapshot()
        if values["down"]:
            response = self._error(503, "service unavailable (sandbox fault: down)")
            response.headers["Connection"] = "close"
            return response
        if values["slow"]:
            time.sleep(float(values["slow"]))
        targeted = values["fail_path"] in path if values["fail_path"] else self._targets(path)
        if not targeted:
            return None
        return self._targeted_fault(values)

    def _targeted_fault(self, values: Mapping[str, Any]) -> Response | None:
        """Apply the first counter or permanent status that fires, most severe first."""
        retry_after = values["retry_after"]
        if values["fail_status_permanent"]:
            return self._error(values["fail_status_permanent"], "rejected (sandbox fault)")
        if self.take("throttle_next"):
            wait = math.ceil(retry_after) if retry_after is not None else 1
            return self._error(429, throttle_message(wait), retry_after=wait)
        if self.take("unauthorized_next"):
            return self._error(401, "unauthorized (sandbox fault)")
        if self.take("fail_next"):
            return self._error(values["fail_status"], "failed (sandbox fault)", retry_after)
        return None

    def _error(self, status: int, message: str, retry_after: float | None = None) -> Response:
        response = jsonify(self._error_body(status, message))
        response.status_code = status
        if retry_after is not None:
            response.headers["Retry-After"] = str(math.ceil(retry_after))
        return response

    def _validate(self, name: str, value: Any) -> None:
        if name not in self._spec:
            known = ", ".join(sorted(self._spec))
            raise FaultError(f"unknown fault switch {name!r} (known: {known})")
        types, _ = self._spec[name]
        if value is None and None in types:
            return
        concrete = tuple(t for t in types if t is not None)
        # bool is an int subclass: only accept it where bool is explicitly allowed.
        if isinstance(value, bool) and bool not in concrete:
            raise FaultError(f"fault switch {name!r} must not be a boolean")
        if not isinstance(value, concrete):
            raise FaultError(f"fault switch {name!r} has the wrong type")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise FaultError(f"fault switch {name!r} must not be negative")
