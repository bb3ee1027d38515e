"""Starting a detached runner: the same engine, no screen, in a session of its own, its
stdio on /dev/null, serving its run on the control socket.

The runner says on a pipe whether its run started (`{"run_id", "pid"}`) or why not
(`{"error"}`); `--after PID` makes it wait for process PID to exit first (a dashboard
handing its run over: the runner adopts what it leaves running).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Any

READY_TIMEOUT = 60.0  # seconds a runner may take to load the job and start the run


def runner_argv(job_path: str, *, state_dir: str | None = None, resume: bool = False,
                params: list[tuple[str, str]] | None = None, only: list[str] | None = None,
                max_concurrency: int | None = None, restart: list[str] | None = None,
                paused: bool = False, executor: str | None = None) -> list[str]:
    """The command line of a detached runner (without the pipe and --after); `paused`: it
    launches nothing until told to unpause (so that a follower misses nothing)."""
    argv = [sys.executable, "-m", "jobflow_tui", job_path, "--headless"]
    if state_dir:
        argv += ["--state-dir", state_dir]
    if resume:
        argv.append("--resume")
    if max_concurrency is not None:
        argv += ["--max-concurrency", str(max_concurrency)]
    for k, v in params or []:
        argv += ["-p", f"{k}={v}"]
    for name in only or []:
        argv += ["--only", name]
    for name in restart or []:
        argv += ["--restart-task", name]
    if paused:
        argv.append("--start-paused")
    if executor:
        argv += ["--executor", executor]
    return argv


def start_runner(argv: list[str], after: int | None = None, wait: bool = True,
                 children: list[subprocess.Popen] | None = None) -> dict[str, Any]:
    """Start a detached runner; with `wait`, what it says once its run started
    (`{"run_id", "pid"}` or `{"error"}`), else just `{"pid"}`. A process that stays (a
    server) passes `children` to keep the runner's Popen and reap it when it ends."""
    read_end, write_end = os.pipe()
    extra = ["--runner-fd", str(write_end)] + (["--after", str(after)] if after is not None else [])
    try:
        proc = subprocess.Popen(
            argv + extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, pass_fds=(write_end,), close_fds=True,
        )
    except (OSError, ValueError) as e:  # ValueError: an argument holding a NUL
        os.close(read_end)
        return {"error": f"cannot start a runner: {getattr(e, 'strerror', None) or e}"}
    finally:
        os.close(write_end)
    if children is not None:
        children.append(proc)
    if not wait:
        os.close(read_end)
        return {"pid": proc.pid}
    data = b""
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(read_end, "rb") as f:
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([f], [], [], 0.2)
            if ready:
                chunk = os.read(f.fileno(), 65536)
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
    try:
        said = json.loads(data) if data else {}
    except ValueError:
        said = {}
    if not said:
        if proc.poll() is None:
            # Said nothing in time: it must not start the run after we said it did not.
            proc.kill()
            proc.wait()
        said = {"error": "the detached runner did not start (see its runner.log in the job's state folder)"}
    said.setdefault("pid", proc.pid)
    return said


def tell(fd: int, message: dict[str, Any]) -> None:
    """In the runner: say on the pipe whether the run started, once."""
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


def wait_for_exit(pid: int, timeout: float = 60.0) -> bool:
    """Wait until process `pid` is gone (True), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        time.sleep(0.02)
    return False
