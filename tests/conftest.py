"""Shared helpers: write job files, run the real CLI, wait on conditions, and make sure
no test leaves a process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m jobflow_tui ARGS` as a user would (no TTY: headless)."""
    return subprocess.run(
        [sys.executable, "-m", "jobflow_tui", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `cond()` until true; fail after `timeout` seconds (a deadline, not a guess)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def await_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def terminate(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _ours(tmp: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid():
                continue
            env = p.environ()
        except psutil.Error:
            continue
        if any(str(v).startswith(tmp) for k, v in env.items() if k in ("JOBFLOW_STATE_DIR", "JOBFLOW_TEST_TMP")):
            found.append(p)
    return found


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every process a test starts carries JOBFLOW_TEST_TMP; none may outlive the test."""
    monkeypatch.setenv("JOBFLOW_TEST_TMP", str(tmp_path))
    yield
    left: list[psutil.Process] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in _ours(str(tmp_path)) if alive(p.pid)]
        if not left:
            return
        time.sleep(0.05)
    for p in left:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    raise AssertionError(f"processes left behind: {[(p.pid, p.cmdline()) for p in left if alive(p.pid)]}")


class PeakRSS:
    """The peak RSS of a running process itself (VmHWM), read until it ends. Not wait4's
    ru_maxrss: Linux carries the forking process's high-water mark across exec, so a
    child of a grown test process reports that process's size."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    hwm = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
            except OSError:
                return
            if hwm is None:  # a zombie: its memory is gone
                return
            self.peak = max(self.peak, hwm)
            time.sleep(0.01)

    def kb(self) -> int:
        self.thread.join(timeout=10)
        return self.peak
