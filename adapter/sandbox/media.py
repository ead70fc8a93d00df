"""A chatbot's media host, for testing the opt-in re-hosting fetcher over real HTTP.

Routes (``GET``), each what a real media host may do to a fetcher:

- ``/media/<name>?type=image/jpeg&bytes=2048``: a file of that size and type (JPEG bytes
  by default). ``length=false`` sends no ``Content-Length`` (chunked), so only reading
  finds out its size; ``lie=<n>`` declares ``n`` bytes whatever it sends.
- ``/slow?first=<s>``: waits ``s`` seconds before answering; ``/drip?every=<s>&chunks=<n>``
  answers at once, then one byte every ``s`` seconds.
- ``/redirect?to=<url>&status=302``: a redirect to anywhere (a private address, say).
- ``/status/<code>``: that status.
- ``/flaky/<name>?fail=<n>``: 503 for the first ``n`` requests of ``name``, then a JPEG.

Every request is recorded (``requests``), so a test can tell that a refused hop was never
made. Not a peer of the adapter's wire: nothing here speaks RapidPro or OpenCHS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import Flask, Response, request
from werkzeug.serving import make_server

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


@dataclass
class MediaHost:
    """The app, served on 127.0.0.1 in a thread; :attr:`url` is its root."""

    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = _app(self.requests)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()


def _app(seen: list[dict]) -> Flask:
    app = Flask("sandbox-media")
    failures: dict[str, int] = {}
    lock = threading.Lock()

    @app.before_request
    def _record() -> None:
        seen.append({"path": request.path, "query": request.query_string.decode("latin-1"),
                     "host": request.headers.get("Host")})

    @app.get("/media/<name>")
    def media(name: str) -> Response:
        size = int(request.args.get("bytes", "2048"))
        body = (JPEG_HEAD + b"\x00" * size)[:size]
        content_type = request.args.get("type", "image/jpeg")
        if request.args.get("length") == "false":
            return Response(_chunks(body), content_type=content_type)
        response = Response(body, content_type=content_type)
        if request.args.get("lie"):
            response.headers["Content-Length"] = request.args["lie"]
            response.direct_passthrough = True
        return response

    @app.get("/slow")
    def slow() -> Response:
        time.sleep(float(request.args.get("first", "1")))
        return Response(JPEG_HEAD, content_type="image/jpeg")

    @app.get("/drip")
    def drip() -> Response:
        every = float(request.args.get("every", "0.5"))
        chunks = int(request.args.get("chunks", "10"))

        def slowly():
            for _ in range(chunks):
                yield b"\x00"
                time.sleep(every)

        return Response(slowly(), content_type="image/jpeg")

    @app.get("/redirect")
    def redirect() -> Response:
        response = Response(status=int(request.args.get("status", "302")))
        response.headers["Location"] = request.args["to"]
        return response

    @app.get("/flaky/<name>")
    def flaky(name: str) -> Response:
        with lock:
            failures[name] = failures.get(name, 0) + 1
            failing = failures[name] <= int(request.args.get("fail", "1"))
        if failing:
            return Response(b"", status=503, content_type="text/plain")
        return Response(JPEG_HEAD + b"\x00" * 100, content_type="image/jpeg")

    @app.get("/status/<int:code>")
    def status(code: int) -> Response:
        return Response(b"", status=code, content_type="text/plain")

    return app


def _chunks(body: bytes, size: int = 1024):
    for start in range(0, len(body), size):
        yield body[start:start + size]
