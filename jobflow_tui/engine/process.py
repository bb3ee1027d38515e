"""Start an attempt's process and end its tree.

Each attempt runs under a small `sh` wrapper in its own session: the wrapper writes its
pid before the command starts and the exit status when it ends, both beside the log, so a
later run can tell whether an attempt that outlived its runner still lives and how it
ended. stdout and stderr point straight at the log file: the kernel writes the bytes and
the task never depends on this process being alive.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass, field

# One small file per attempt, beside its log: `pid N` before the command starts (`$$` is the
# wrapper, leader of the session and process group), `exit C` appended by the EXIT trap
# when it ends. A wrapper killed by a signal writes no exit line, which reads as "failed".
# (One file, not two: creating files is a measurable part of a short task's cost.)
_PRE = (
    'printf "pid %d\\n" "$$" > "$JOBFLOW_STATUS_FILE"; '
    "trap 'printf \"exit %d\\n\" \"$?\" >> \"$JOBFLOW_STATUS_FILE\"' EXIT; "
)
# posix_spawn cannot change folder, so the wrapper does; a missing folder fails the attempt
# with the shell's message in the log.
SHELL_WRAPPER = _PRE + 'cd -- "$JOBFLOW_CWD" && eval "$JOBFLOW_COMMAND"'
ARGV_WRAPPER = _PRE + 'cd -- "$JOBFLOW_CWD" && "$@"'
# A command that could replace the wrapper (`exec`) or its EXIT trap (`trap`) runs in a
# shell of its own under the wrapper instead: one process more, and the status is recorded.
SUBSHELL_WRAPPER = _PRE + 'cd -- "$JOBFLOW_CWD" && /bin/sh -c "$JOBFLOW_COMMAND"'
_TAKES_OVER = re.compile(r"\b(exec|trap)\b")


@dataclass
class AttemptFiles:
    """Where one attempt keeps its log, pid, exit status and outputs."""

    base: str  # path without suffix: <run dir>/<task>/<attempt>

    @property
    def log(self) -> str:
        return self.base + ".log"

    @property
    def status(self) -> str:
        return self.base + ".status"

    @property
    def outputs(self) -> str:
        return self.base + ".out"

    def _read(self, key: bytes) -> int | None:
        try:
            with open(self.status, "rb") as f:
                for line in f.read().splitlines():
                    k, _, v = line.partition(b" ")
                    if k == key and v.strip().lstrip(b"-").isdigit():
                        return int(v)
        except OSError:
            pass
        return None

    def read_result(self) -> dict | None:
        """A Python task's result line (outputs and shared_dict), if it wrote one."""
        import json

        try:
            with open(self.status, "rb") as f:
                for line in f.read().splitlines():
                    if line.startswith(b"result "):
                        value = json.loads(line[7:])
                        return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            pass
        return None

    def read_status(self) -> int | None:
        """The exit status the wrapper recorded, or None if it recorded none."""
        return self._read(b"exit")

    def read_pid(self) -> int | None:
        """The wrapper's pid, written before the command started."""
        return self._read(b"pid")


def spawn(command: str | list[str], files: AttemptFiles, env: dict[str, str], cwd: str) -> int:
    """Start `command` (a shell string or an argv list) with output going to the log; its pid.

    posix_spawn (vfork + exec in C) costs a fraction of subprocess.Popen per task, which
    shows on jobs of many short steps.
    """
    env = dict(env)
    env["JOBFLOW_STATUS_FILE"] = files.status
    env["JOBFLOW_CWD"] = cwd
    if isinstance(command, str):
        env["JOBFLOW_COMMAND"] = command
        argv = ["/bin/sh", "-c", SUBSHELL_WRAPPER if _TAKES_OVER.search(command) else SHELL_WRAPPER]
    else:
        argv = ["/bin/sh", "-c", ARGV_WRAPPER, "jobflow-task", *command]
    fd = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        return os.posix_spawn(
            "/bin/sh",
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)


def reap(pid: int) -> int | None:
    """Collect an exited child's status: the exit code, or -N if signal N killed it."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if got == 0:
        got, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def wait_exit(pid: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A future set when process `pid` exits (any process, child or not), via a pidfd.

    Waiting through a pidfd costs no thread and no polling, unlike asyncio's default
    child watcher on Python 3.11, which starts a thread per child. Cancel the future to
    stop waiting.
    """
    fut: asyncio.Future[None] = loop.create_future()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        fut.set_result(None)
        return fut

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    def stop(_f: asyncio.Future) -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)

    loop.add_reader(pidfd, ready)
    fut.add_done_callback(stop)
    return fut


def signal_name(signum: int) -> str:
    """SIGTERM for 15; "signal N" for a number with no name here."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def group_alive(pgid: int) -> bool:
    """Whether any process, zombies aside, is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill(0) also counts zombies, which an orphan stays until init reaps it (some
    # container inits take seconds): look at the members' states.
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


@dataclass
class Tree:
    """A task's processes: its process group plus descendants that left the group."""

    pgid: int
    escaped: dict[int, float] = field(default_factory=dict)  # pid -> create time

    def track(self, root_pid: int) -> None:
        """Remember descendants now, so that those who later leave the tree can be found."""
        import psutil

        try:
            kids = psutil.Process(root_pid).children(recursive=True)
        except psutil.Error:
            return
        for p in kids:
            try:
                if os.getpgid(p.pid) != self.pgid:
                    self.escaped.setdefault(p.pid, p.create_time())
            except (psutil.Error, OSError):
                pass

    def _escaped_alive(self) -> list:
        if not self.escaped:
            return []  # the common case, without importing psutil
        import psutil

        alive = []
        for pid, created in list(self.escaped.items()):
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
                    continue
            except psutil.Error:
                pass
            del self.escaped[pid]
        return alive

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in self._escaped_alive():
            try:
                p.send_signal(sig)
            except Exception:  # psutil.Error: it may have gone meanwhile
                pass

    def alive(self) -> bool:
        return group_alive(self.pgid) or bool(self._escaped_alive())

    async def kill(self, grace: float, root_pid: int | None = None) -> None:
        """SIGTERM everything, wait up to `grace` seconds, then SIGKILL what is left."""
        if root_pid is not None:
            self.track(root_pid)
        self.signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        delay = 0.005
        while self.alive() and loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        if self.alive():
            self.signal(signal.SIGKILL)
            # SIGKILL cannot be ignored; give the kernel a moment to tear the tree down.
            for _ in range(100):
                if not self.alive():
                    break
                await asyncio.sleep(0.01)
