"""The runner's side of the Python task worker (no pydantic here: only the worker has it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..jobdef.errors import Problem
from ..jobdef.model import JobDef


class WorkerError(Exception):
    """The worker could not be started or stopped answering."""


def _token(journal: str, key: str) -> str:
    """An attempt's name on the done pipe: unique across the runs one worker serves."""
    return f"{journal} {key}"


class Worker:
    """One worker process with the job's task modules imported."""

    def __init__(self, dirs: list[str], packages: list[str], files: list[str]) -> None:
        # Slots that finish an attempt and stay alive for another say so on this pipe.
        done_r, done_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobflow_tui.worker.main", "--done-fd", str(done_w)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the runner is not the worker's
                pass_fds=(done_w,),
            )
        finally:
            os.close(done_w)
        self.lock = threading.Lock()  # one request at a time
        self._ends_lock = threading.Lock()
        self._ended: dict[str, Future[None]] = {}  # _token -> set when its slot reports
        self._released: list[int] = []
        threading.Thread(target=self._read_done, args=(done_r,), daemon=True, name="jobflow-worker-done").start()
        self.sources = {"dirs": dirs, "packages": packages, "files": files}
        self.loaded: dict[str, Any] = {}

    def load(self) -> None:
        """Import the task modules (what `check` and `run` need first)."""
        self.loaded = self.request({"op": "load", **self.sources})

    def _read_done(self, fd: int) -> None:
        # Ends at EOF: when the worker and every slot have closed their end.
        with os.fdopen(fd, "rb") as done:
            for line in done:
                with self._ends_lock:
                    fut = self._ended.pop(line.rstrip(b"\n").decode(errors="replace"), None)
                if fut is not None and fut.set_running_or_notify_cancel():
                    fut.set_result(None)

    def run(self, req: dict[str, Any]) -> tuple[int, Future[None]]:
        """Start an attempt; its pid, and a future set if its process ends the attempt but
        stays alive for another (otherwise the process exits, as for any attempt)."""
        ended: Future[None] = Future()
        req["done"] = _token(req["status"], req["key"])  # what the slot writes on the done pipe
        with self._ends_lock:
            self._ended[req["done"]] = ended
            req["release"], self._released = self._released, []
        try:
            return int(self.request(req)["pid"]), ended
        except BaseException:
            self.forget(req["status"], req["key"])
            raise

    def forget(self, journal: str, key: str) -> None:
        """Attempt `key` of that journal ended by its process exiting."""
        with self._ends_lock:
            self._ended.pop(_token(journal, key), None)

    def release(self, pid: int) -> None:
        """The runner is done with the attempt slot `pid` reported: it may take another."""
        with self._ends_lock:
            self._released.append(pid)

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply."""
        with self.lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                self.proc.stdin.write(json.dumps(req, default=str).encode() + b"\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except OSError as e:
                raise WorkerError(f"the Python task worker is gone: {e}") from None
            if not line:
                raise WorkerError("the Python task worker exited")
            reply = json.loads(line)
            if "error" in reply:
                raise WorkerError(reply["error"])
            return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            try:
                self.request({"op": "exit"})
            except WorkerError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_WORKERS: dict[tuple, Worker] = {}
_LOCK = threading.Lock()


def sources(job: JobDef) -> tuple[list[str], list[str], list[str]]:
    """Where the job's task classes come from: ./tasks beside it, extension dirs, packages, files."""
    dirs = [os.path.join(job.directory, "tasks"), *job.extension_directories]
    return dirs, list(job.extension_packages), list(job.task_files)


def worker_for(dirs: list[str], packages: list[str], files: list[str],
               starting: Callable[[], AbstractContextManager] = nullcontext) -> Worker:
    """The worker (started once, then shared) that imported the task classes of these sources.

    `starting`: a context around starting the worker's process and recording it (the
    runner keeps its own children apart from orphans with it).
    """
    key = (tuple(dirs), tuple(packages), tuple(files))
    with _LOCK:
        w = _WORKERS.get(key)
        if w is None or not w.alive():
            with starting():
                w = _WORKERS[key] = Worker(dirs, packages, files)
            try:
                w.load()
            except BaseException:
                del _WORKERS[key]
                w.close()
                raise
        return w


def worker_pids() -> set[int]:
    """The pids of this process's worker processes (without waiting for one being started)."""
    return {w.proc.pid for w in list(_WORKERS.values())}


def close_workers() -> None:
    with _LOCK:
        for w in _WORKERS.values():
            w.close()
        _WORKERS.clear()


def check(job: JobDef) -> list[Problem]:
    """Located problems with the job's Python tasks: modules, class names, parameters."""
    tasks = [t for t in job.tasks.values() if t.python_class]
    if not tasks:
        return []
    try:
        w = worker_for(*sources(job))
        results = w.request({
            "op": "check",
            "tasks": [{"name": t.name, "class": t.python_class, "params": t.parameters} for t in tasks],
        })["results"]
    except WorkerError as e:
        return [Problem(job.path, 1, 1, f"cannot load Python tasks: {e}")]
    problems = [Problem(f, line, 1, msg) for f, line, msg in w.loaded["problems"]]
    for t in tasks:
        for err in results.get(t.name, []):
            loc = tuple(err["loc"])
            if loc == ("<class>",):
                path: tuple = ("tasks", t.name, "task")
            else:
                path = ("tasks", t.name, "parameters", *loc)
            file, line, col = job.locate(path)
            problems.append(Problem(file, line, col, f"task '{t.name}': {err['msg']}"))
    return problems
