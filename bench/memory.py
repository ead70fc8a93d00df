"""Peak resident memory of process trees, sampled in a thread every 0.2 s.

Peaks are kept per process (not summed over a tree): the target is "< 100 MB per
process", and a gunicorn master and its workers are separate processes. A tree is
re-walked on every sample so a worker gunicorn recycles is measured too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil

INTERVAL = 0.2


class PeakRss:
    """Track the largest RSS seen of any process chosen by ``label -> picker``."""

    def __init__(self) -> None:
        self._pickers: dict[str, Callable[[], list[psutil.Process]]] = {}
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._lock = threading.Lock()

    def watch_children(self, label: str, pid: int | None) -> None:
        """The children of ``pid`` (a gunicorn master's workers)."""
        self._watch(label, lambda: psutil.Process(pid).children(recursive=True))

    def watch_matching(self, label: str, pid: int, words: tuple[str, ...]) -> None:
        """Descendants of ``pid`` whose command line holds all ``words`` (delivery workers,
        whoever started them)."""
        def pick() -> list[psutil.Process]:
            found = []
            for process in psutil.Process(pid).children(recursive=True):
                try:
                    line = " ".join(process.cmdline())
                except psutil.Error:
                    continue
                if all(word in line for word in words):
                    found.append(process)
            return found
        self._watch(label, pick)

    def _watch(self, label: str, picker: Callable[[], list[psutil.Process]]) -> None:
        with self._lock:
            self._pickers[label] = picker

    def unwatch(self, label: str) -> None:
        with self._lock:
            self._pickers.pop(label, None)

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(2)
        return dict(self.peaks)

    def sample(self) -> None:
        with self._lock:
            pickers = list(self._pickers.items())
        for label, picker in pickers:
            try:
                processes = picker()
            except psutil.Error:
                continue
            for process in processes:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                if rss > self.peaks.get(label, 0):
                    self.peaks[label] = rss

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.sample()


def mb(value: int | None) -> str:
    return "n/a" if not value else f"{value / 2**20:.0f} MB"
