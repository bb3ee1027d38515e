"""A job's folder in the state dir: where its checkpoint, lock and run folders live.

    <state dir>/<job>/checkpoint.json     the last run's state (see checkpoint.py)
    <state dir>/<job>/lock                held by the one process that runs the job
    <state dir>/<job>/runs/<run id>/      each run's logs and journal
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time

from ..journal import AttemptFiles

MAX_SAFE_NAME = 200  # a file name holds at most 255 bytes; room is left for ".<attempt>.<kind>"


class RunError(Exception):
    """The run cannot start (state dir locked or unusable, previous run still alive, bad checkpoint)."""


def new_run_id() -> str:
    """A new run's id: its local start time, and a little randomness (sortable, unique)."""
    return time.strftime("%Y%m%dT%H%M%S", time.localtime()) + "-" + os.urandom(2).hex()


RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{4,}$")  # what new_run_id makes (and nothing that leaves a folder)


def default_state_dir(job_directory: str) -> str:
    """$JOBFLOW_STATE_DIR, or `.jobflow` beside the job file."""
    return os.environ.get("JOBFLOW_STATE_DIR") or os.path.join(job_directory, ".jobflow")


def safe_name(name: str) -> str:
    """A file-name-safe form of a task or job name, unique per name and short enough for
    any file system (the full name stays in the checkpoint)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if safe != name or not safe or len(safe) > MAX_SAFE_NAME:
        safe = f"{safe[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe


class StateDir:
    """The folder of one job in a state dir, and its lock."""

    def __init__(self, root: str, job_name: str) -> None:
        self.root = os.path.abspath(root)
        self.job_name = job_name
        self.job_dir = os.path.join(self.root, safe_name(job_name))
        self.checkpoint_path = os.path.join(self.job_dir, "checkpoint.json")
        self.lock_path = os.path.join(self.job_dir, "lock")
        self._lock_fd: int | None = None

    def run_dir(self, run_id: str) -> str:
        return os.path.join(self.job_dir, "runs", run_id)


    def lock(self) -> None:
        """Become the one runner of this job (RunError if another process is, or if the
        folder cannot be made or written)."""
        try:
            os.makedirs(self.job_dir, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise RunError(f"cannot use the state folder {self.job_dir}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise RunError(f"job '{self.job_name}' is already being run from {self.job_dir} (pid {other or '?'})") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as e:
            os.close(fd)
            raise RunError(f"cannot use the state folder {self.job_dir}: {e.strerror}") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def runner_alive(self) -> bool:
        """Whether some process holds this job's lock (runs it) right now."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


def attempt_files(run_dir: str, task: str, attempt: int) -> AttemptFiles:
    """Where attempt `attempt` of `task` keeps its files: <run dir>/<task>.<attempt>.*"""
    return AttemptFiles(os.path.join(run_dir, f"{safe_name(task)}.{attempt}"))


LAUNCHED = "attempts.launched"  # in a run's folder: every attempt the runner launched, a line each


def note_launch(files: AttemptFiles) -> None:
    """Record, before it starts, that this attempt is being launched (one append)."""
    fd = os.open(os.path.join(os.path.dirname(files.base), LAUNCHED), os.O_WRONLY | os.O_APPEND | os.O_CREAT
                 | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, files.key.encode() + b"\n")
    finally:
        os.close(fd)


def launched(run_dir: str) -> set[str]:
    """The attempts (keys) the runners of a run noted as launched."""
    try:
        with open(os.path.join(run_dir, LAUNCHED), "rb") as f:
            return {line.decode(errors="replace") for line in f.read().split(b"\n") if line}
    except OSError:
        return set()


def attempts_on_disk(run_dir: str) -> dict[str, int]:
    """Safe task name -> the highest attempt number launched in a run's folder.

    The run's folder, not the checkpoint, is the truth about what was started: each
    attempt is noted as launched (and older versions made its log) before its code runs,
    and a runner killed a moment after starting an attempt may not have recorded it yet.
    """
    found: dict[str, int] = {}
    try:
        names = os.listdir(run_dir)
    except OSError:
        return found
    for fn in [*names, *launched(run_dir)]:
        stem, _, rest = fn.partition(".")  # safe names hold no dot: <task>.<attempt>[.<kind>]
        num = rest.split(".", 1)[0]
        if num.isdigit():
            found[stem] = max(found.get(stem, 0), int(num))
    return found


FULL_DISK = 64 * 1024  # free bytes under which a disk counts as full


class DiskWatch:
    """Whether the disk holding a folder is full, looked at most once a second (a job of
    many short tasks ends hundreds of attempts a second)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._checked = -1.0
        self._note = ""

    def note(self, fresh: bool = False) -> str:
        """"" or, when the disk is full, a note saying so (why a log may be cut short).
        `fresh`: look now, whenever the last look was."""
        now = time.monotonic()
        if fresh or now - self._checked >= 1.0:
            self._checked = now
            try:
                st = os.statvfs(self.folder)
                full = st.f_bavail * st.f_frsize < FULL_DISK
            except OSError:
                full = False
            self._note = f"the disk holding its log ({self.folder}) is full" if full else ""
        return self._note
