"""A far side that records what it receives, over real HTTP: a stand-in helpline for a
plugin under test (the adapter's own parts are never stood in for)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, request
from werkzeug.serving import make_server


class Receiver:
    """Answers every POST to ``/in`` with ``answer()`` (default ``{"ok": true}``) and
    records its headers, raw body and JSON in :attr:`received`."""

    def __init__(self, answer: Callable[[int], tuple[Any, int]] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self._answer = answer or (lambda count: ({"ok": True}, 200))
        app = Flask("receiver")

        @app.post("/in")
        def receive():
            self.received.append({"headers": dict(request.headers),
                                  "body": request.get_data(as_text=True),
                                  "json": request.get_json(silent=True)})
            return self._answer(len(self.received))

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@contextmanager
def receiving(answer: Callable[[int], tuple[Any, int]] | None = None) -> Iterator[Receiver]:
    peer = Receiver(answer)
    try:
        yield peer
    finally:
        peer.stop()
