"""Commands on a Dask cluster: `config.executor: dask://HOST:PORT` (a running scheduler) or
`dask:local` (a LocalCluster of worker processes started for the run).

Each attempt is one Dask task running `worker.remote.run_attempt`; its output comes back
as numbered events on the attempt's own topic and is written here into the attempt's log
file, which the scheduler tails as for a local attempt. An abort sets the attempt's
`distributed.Event`, which the task watches. A worker lost under an attempt fails it with
a reason that says so (retries then apply); the scheduler of a `dask:local` cluster does
not give a lost task to another worker, and on any cluster a second start refuses to run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from typing import Any

from ..jobdef.model import JobDef
from ..journal import AttemptFiles
from .executor import AttemptRequest, Outcome
from .outputs import parse_outputs, with_local_names

WAIT_FOR_OUTPUT = 10.0  # seconds an ended attempt's last output events may lag its result


def task_key(files: AttemptFiles) -> str:
    """The Dask key of an attempt, from its files (so a runner that resumes the run finds it;
    the same for no other attempt of any run: its run's folder is in it)."""
    run_dir = os.path.dirname(files.base)
    digest = hashlib.sha256(run_dir.encode()).hexdigest()[:12]
    return f"jobflow-{os.path.basename(run_dir)}-{digest}-{files.key}"


class DaskExecutor:
    """Attempts of command tasks on a Dask cluster (connected at the first attempt)."""

    quick_start = False
    start_grace = 0.0  # an attempt on a cluster records no pid here: nothing to wait for on resume

    def __init__(self, address: str, job: JobDef, resources: dict[str, float]) -> None:
        self.address, self.job = address, job
        self.resources = resources  # the most any task needs of each: what a dask:local worker offers
        self.client: Any = None
        self.cluster: Any = None
        self._own: set[int] = set()
        self._lock = threading.Lock()

    def connect(self) -> Any:
        """The client (blocking: starts a LocalCluster for dask:local)."""
        with self._lock:
            if self.client is None:
                import dask
                from distributed import Client, LocalCluster

                if self.address == "dask:local":
                    import psutil

                    before = {p.pid for p in psutil.Process().children()}
                    # Its scheduler runs here: a task whose worker died fails at once, never runs again.
                    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                        self.cluster = LocalCluster(n_workers=max(2, min(4, os.cpu_count() or 2)),
                                                    threads_per_worker=4, processes=True, dashboard_address=None,
                                                    resources=self.resources or None, silence_logs=40)
                    self.client = Client(self.cluster, set_as_default=False)
                    # The cluster's processes are children of this one: not orphans of attempts.
                    self._own = {p.pid for p in psutil.Process().children()} - before
                else:
                    self.client = Client("tcp://" + self.address.removeprefix("dask://"), set_as_default=False,
                                         timeout=30)
            return self.client

    def start(self, request: AttemptRequest) -> DaskExecution:
        from ..worker.remote import run_attempt

        client = self.connect()
        spec = request.spec
        key = task_key(request.files)
        python = None
        if spec.python_class:
            from ..worker.client import sources

            dirs, packages, files = sources(self.job)
            argv = []  # the worker's own interpreter runs it
            python = {"op": "run", "task": request.task, "class": spec.python_class, "params": spec.parameters,
                      "job_params": request.params, "attempt": request.attempt, "restart": request.attempt > 1,
                      "upstream": with_local_names(request.task, {n: request.upstream.get(n, {}) for n in
                                                                  self.job.upstream([request.task]) if n != request.task},
                                                   self.job.subflows),
                      "shared_dict": request.shared_dict, "cwd": spec.cwd, "key": request.files.key,
                      "dirs": dirs, "packages": packages, "files": files}
        else:
            argv = ["/bin/sh", "-c", spec.command] if isinstance(spec.command, str) else list(spec.command or [])
        execution = DaskExecution(client, key, request.files)
        client.subscribe_topic(execution.topic, execution.on_output)
        req = {"argv": argv, "env": request.env, "cwd": spec.cwd, "topic": execution.topic, "claim": f"{key}-claim",
               "abort": execution.abort_name, "done": f"{key}-done", "grace": spec.kill_grace,
               "attempt_key": request.files.key, "status_file": request.files.status, "python": python}
        execution.future = client.submit(run_attempt, req, key=key, pure=False, retries=0,
                                         resources=dict(spec.resources) or None)
        return execution

    def reattach(self, files: AttemptFiles, pid: int | None, create_time: float | None) -> None:
        """An attempt a runner that died had started on the cluster: its output went to that
        runner, so it is not followed again but ended (its whole tree, on its worker), and
        waited for, before the resumed run starts the task again: never twice at once."""
        from distributed import Event

        key = task_key(files)
        try:
            client = self.connect()
            Event(f"{key}-abort", client=client).set()
            if Event(f"{key}-claim", client=client).is_set():
                Event(f"{key}-done", client=client).wait(timeout=60)
        except Exception:  # noqa: BLE001 - a cluster out of reach: its attempts end with it (README)
            pass
        _end_local_leftovers(files)
        return None

    def starting(self, attempts: list[AttemptFiles]) -> set[str]:
        return set()

    def own_pids(self) -> set[int]:
        return set(self._own)

    def holds(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        with self._lock:
            client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close(timeout=10)
        if cluster is not None:
            cluster.close(timeout=30)


class DaskExecution:
    """One attempt on the cluster."""

    pid: int | None = None
    create_time: float | None = None
    ended: asyncio.Future[None]

    def __init__(self, client: Any, key: str, files: AttemptFiles) -> None:
        self.client, self.key, self.files = client, key, files
        self.topic = f"{key}-output"
        self.abort_name = f"{key}-abort"
        self.future: Any = None
        self._log = open(files.log, "ab")  # noqa: SIM115 - closed in clean_up
        self._next = 0  # the next output event to write
        self._early: dict[int, bytes] = {}  # events that came before one still missing
        self._written = threading.Condition()

    def on_output(self, event: Any) -> None:
        """A batch of output (on the client's thread): written in order, whatever order it comes in."""
        msg = event[1] if isinstance(event, tuple) else event
        with self._written:
            if self._log.closed:
                return
            self._early[int(msg["seq"])] = msg["data"]
            while self._next in self._early:
                self._log.write(self._early.pop(self._next))
                self._next += 1
            self._log.flush()
            self._written.notify_all()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ended = loop.create_future()

        def done(_future: Any) -> None:
            loop.call_soon_threadsafe(lambda: self.ended.done() or self.ended.set_result(None))

        self.future.add_done_callback(done)

    async def outcome(self) -> Outcome:
        return await asyncio.to_thread(self._outcome)

    def _outcome(self) -> Outcome:
        from distributed import KilledWorker

        if self.future.status != "finished":
            try:
                error = self.future.exception(timeout=10)
            except Exception as e:  # noqa: BLE001 - cancelled, or the cluster went away
                error = e
            if isinstance(error, KilledWorker) or type(error).__name__ == "NotRunTwice":
                why = "worker lost while it ran the attempt"
                if type(error).__name__ == "NotRunTwice":
                    why += f" ({error})"
            else:
                why = f"failed on the cluster: {type(error).__name__}: {error}"
            return Outcome(None, reason=why)
        result = self.future.result()
        deadline = time.monotonic() + WAIT_FOR_OUTPUT
        with self._written:  # every output event in the log before the end is told
            while self._next < result["chunks"] and time.monotonic() < deadline:
                self._written.wait(0.1)
        if result.get("outputs"):
            with open(self.files.outputs, "w", encoding="utf-8") as f:
                f.write(result["outputs"])
        outputs = parse_outputs(self.files.outputs) if result.get("outputs") else {}
        returned = result.get("result") or {}  # a Python task's: what run() returned, its shared_dict
        if isinstance(returned.get("outputs"), dict):
            outputs.update(returned["outputs"])
        shared = returned.get("shared_dict")
        return Outcome(result["code"], outputs, shared if isinstance(shared, dict) else None)

    async def stop(self, grace: float) -> None:
        await asyncio.to_thread(self.signal, 15)
        try:
            await asyncio.wait_for(asyncio.shield(self.ended), grace + 30)
        except TimeoutError:
            await asyncio.to_thread(self.future.cancel)

    def signal(self, sig: int) -> None:
        from distributed import Event

        Event(self.abort_name, client=self.client).set()

    def alive(self) -> bool:
        return self.future is not None and not self.future.done()

    def track(self) -> None:
        pass

    def claim(self, pid: int) -> None:
        pass

    def release(self) -> None:
        pass

    async def clean_up(self, grace: float) -> None:
        def close() -> None:
            try:
                self.client.unsubscribe_topic(self.topic)
            except Exception:  # noqa: BLE001, S110 - the cluster may be gone
                pass
            with self._written:
                self._log.close()

        await asyncio.to_thread(close)


def _end_local_leftovers(files: AttemptFiles, grace: float = 5.0) -> None:
    """On this machine (a dask:local cluster dies with its runner, the commands it ran do
    not): the processes that carry the attempt's key, ended (SIGTERM, SIGKILL after `grace`)."""
    import psutil

    wanted = {f"JOBFLOW_ATTEMPT_KEY={files.key}".encode(), f"JOBFLOW_STATUS_FILE={files.status}".encode()}
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    if wanted <= set(f.read().split(b"\0")):
                        found.append(psutil.Process(int(entry.name)))
            except (OSError, psutil.Error):
                continue
    for p in found:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(found, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
