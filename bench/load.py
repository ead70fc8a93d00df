"""A small HTTP load generator, run as its own process: ``python -m bench.load``.

It reads a JSON spec on stdin and writes a JSON result on stdout, so the load runs
in a separate interpreter from the benchmark driver (whose sampling and polling
must not steal the generator's GIL) and from the servers under test. Threads share
nothing but counters; each has its own ``requests.Session`` (keep-alive where the
server allows it — gunicorn's sync workers close after each answer, for both targets).

Modes (``spec["mode"]``):

``max``     closed loop for ``duration`` seconds, as fast as ``threads`` connections go;
            the first ``warmup`` seconds are not counted.
``fixed``   ``per_conversation`` messages to each conversation, each conversation's in
            order (one thread owns it), so accepted order is the order we sent.
``paced``   open loop at ``rate`` messages/s for ``duration`` seconds: a message's
            send time is fixed in advance, so a slow answer does not lower the load.

``max`` returns latencies only; ``fixed`` and ``paced`` also return each message:
``[sender_message_id, conversation_id, sent_at (unix), status, our_message_id]``.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from typing import Any

import requests

TEXT = "Hello, I need to talk to someone about what happened at home today."


class Load:
    """One run of the generator; :meth:`run` returns the JSON-able result."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec["url"].rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if spec.get("key"):
            self.headers["Authorization"] = f"Token {spec['key']}"
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.messages: list[list[Any]] = []
        self.errors = 0
        self.counting_from = 0.0  # perf_counter; requests started earlier are warm-up

    # -- one request --------------------------------------------------------------------

    def send(self, http: requests.Session, conversation_id: str, message_id: str,
             keep: bool) -> None:
        body = json.dumps({"message_id": message_id, "text": f"{TEXT} [{message_id}]"})
        url = f"{self.base}/v1/conversations/{conversation_id}/messages"
        sent_at = time.time()
        started = time.perf_counter()
        try:
            response = http.post(url, data=body, headers=self.headers, timeout=30)
            status, answer = response.status_code, response.content
        except requests.RequestException:
            status, answer = 0, b""
        took = time.perf_counter() - started
        ours = None
        if keep and status in (200, 202):
            ours = json.loads(answer).get("message_id")
        with self.lock:
            if started < self.counting_from:
                return
            self.latencies.append(took * 1000)
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if status == 0:
                self.errors += 1
            if keep:
                self.messages.append([message_id, conversation_id, sent_at, status, ours])

    # -- modes ----------------------------------------------------------------------------

    def _owned(self, k: int) -> list[str]:
        return self.spec["conversations"][k::self.spec["threads"]]

    def _max(self, k: int, deadline: float) -> None:
        http, owned, n = requests.Session(), self._owned(k), 0
        if not owned:
            return
        while time.perf_counter() < deadline:
            self.send(http, owned[n % len(owned)], f"{self.spec['prefix']}-{k}-{n}", keep=False)
            n += 1

    def _fixed(self, k: int, deadline: float) -> None:
        http = requests.Session()
        for n in range(self.spec["per_conversation"]):
            for conversation_id in self._owned(k):
                if time.perf_counter() >= deadline:
                    return
                self.send(http, conversation_id, f"{self.spec['prefix']}-{conversation_id}-{n}",
                          keep=True)

    def _paced(self, due: queue.Queue) -> None:
        http = requests.Session()
        while (item := due.get()) is not None:
            at, n = item
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conversations = self.spec["conversations"]
            self.send(http, conversations[n % len(conversations)], f"{self.spec['prefix']}-{n}",
                      keep=True)

    def run(self) -> dict[str, Any]:
        spec, threads = self.spec, self.spec["threads"]
        start = time.perf_counter()
        deadline = start + float(spec.get("duration", 600))
        self.counting_from = start + float(spec.get("warmup", 0))
        due: queue.Queue = queue.Queue()
        if spec["mode"] == "max":
            targets = [(self._max, (k, deadline)) for k in range(threads)]
        elif spec["mode"] == "fixed":
            targets = [(self._fixed, (k, deadline)) for k in range(threads)]
        elif spec["mode"] == "paced":
            targets = [(self._paced, (due,)) for _ in range(threads)]
        else:
            raise SystemExit(f"unknown mode {spec['mode']!r}")
        workers = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets]
        for worker in workers:
            worker.start()
        if spec["mode"] == "paced":
            total = int(float(spec["rate"]) * float(spec["duration"]))
            for n in range(total):
                due.put((start + n / float(spec["rate"]), n))
            for _ in workers:
                due.put(None)
        for worker in workers:
            worker.join(max(0.0, deadline - time.perf_counter()) + 30)
        elapsed = time.perf_counter() - max(self.counting_from, start)
        with self.lock:
            return {"elapsed": elapsed, "statuses": dict(self.statuses), "errors": self.errors,
                    "latencies_ms": [round(x, 3) for x in self.latencies],
                    "messages": list(self.messages)}


def main() -> None:
    spec = json.load(sys.stdin)
    json.dump(Load(spec).run(), sys.stdout)


def run_in_process(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the generator in a child interpreter; its JSON result (killed at ``timeout``)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "bench.load"], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
