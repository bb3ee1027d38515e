"""CPU and memory of the running process trees, sampled in a thread about once a second."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


class UsageSampler:
    """Sums CPU % and resident memory over the trees of the pids it is given."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.pids: list[int] = []  # set by the UI; read here (a list reference swap is atomic)
        self.cpu = 0.0
        self.rss = 0
        self._procs: dict[int, psutil.Process] = {}

    def sample(self) -> None:
        seen: dict[int, psutil.Process] = {}
        cpu, rss = 0.0, 0
        for pid in list(self.pids):
            try:
                root = self._procs.get(pid) or psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in tree:
                p = self._procs.get(p.pid, p)  # keep the object: cpu_percent needs its last sample
                try:
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss
                    seen[p.pid] = p
                except psutil.Error:
                    pass
        self._procs = seen
        self.cpu, self.rss = cpu, rss

    def run(self, keep_going: Callable[[], bool]) -> None:
        while keep_going():
            self.sample()
            time.sleep(self.interval)
