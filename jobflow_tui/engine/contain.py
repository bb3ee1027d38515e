"""Keep every process an attempt starts within reach, whatever it does to get away.

Three layers, each catching what the one before misses:

- The attempt's process group, and the descendants seen in it (`process.Tree`).
- The runner is a child subreaper: a process whose parent exits (a double fork, a daemon)
  comes back to the runner instead of to init. `Orphans` finds them, reaps them when
  they exit, and tells which attempt each belongs to by the environment it inherited.
- Where the runner's own cgroup (v2) is writable, an attempt that runs longer than a
  moment gets a cgroup of its own: whatever its processes do (setsid, double fork, a
  cleared environment), they and everything they start stay in it, and it is killed whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux); False if not."""
    import ctypes  # here: only a runner that contains its tasks pays for it

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children() -> set[int]:
    """This process's children, from every thread's list (children are per thread)."""
    found: set[int] = set()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            pass
    return found


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rfind(b")") + 2 :][:1].decode()
    except OSError:
        return "X"


def attempt_of(pid: int) -> tuple[str, str] | None:
    """(journal, attempt key) from the environment `pid` inherited, or None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    key = journal = None
    for item in env:
        if item.startswith(b"JOBFLOW_ATTEMPT_KEY="):
            key = item[20:].decode(errors="replace")
        elif item.startswith(b"JOBFLOW_STATUS_FILE="):
            journal = item[20:].decode(errors="replace")
    return (journal, key) if key and journal else None


class Gate:
    """Starting children and looking for orphans, kept apart: a child started but not yet
    known as ours would pass for an orphan (and be reaped, its exit status lost). Starts
    pass together; a scan waits until none is halfway and holds new ones back meanwhile."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._starting = 0
        self._scanning = False

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Around starting a child and recording it as ours."""
        with self._cond:
            while self._scanning:
                self._cond.wait()
            self._starting += 1
        try:
            yield
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()

    @contextmanager
    def scanning(self) -> Iterator[None]:
        """Around reading which children are ours and looking at the others."""
        with self._cond:
            self._scanning = True
            while self._starting:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._scanning = False
                self._cond.notify_all()


GATE = Gate()  # one per process: children are the process's


class Orphans:
    """The runner's children that it did not start: orphans of attempts."""

    def __init__(self) -> None:
        self.strays: set[int] = set()  # alive, with no attempt named in their environment

    def scan(self, ours: set[int]) -> dict[int, tuple[str, str] | None]:
        """Reap the exited ones; the live ones, each with the attempt it belongs to.
        Call it inside `GATE.scanning()`, with `ours` read there too."""
        live: dict[int, tuple[str, str] | None] = {}
        self.strays = set()
        for pid in children() - ours:
            if _state(pid) in ("Z", "X"):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                self.strays.discard(pid)
                continue
            owner = attempt_of(pid)
            live[pid] = owner
            if owner is None:
                self.strays.add(pid)
        return live


@functools.cache
def cgroup_base() -> str | None:
    """This process's cgroup v2 folder if new cgroups can be made in it and processes
    moved into them, else None (cgroup v1 only, or not ours to change). Looked up once."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next((line[3:].strip() for line in f if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mount = next((line.split()[4] for line in f if " - cgroup2 " in line), None)
    except OSError:
        return None
    if path is None or mount is None:
        return None
    base = os.path.join(mount, path.lstrip("/"))
    writable = os.access(base, os.W_OK) and os.access(os.path.join(base, "cgroup.procs"), os.W_OK)
    return base if writable else None


class Cgroup:
    """One attempt's cgroup; every method is a no-op once it is gone."""

    def __init__(self, base: str, journal: str, key: str) -> None:
        # Named after the attempt, so a runner that resumes a run finds it again.
        digest = hashlib.sha256(f"{journal}\0{key}".encode()).hexdigest()[:20]
        self.path = os.path.join(base, f"jobflow-{digest}")

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def add(self, pids: list[int]) -> None:
        """Move `pids` (and, from then on, whatever they start) into this cgroup."""
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError:
            return
        for pid in pids:
            try:
                with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass  # gone meanwhile

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            return []

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            try:
                with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                    f.write("1")
                return
            except OSError:
                pass  # before Linux 5.14: one by one
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def remove(self) -> bool:
        """Remove it once empty; False while processes are left in it."""
        try:
            os.rmdir(self.path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False
