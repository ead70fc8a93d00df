"""What both sandbox peers share: recorded calls, runtime config and the control API.

Every peer keeps an in-memory, thread-safe log of what it received and did
(:class:`Records`), fault switches (:mod:`adapter.sandbox.faults`) and a config that
tests may change at runtime. :func:`install_control_api` exposes all of it under
``/_sandbox/`` without authentication — these are test doubles, never deployed.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from adapter.sandbox.faults import FaultError, Faults

CONTROL_PREFIX = "/_sandbox"


class Records:
    """Append-only lists of recorded items, one list per kind, safe across threads.

    Items are stored with a global ``seq`` and a wall-clock ``time`` so tests can
    check arrival order across kinds.
    """

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = tuple(kinds)
        self._lock = threading.Lock()
        self._items: dict[str, list[dict]] = {kind: [] for kind in self.kinds}
        self._seq = 0

    def add(self, kind: str, item: Mapping[str, Any]) -> int:
        """Record ``item`` under ``kind``; return its ``seq`` (for :meth:`amend`)."""
        with self._lock:
            self._seq += 1
            self._items[kind].append({**item, "seq": self._seq, "time": time.time()})
            return self._seq

    def amend(self, kind: str, seq: int, **fields: Any) -> None:
        """Add fields to a recorded item (e.g. a request's response status)."""
        with self._lock:
            for item in reversed(self._items[kind]):
                if item["seq"] == seq:
                    item.update(fields)
                    return

    def list(self, kind: str, filters: Mapping[str, str] | None = None) -> list[dict]:
        """Copies of the items of ``kind`` whose fields equal every filter (as text)."""
        with self._lock:
            items = [copy.deepcopy(item) for item in self._items[kind]]
        for name, wanted in (filters or {}).items():
            items = [item for item in items if _as_text(item.get(name)) == wanted]
        return items

    def all(self) -> dict[str, list[dict]]:
        """Every kind's items."""
        return {kind: self.list(kind) for kind in self.kinds}

    def counts(self) -> dict[str, int]:
        """How many items each kind holds (cheap to poll, unlike the items)."""
        with self._lock:
            return {kind: len(items) for kind, items in self._items.items()}

    def clear(self) -> None:
        """Forget everything recorded."""
        with self._lock:
            for items in self._items.values():
                items.clear()


def _as_text(value: Any) -> str:
    """Query-string filters are text: compare ``True``/``3`` as ``"true"``/``"3"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def merge_config(defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict:
    """Defaults overlaid with ``given``; unknown keys fail loudly (a typo is a bug)."""
    unknown = sorted(set(given or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown sandbox config key(s): {', '.join(unknown)}")
    return {**copy.deepcopy(dict(defaults)), **copy.deepcopy(dict(given or {}))}


class SandboxState:
    """Records, faults and config of one peer, plus the hooks the control API calls.

    Subclasses add their own state and extend :meth:`reset`/:meth:`apply_faults`.
    """

    kind = "sandbox"

    def __init__(self, config: Mapping[str, Any], records: Records, faults: Faults) -> None:
        self.lock = threading.RLock()
        self.records = records
        self.faults = faults
        self._initial_config = dict(config)
        self.config: dict[str, Any] = dict(config)

    def reset(self) -> None:
        """Back to start-up: no records, healthy faults, the start-up config."""
        with self.lock:
            self.records.clear()
            self.faults.reset()
            self.config = copy.deepcopy(self._initial_config)

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change config at runtime (only known keys); return the masked config."""
        with self.lock:
            self.config = merge_config(self.config, changes)
            return self.public_config()

    def public_config(self) -> dict[str, Any]:
        """The config with secrets masked, fit to show to a test or a log."""
        with self.lock:
            return {key: _mask(key, value) for key, value in self.config.items()}

    def apply_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply fault switches; subclasses intercept one-shot actions first."""
        return self.faults.update(changes)


def _mask(key: str, value: Any) -> Any:
    secret = any(word in key for word in ("password", "token", "secret"))
    if secret and isinstance(value, str) and value:
        return "***"
    if secret and isinstance(value, Mapping):
        return {f"***{n}": v for n, v in enumerate(value.values(), start=1)}
    return value


def install_control_api(app: Flask, state: SandboxState) -> None:
    """Add the ``/_sandbox/...`` routes; record, then fault, every other request.

    Recording comes first so a request answered by a fault is still seen by tests.
    """
    app.register_blueprint(_control_blueprint(state))
    app.before_request(_request_recorder(state))
    app.before_request(_fault_injector(state))
    app.after_request(_response_recorder(state))


def _control_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_control", __name__, url_prefix=CONTROL_PREFIX)

    @bp.get("/health")
    def health() -> Response:
        return jsonify({"status": "ok", "sandbox": state.kind})

    @bp.get("/records")
    def records() -> Response | tuple[Response, int]:
        filters = {k: v for k, v in request.args.items() if k != "kind"}
        kind = request.args.get("kind")
        if kind is None:
            return jsonify(state.records.all())
        if kind not in state.records.kinds:
            return _bad_request(f"unknown kind {kind!r}; known: {list(state.records.kinds)}")
        return jsonify(state.records.list(kind, filters))

    @bp.get("/stats")
    def stats() -> Response:
        return jsonify({"counts": state.records.counts()})

    @bp.post("/reset")
    def reset() -> Response:
        state.reset()
        return jsonify({"status": "reset"})

    @bp.route("/faults", methods=["GET", "POST"])
    def faults() -> Response | tuple[Response, int]:
        if request.method == "GET":
            return jsonify(state.faults.snapshot())
        return _apply(state.apply_faults)

    @bp.route("/config", methods=["GET", "POST"])
    def config() -> Response | tuple[Response, int]:
        if request.method == "GET":
            return jsonify(state.public_config())
        return _apply(state.configure)

    return bp


def _apply(change: Callable[[dict], dict]) -> Response | tuple[Response, int]:
    """Run a control change with the JSON body, mapping bad input to a 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad_request("expected a JSON object")
    try:
        return jsonify(change(body))
    except (FaultError, ValueError) as exc:
        return _bad_request(str(exc))


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify({"errors": [message]}), 400


def is_control_path(path: str) -> bool:
    """Control calls are never recorded, faulted or authenticated."""
    return path.startswith(CONTROL_PREFIX + "/")


def _request_recorder(state: SandboxState) -> Callable[[], None]:
    def record_request() -> None:
        if is_control_path(request.path) or not state.config.get("record_requests", True):
            return
        seq = state.records.add(
            "requests",
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode("latin-1"),
                "headers": dict(request.headers),
                "json": request.get_json(silent=True),
            },
        )
        request.environ["sandbox.request_seq"] = seq

    return record_request


def _fault_injector(state: SandboxState) -> Callable[[], Response | None]:
    def inject_fault() -> Response | None:
        if is_control_path(request.path):
            return None
        return state.faults.intercept(request.path)

    return inject_fault


def _response_recorder(state: SandboxState) -> Callable[[Response], Response]:
    def record_response(response: Response) -> Response:
        seq = request.environ.get("sandbox.request_seq")
        if seq is not None:
            state.records.amend("requests", seq, status=response.status_code,
                               answered_at=time.time())
        return response

    return record_response


def json_object(force: bool = False) -> dict | None:
    """The request body as a JSON object, or None if it is absent, invalid or not an object.

    ``force`` parses the body whatever its Content-Type, as PHP's ``json_decode`` does.
    """
    body = request.get_json(force=force, silent=True)
    return body if isinstance(body, dict) else None
