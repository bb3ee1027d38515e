"""Attempts on this machine: commands under a shell wrapper, Python tasks in the worker.

Both write their pid and exit status to the run's journal and their output straight into
the attempt's log, so an attempt outlives its runner and can be re-attached to.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Future

from ..jobdef.model import JobDef
from ..journal import AttemptFiles
from . import contain, process
from .executor import AttemptRequest, Outcome
from .outputs import parse_outputs, recorded_outcome, with_local_names


class _Local:
    """What every local attempt has: a main process, its tree, a place in a cgroup."""

    ended: asyncio.Future[None]  # set up by watch()

    def __init__(self, pid: int, files: AttemptFiles, create_time: float | None = None) -> None:
        self.pid: int | None = pid
        self.create_time = create_time
        self.files = files
        self.tree = process.Tree(pid)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.pid is not None
        self.ended = process.wait_exit(self.pid, loop)

    async def stop(self, grace: float) -> None:
        await self.tree.kill(grace, self.pid)

    def signal(self, sig: int) -> None:
        self.tree.signal(sig)

    def alive(self) -> bool:
        return self.tree.alive()

    def claim(self, pid: int) -> None:
        self.tree.add(pid)

    def track(self) -> None:
        import psutil

        assert self.pid is not None
        if self.create_time is None:
            try:
                self.create_time = psutil.Process(self.pid).create_time()
            except psutil.Error:
                pass
        self.tree.track(self.pid)

    def release(self) -> None:
        pass

    async def clean_up(self, grace: float) -> None:
        if self.tree.alive():  # only what it left behind: its main process is gone
            await self.tree.kill(grace)
        else:
            self.tree.release()

    async def outcome(self) -> Outcome:
        """For an attempt that is not our child: what it recorded."""
        return recorded_outcome(self.files, self.files.read_status())


class CommandExecution(_Local):
    """A command we started: our child, reaped here."""

    def __init__(self, pid: int, files: AttemptFiles, children: set[int]) -> None:
        super().__init__(pid, files)
        self.child: int | None = pid  # until reaped
        self.children = children  # the executor's unreaped children, this one among them

    def track(self) -> None:
        super().track()
        cgroups = contain.cgroup_base()  # looked up once, when an attempt first runs long
        if cgroups and self.tree.cgroup is None:
            assert self.pid is not None
            self.tree.contain(contain.Cgroup(cgroups, self.files.status, self.files.key), self.pid)

    async def outcome(self) -> Outcome:
        code = None
        if self.child is not None:
            code = process.reap(self.child)
            self.children.discard(self.child)
            self.child = None
        outputs = parse_outputs(self.files.outputs) if os.path.exists(self.files.outputs) else {}
        return Outcome(code, outputs)


class Reattached(_Local):
    """An attempt a runner that died had started, watched again: its status comes from the journal."""


class PythonExecution(_Local):
    """An attempt in a slot of the Python worker (a child of the worker, not of ours).

    A slot whose attempt succeeded and left nothing behind reports the end on a pipe and
    lives on for another attempt: `ended` is then set by that report, not by its exit.
    """

    def __init__(self, pid: int, files: AttemptFiles, worker, reported: Future[None]) -> None:
        super().__init__(pid, files)
        self.worker = worker
        self.reported = reported
        self.kept = False  # the slot lives on: released (not ended) once we are done with it

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.pid is not None
        exited = process.wait_exit(self.pid, loop)
        reported = asyncio.wrap_future(self.reported, loop=loop)
        self.ended = loop.create_future()

        def first(fut: asyncio.Future) -> None:
            if self.ended.done():
                return
            if fut is reported:
                self.kept = True
                exited.cancel()  # closes the pidfd: this process goes on to other attempts
            else:
                reported.cancel()
                self.worker.forget(self.files.status, self.files.key)
            self.ended.set_result(None)

        exited.add_done_callback(first)
        reported.add_done_callback(first)

    async def outcome(self) -> Outcome:
        code = self.files.read_status()
        # The worker's reaper records the status of a slot that died abruptly just after
        # the exit we saw: give it a moment.
        for _ in range(50):
            if code is not None:
                break
            await asyncio.sleep(0.01)
            code = self.files.read_status()
        return recorded_outcome(self.files, code)

    def release(self) -> None:
        if self.kept:
            assert self.pid is not None
            self.worker.release(self.pid)  # only now: an abort of this attempt can no longer reach it

    async def clean_up(self, grace: float) -> None:
        if self.kept:
            return  # it lives on for another attempt, with nothing left behind
        # It is reaped by its worker, not by us, and a zombie still counts as a member of
        # its group: a moment first.
        await asyncio.sleep(0.05)
        if self.tree.alive():
            await self.tree.kill(grace)


class _LocalExecutor:
    def reattach(self, files: AttemptFiles, pid: int | None, create_time: float | None) -> Reattached | None:
        proc = process.live_attempt(files, pid, create_time)
        if proc is None:
            return None
        found = Reattached(proc.pid, files, proc.create_time())
        cgroups = contain.cgroup_base()
        if cgroups:
            cgroup = contain.Cgroup(cgroups, files.status, files.key)
            if cgroup.exists():
                found.tree.cgroup = cgroup  # made by the runner that died
        return found


class LocalCommands(_LocalExecutor):
    """Commands: a shell string or an argv list, under the recording wrapper."""

    quick_start = True  # posix_spawn returns once the shell has exec'd
    # `starting` finds the shell itself: it exists, so it will record its pid; a loaded
    # machine can keep it waiting for the CPU past a second.
    start_grace = 5.0

    def __init__(self) -> None:
        self._children: set[int] = set()

    def start(self, request: AttemptRequest) -> CommandExecution:
        assert request.spec.command is not None
        with contain.GATE.starting():
            pid = process.spawn(request.spec.command, request.files, request.env, request.spec.cwd)
            self._children.add(pid)
        return CommandExecution(pid, request.files, self._children)

    def starting(self, attempts: list[AttemptFiles]) -> set[str]:
        return process.attempts_alive(attempts)

    def own_pids(self) -> set[int]:
        return set(self._children)  # each reaped by its execution's outcome()

    def holds(self) -> bool:
        return False

    def close(self) -> None:
        pass


class LocalPython(_LocalExecutor):
    """Python task classes, run in slots of a worker process that imported them."""

    quick_start = False  # a fork in the worker, and the worker's own start on first use
    start_grace = 1.0  # `starting` cannot tell (see there): a bounded moment for any of them

    def __init__(self, job: JobDef) -> None:
        self.job = job
        self.used = False

    def start(self, request: AttemptRequest) -> PythonExecution:
        from ..worker.client import sources, worker_for

        self.used = True
        spec, files = request.spec, request.files
        worker = worker_for(*sources(self.job), starting=contain.GATE.starting)  # the worker is our child
        # pull_output() knows every task it depends on, those that published nothing too.
        upstream = {n: request.upstream.get(n, {}) for n in self.job.upstream([request.task]) if n != request.task}
        upstream = with_local_names(request.task, upstream, self.job.subflows)
        pid, reported = worker.run({
            "op": "run",
            "task": request.task,
            "class": spec.python_class,
            "params": spec.parameters,
            "job_params": request.params,
            "attempt": request.attempt,
            "restart": request.attempt > 1,
            "upstream": upstream,
            "shared_dict": request.shared_dict,
            "env": {**request.env, "JOBFLOW_STATUS_FILE": files.status, "JOBFLOW_ATTEMPT_KEY": files.key},
            "cwd": spec.cwd,
            "log": files.log,
            "status": files.status,
            "key": files.key,
        })
        return PythonExecution(pid, files, worker, reported)

    def starting(self, attempts: list[AttemptFiles]) -> set[str]:
        # A forked slot carries the worker's environment: nothing tells it apart until it
        # records its pid, which it does within milliseconds of the request. Any may be.
        return {a.key for a in attempts}

    def own_pids(self) -> set[int]:
        if not self.used:
            return set()
        from ..worker.client import worker_pids

        return worker_pids()

    def holds(self) -> bool:
        return self.used

    def close(self) -> None:
        if self.used:
            from ..worker.client import close_workers

            close_workers()
