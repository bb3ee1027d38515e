"""Where control sockets live, and how the live runs of this user are found.

One folder per user, mode 0700: `$JOBFLOW_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/jobflow-tui`,
else `/tmp/jobflow-tui-<uid>`. A run's socket is named after its job's state folder
(`<hash>.sock`), so however deep the state dir, the path stays far below the 107 bytes a
Unix socket path may hold; `<hash>.json` beside it says whose run it is (for `ps`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from typing import Any

MAX_BASE = 80  # bytes of folder path, leaving room for "/<16 hex>.sock" under 107


class PlaceError(Exception):
    """The socket folder cannot be made or is not safely ours."""


def runtime_dir() -> str:
    """This user's socket folder, made (0700) if needed; PlaceError if it is not ours."""
    path = os.environ.get("JOBFLOW_RUNTIME_DIR")
    if not path:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg and os.path.isdir(xdg) and len(xdg) < MAX_BASE - 12:
            path = os.path.join(xdg, "jobflow-tui")
        else:
            path = os.path.join(tempfile.gettempdir(), f"jobflow-tui-{os.getuid()}")
    if len(path.encode()) > MAX_BASE:
        raise PlaceError(f"{path}: too long a path for Unix sockets (at most {MAX_BASE} bytes)")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise PlaceError(f"cannot make {path}: {e.strerror}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PlaceError(f"{path} is not a folder of this user's: refusing to put control sockets there")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _stem(job_dir: str) -> str:
    return hashlib.sha256(os.path.abspath(job_dir).encode()).hexdigest()[:16]


def socket_path(job_dir: str) -> str:
    """The control socket of the run of the job whose state folder is `job_dir`."""
    return os.path.join(runtime_dir(), _stem(job_dir) + ".sock")


def publish(job_dir: str, about: dict[str, Any]) -> None:
    """Say who serves the socket of `job_dir` (read by `live_runs`)."""
    path = os.path.join(runtime_dir(), _stem(job_dir) + ".json")
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(about, f)
    os.replace(tmp, path)


def withdraw(job_dir: str) -> None:
    """The run of `job_dir` is served no more: its socket and its note go."""
    base = os.path.join(runtime_dir(), _stem(job_dir))
    for path in (base + ".sock", base + ".json"):
        try:
            os.unlink(path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def live_runs() -> list[dict[str, Any]]:
    """The notes of this user's runs whose owner still lives; those of dead owners are
    cleaned away."""
    try:
        folder = runtime_dir()
        names = os.listdir(folder)
    except (PlaceError, OSError):
        return []
    found = []
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                about = json.load(f)
            pid = int(about["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid) and os.path.exists(path[: -len(".json")] + ".sock"):
            found.append(about)
        else:
            for stale in (path, path[: -len(".json")] + ".sock"):
                try:
                    os.unlink(stale)
                except OSError:
                    pass
    return found
