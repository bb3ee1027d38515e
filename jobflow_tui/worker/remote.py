"""One attempt of a command on a Dask worker: what the runner submits to the cluster.

It runs the command in a session of its own, sends its output back as it comes (batched
`log_event`s on the attempt's own topic, numbered, so the runner writes every byte into
the attempt's log file in order, whatever the scheduler keeps of a topic), watches a
`distributed.Event` for an abort (then the whole tree ends: SIGTERM, SIGKILL after the
grace), and returns how it ended. A second start of the same attempt (the scheduler gives
a task to another worker when the first is lost) refuses to run: a step never runs twice.

Imported on the workers (jobflow-tui installed there); nothing here imports the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

BATCH_BYTES = 256 * 1024
BATCH_SECONDS = 0.05
ABORT_POLL = 0.25  # seconds between looks at the abort event (each a round trip to the scheduler)


class NotRunTwice(RuntimeError):
    """This attempt was started before, on a worker that was lost."""


def run_attempt(req: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt (`req`: argv, env, cwd, topic, claim, abort and done event names, grace);
    {"code": exit status (-N: signal N), "outputs": the $JOBFLOW_OUTPUT file's text,
    "chunks": how many output events were sent, "worker": this worker's address}."""
    from distributed import Event, get_worker

    worker = get_worker()
    claim, abort, done = Event(req["claim"]), Event(req["abort"]), Event(req["done"])
    if claim.is_set():
        raise NotRunTwice(f"the worker that ran it was lost (now on {worker.address}, not started again)")
    claim.set()
    try:
        if abort.is_set():  # ended before it began (its runner went away meanwhile)
            return {"code": None, "outputs": "", "chunks": 0, "worker": worker.address}
        return _run(req, worker, abort)
    finally:
        done.set()  # a runner that resumes the run waits for this before it starts the task again


def _run(req: dict[str, Any], worker: Any, abort: Any) -> dict[str, Any]:
    fd, outputs = tempfile.mkstemp(prefix="jobflow-output-")
    os.close(fd)
    # The attempt's key in the environment, as for a local command: on the runner's machine
    # (dask:local) a runner that resumes the run finds what is left of it, and ends it.
    env = {**req["env"], "JOBFLOW_OUTPUT": outputs, "JOBFLOW_WORKER": worker.address,
           "JOBFLOW_ATTEMPT_KEY": req["attempt_key"], "JOBFLOW_STATUS_FILE": req["status_file"]}
    cwd = req["cwd"] if os.path.isdir(req["cwd"]) else None  # not on this machine: the worker's own folder
    python = req.get("python")  # a Python task: `worker.main --once`, its request on stdin
    scratch = tempfile.mkdtemp(prefix="jobflow-attempt-") if python else None
    if python:
        python = {**python, "env": env, "log": "/dev/stdout", "status": os.path.join(scratch, "attempts.status")}
    try:
        argv = [sys.executable, "-m", "jobflow_tui.worker.main", "--once"] if python else req["argv"]
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE if python else subprocess.DEVNULL, start_new_session=True)
        if python:
            proc.stdin.write(json.dumps(python, default=str).encode())
            proc.stdin.close()
    except OSError as e:
        os.unlink(outputs)
        return {"code": 127, "outputs": "", "chunks": _send_all(worker, req["topic"], [
            f"jobflow-tui: cannot start {req['argv'][0]!r} on {worker.address}: {e.strerror}\n".encode()]),
                "worker": worker.address}
    guard = _guard(proc.pid, float(req.get("grace", 5.0)))
    sender = _Sender(worker, req["topic"], proc.stdout)
    sender.start()
    aborted = False
    while proc.poll() is None:
        if not aborted and abort.is_set():
            aborted = True
            _end_tree(proc, float(req.get("grace", 5.0)))
        if aborted:
            time.sleep(ABORT_POLL)
        else:
            abort.wait(ABORT_POLL)
    sender.join(1.0)  # what it wrote last; a process it left behind may hold the pipe open
    if sender.is_alive():
        _end_tree(proc, float(req.get("grace", 5.0)))  # the attempt is over: so is what it started
        sender.join()
    try:
        os.killpg(guard.pid, signal.SIGKILL)  # the session is over: nothing left to guard (its sleep too)
    except OSError:
        pass
    guard.wait()
    try:
        with open(outputs, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    finally:
        os.unlink(outputs)
    out = {"code": proc.returncode, "outputs": text, "chunks": sender.count, "worker": worker.address}
    if scratch is not None:
        from ..journal import AttemptFiles

        files = AttemptFiles(os.path.join(scratch, python["key"]))
        out["result"] = files.read_result()
        recorded = files.read_status()
        out["code"] = recorded if recorded is not None else proc.returncode
        shutil.rmtree(scratch, ignore_errors=True)
    return out


# Watches the worker while the attempt's session lives: a worker that dies (killed, its
# machine's OOM killer) takes the attempt's whole session with it, as a runner does locally.
GUARD = """w=$1 g=$2 grace=$3
while kill -0 "$w" 2>/dev/null; do kill -0 -"$g" 2>/dev/null || exit 0; sleep 0.5; done
kill -TERM -"$g" 2>/dev/null; sleep "$grace"; kill -KILL -"$g" 2>/dev/null"""


def _guard(session: int, grace: float) -> subprocess.Popen:
    return subprocess.Popen(["/bin/sh", "-c", GUARD, "jobflow-guard", str(os.getpid()), str(session), str(grace)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


class _Sender(threading.Thread):
    """Reads the command's output and sends it in numbered batches."""

    def __init__(self, worker: Any, topic: str, pipe: Any) -> None:
        super().__init__(name="jobflow-output", daemon=True)
        self.worker, self.topic, self.fd = worker, topic, pipe.fileno()
        self.pipe = pipe
        self.count = 0

    def run(self) -> None:
        pending: list[bytes] = []
        size, since = 0, time.monotonic()
        while True:
            data = os.read(self.fd, 65536)
            if data:
                pending.append(data)
                size += len(data)
            if pending and (not data or size >= BATCH_BYTES or time.monotonic() - since >= BATCH_SECONDS):
                self._send(b"".join(pending))
                pending, size, since = [], 0, time.monotonic()
            if not data:
                break
        self.pipe.close()

    def _send(self, data: bytes) -> None:
        self.worker.log_event(self.topic, {"seq": self.count, "data": data})
        self.count += 1


def _send_all(worker: Any, topic: str, blocks: list[bytes]) -> int:
    for n, data in enumerate(blocks):
        worker.log_event(topic, {"seq": n, "data": data})
    return len(blocks)


def _end_tree(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the attempt's session and every process below it (those that left it
    too), SIGKILL after `grace` to whatever is left."""
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []

    def signal_all(sig: int) -> bool:
        """Send `sig` to all; whether anything was there to get it."""
        there = False
        try:
            os.killpg(proc.pid, sig)
            there = True
        except OSError:
            pass
        for p in tree:
            try:
                p.send_signal(sig)
                there = True
            except psutil.Error:
                pass
        return there

    deadline = time.monotonic() + grace
    if not signal_all(signal.SIGTERM):
        return
    while time.monotonic() < deadline:
        if proc.poll() is not None and not signal_all(0):
            return
        time.sleep(0.05)
    signal_all(signal.SIGKILL)
    proc.wait()
