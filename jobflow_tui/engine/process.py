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
from typing import TYPE_CHECKING

from ..journal import SHELL_PREFIX, AttemptFiles

if TYPE_CHECKING:
    import psutil

    from .contain import Cgroup

# posix_spawn cannot change folder, so the wrapper does; a missing folder fails the attempt
# with the shell's message in the log.
SHELL_WRAPPER = SHELL_PREFIX + 'cd -- "$JOBFLOW_CWD" && eval "$JOBFLOW_COMMAND"'
ARGV_WRAPPER = SHELL_PREFIX + 'cd -- "$JOBFLOW_CWD" && "$@"'
# A command that could replace the wrapper (`exec`) or its EXIT trap (`trap`) runs in a
# shell of its own under the wrapper instead: one process more, and the status is recorded.
SUBSHELL_WRAPPER = SHELL_PREFIX + 'cd -- "$JOBFLOW_CWD" && /bin/sh -c "$JOBFLOW_COMMAND"'
# One environment variable (or argument) holds at most 128 KiB on Linux: a longer command
# goes through a file beside the log, read by the same shell (or a shell of its own).
MAX_INLINE_COMMAND = 64 * 1024
FILE_WRAPPER = SHELL_PREFIX + 'cd -- "$JOBFLOW_CWD" && . "$JOBFLOW_COMMAND_FILE"'
FILE_SUBSHELL_WRAPPER = SHELL_PREFIX + 'cd -- "$JOBFLOW_CWD" && /bin/sh "$JOBFLOW_COMMAND_FILE"'
_TAKES_OVER = re.compile(r"\b(exec|trap)\b")
# A task starts as from a shell: every signal at its default, none blocked. Python ignores
# SIGPIPE (and whoever started us may have ignored or blocked others); exec keeps ignored
# dispositions and the mask, so both are reset explicitly. (glibc's posix_spawn sets its
# own two internal signals, 32 and 33, to ignored in the child; nothing outside glibc uses them.)
_DEFAULT_SIGNALS = sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


def spawn(command: str | list[str], files: AttemptFiles, env: dict[str, str], cwd: str) -> int:
    """Start `command` (a shell string or an argv list) with output going to the log; its pid.

    posix_spawn (vfork + exec in C) costs a fraction of subprocess.Popen per task, which
    shows on jobs of many short steps.
    """
    env = dict(env)
    env["JOBFLOW_STATUS_FILE"] = files.status
    env["JOBFLOW_ATTEMPT_KEY"] = files.key
    env["JOBFLOW_CWD"] = cwd
    if isinstance(command, str) and len(command) > MAX_INLINE_COMMAND:
        path = files.base + ".command"
        with open(path, "w", encoding="utf-8") as f:
            f.write(command + "\n")
        env["JOBFLOW_COMMAND_FILE"] = path
        argv = ["/bin/sh", "-c", FILE_SUBSHELL_WRAPPER if _TAKES_OVER.search(command) else FILE_WRAPPER]
    elif isinstance(command, str):
        env["JOBFLOW_COMMAND"] = command
        argv = ["/bin/sh", "-c", SUBSHELL_WRAPPER if _TAKES_OVER.search(command) else SHELL_WRAPPER]
    else:
        argv = ["/bin/sh", "-c", ARGV_WRAPPER, "jobflow-task", *command]
    env["JOBFLOW_LOG"] = files.log
    return os.posix_spawn(
        "/bin/sh",
        argv,
        env,
        file_actions=[
            # The wrapper points stdout and stderr at the log itself (see SHELL_PREFIX).
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        setsigdef=_DEFAULT_SIGNALS,
        setsigmask=(),
    )


def attempts_alive(attempts: list[AttemptFiles]) -> set[str]:
    """Keys of those command attempts that have a process (found by its environment).

    For a runner that died: an attempt it was starting either exists now, or never will.
    """
    if not attempts:
        return set()
    wanted = {(b"JOBFLOW_ATTEMPT_KEY=" + a.key.encode(), b"JOBFLOW_STATUS_FILE=" + a.status.encode()): a.key
              for a in attempts}
    found: set[str] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
        except OSError:
            continue
        for (key, status), name in wanted.items():
            if key in env and status in env:
                found.add(name)
    return found


def live_attempt(files: AttemptFiles, pid: int | None, created: float | None) -> psutil.Process | None:
    """The live process of an attempt that outlived its runner, or None.

    A pid alone proves little (pids are reused): the process must have the create time
    recorded for it, or carry the attempt's environment (a command's wrapper), or have
    been started before the attempt recorded its pid (a Python attempt forked from the
    worker, whose environment is the worker's).
    """
    import psutil

    pid = pid or files.read_pid()
    if not pid:
        return None
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        if created is not None:
            return p if abs(p.create_time() - created) < 0.05 else None
        env = p.environ()
        if env.get("JOBFLOW_ATTEMPT_KEY") == files.key and env.get("JOBFLOW_STATUS_FILE") == files.status:
            return p
        written = files.records().get("time")
        return p if written is not None and p.create_time() <= written else None
    except (psutil.Error, OSError):
        return None


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
    cgroup: Cgroup | None = None  # where the machine allows it: everything, wherever it went

    def add(self, pid: int) -> None:
        """A process of this tree found outside it (an orphan that came back to the runner)."""
        import psutil

        try:
            self.escaped.setdefault(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            pass

    def contain(self, cgroup: Cgroup, root_pid: int) -> None:
        """Move the whole tree into `cgroup`, where what it starts later stays too."""
        import psutil

        self.cgroup = cgroup
        for _ in range(2):  # a process forked during the first pass is moved by the second
            self.track(root_pid)
            try:
                members = [root_pid] + [p.pid for p in psutil.Process(root_pid).children(recursive=True)]
            except psutil.Error:
                members = [root_pid]
            cgroup.add(members + [p.pid for p in self._escaped_alive()])

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
        if self.cgroup is not None:
            self.cgroup.signal(sig)

    def alive(self) -> bool:
        return (group_alive(self.pgid) or bool(self._escaped_alive())
                or (self.cgroup is not None and bool(self.cgroup.pids())))

    def release(self) -> None:
        """The tree is gone: remove its cgroup (tried again later while it is not empty)."""
        if self.cgroup is not None and self.cgroup.remove():
            self.cgroup = None

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
        for _ in range(50):  # an emptied cgroup can be removed a moment after its last exit
            self.release()
            if self.cgroup is None:
                break
            await asyncio.sleep(0.02)
