"""``helpline-adapter worker``: performs deliveries (RQ, no fork per job) and the relay."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

import click
from flask import Flask, current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from ..delivery.jobs import use_app
from ..delivery.relay import Relay

log = logging.getLogger(__name__)


class DeliveryWorker(SimpleWorker):
    """RQ's in-process worker that also tells our loop a stop was asked for.

    RQ ends :meth:`work` the same way on SIGTERM while idle as on a lost Redis
    connection; only the signal must end the process (a lost Redis is reconnected).
    """

    def __init__(self, *args, stop_asked: threading.Event | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # RQ's own lookups (find_by_key) pass no event
        self.stop_asked = stop_asked or threading.Event()

    #: Seconds an idle worker blocks on the queue before looking again (RQ: its TTL less
    #: 15 s, 405 s). RQ stops an idle worker by raising out of its signal handler; an
    #: exception raised inside a Redis call may be swallowed there (seen once, on a
    #: loaded machine: the worker went back to a 405 s wait and was SIGKILLed). Marked as
    #: stopping too, it then stops at its next look, within these seconds.
    @property
    def dequeue_timeout(self) -> int:
        return 5

    def request_stop(self, signum, frame):
        self.stop_asked.set()
        self._stop_requested = True
        super().request_stop(signum, frame)

    def work(self, *args, **kwargs) -> bool:
        try:
            return super().work(*args, **kwargs)
        except StopRequested:  # the signal came while RQ was starting, outside its loop:
            self.teardown()  # stop the scheduler process too, or the exit waits for it
            return False

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        if self.stop_asked.is_set():  # a signal came while RQ was starting: stop at once
            self._stop_requested = True


def _stop_on_signals(stop_asked: threading.Event) -> None:
    """Outside RQ's own loop (starting, reconnecting to Redis), SIGTERM/SIGINT only note
    the stop: RQ's handlers, left behind by a finished worker, would raise out of a wait."""
    def handler(signum, frame):
        stop_asked.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def rq_log_level(level: str) -> str:
    """RQ's own lines (two per job: the drain runs every second) only when debugging;
    our engine logs one line per delivery outcome, which is what an operator reads."""
    return "DEBUG" if str(level).upper() == "DEBUG" else "WARNING"


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (for tests).")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler here.")
@click.option("--no-relay", is_flag=True, help="Do not run the relay (sweeper) here.")
def worker(burst: bool, no_scheduler: bool, no_relay: bool) -> None:
    """Run a delivery worker with RQ's scheduler and the relay.

    One process delivers one batch at a time without forking; run several for more
    throughput. A lost Redis connection is retried; nothing is lost meanwhile, the
    database holds every delivery.
    """
    app = current_app._get_current_object()
    use_app(app)
    relay = None if no_relay else Relay(app)
    if relay:
        relay.start()
    url = app.config.get("REDIS_URL")
    if not url:
        raise click.ClickException("REDIS_URL is not set")
    name = f"adapter-{socket.gethostname()}-{os.getpid()}"
    pause = 0.5
    stop_asked = threading.Event()
    _stop_on_signals(stop_asked)
    try:
        while not stop_asked.is_set():
            try:
                connection = Redis.from_url(url, socket_connect_timeout=2,
                                            health_check_interval=10)
                connection.ping()
                queue = Queue(app.config["DELIVERY_QUEUE"], connection=connection)
                rq_worker = DeliveryWorker([queue], connection=connection, name=name,
                                           stop_asked=stop_asked)
                log.info("worker.started", extra={"worker": name})
                rq_worker.work(burst=burst, with_scheduler=not no_scheduler and not burst,
                               logging_level=rq_log_level(app.config["LOG_LEVEL"]))
                if burst or stop_asked.is_set():
                    break
                log.warning("worker.restarting", extra={"worker": name})
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("worker.redis_unavailable", extra={"error_type": type(exc).__name__})
            _stop_on_signals(stop_asked)
            stop_asked.wait(pause)  # back off before reconnecting to Redis
            pause = min(pause * 2, 10)
            name = f"adapter-{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
    finally:
        if relay:
            relay.stop()
    log.info("worker.stopped", extra={"worker": name})


def register(app: Flask) -> None:
    app.cli.add_command(worker)
