"""The viewer's side of a control socket: requests from the shell, and `RemoteRun`, the run
API of a run owned by another process (what an attached dashboard shows and drives)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..engine.events import ABORTED, ACTIVE, FAILED, RUNNING, SUCCEEDED, Event, Paused, StateChanged
from ..engine.statedir import attempt_files
from . import place
from .protocol import MAX_MESSAGE, encode, event_from_message


class NoLiveRun(Exception):
    """Nobody serves the run (no live owner)."""


class ControlError(Exception):
    """The owner refused a request; `unknown`: it names no task of the job."""

    def __init__(self, message: str, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


def connect(job_dir: str, timeout: float = 5.0) -> socket.socket:
    """A connection to the owner of the run of `job_dir` (NoLiveRun if there is none)."""
    try:
        path = place.socket_path(job_dir)
    except place.PlaceError as e:
        raise NoLiveRun(str(e)) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            # The owner's accept queue is full (it is busy, or being flooded with
            # connections): a unix socket refuses at once rather than waiting, so wait here.
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            sock.close()
            raise NoLiveRun(f"the owner of {job_dir} does not accept connections") from None
        except OSError:
            sock.close()
            raise NoLiveRun(f"no live run of {job_dir}") from None


def request(job_dir: str, op: str, timeout: float = 60.0, **fields: Any) -> Any:
    """One request to the owner, blocking; its result (ControlError if refused)."""
    with contextlib.closing(connect(job_dir)) as sock:
        sock.settimeout(timeout)
        sock.sendall(encode({"id": 1, "op": op, **fields}))
        reply = _read_line(sock)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")), bool(reply.get("unknown")))
    return reply.get("result")


def _read_line(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise NoLiveRun("the owner closed the connection")
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise NoLiveRun("the owner's reply is too long")
    return json.loads(data)


class RemoteTask:
    """A task as a viewer in another process sees it (the TaskView of the run API)."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.dependencies: list[str] = list(data.get("dependencies") or [])
        self.max_attempts = int(data.get("max_attempts") or 1)
        definition = data.get("definition")
        self.definition: dict[str, Any] = definition if isinstance(definition, dict) else {}
        self.update(data)

    def update(self, d: dict[str, Any]) -> None:
        self.state = str(d.get("state"))
        self.attempt = int(d.get("attempt") or 0)
        self.attempts = int(d.get("attempts") or 0)
        self.exit_code = d.get("exit_code")
        self.started_at, self.finished_at = d.get("started_at"), d.get("finished_at")
        self.pid = d.get("pid")
        self.logs: list[str] = list(d.get("logs") or [])
        self.reason = str(d.get("reason") or "")
        self.selected = d.get("selected") is not False
        self.emitted: int | None = d.get("emitted")

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


class RemoteRun:
    """The run API of a run owned by another process, kept up to date from its events."""

    def __init__(self, job_dir: str, snap: dict[str, Any]) -> None:
        self.job_dir = job_dir
        self.notes: list[str] = []
        self.order: list[str] = list(snap["order"])
        subflows = snap.get("subflows")
        self.subflows: dict[str, list[str]] = dict(subflows) if isinstance(subflows, dict) else {}
        self.tasks: Mapping[str, RemoteTask] = {n: RemoteTask(n, snap["tasks"][n]) for n in self.order}
        self._children: dict[str, list[str]] = {n: [] for n in self.order}
        for n, t in self.tasks.items():
            for d in t.dependencies:
                self._children.setdefault(d, []).append(n)
        self._apply(snap)
        self._listeners: list[Callable[[Event], None]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._replies: dict[int, asyncio.Future] = {}
        self._next_id = 1
        self.ended: asyncio.Future | None = None  # set with the run's exit code when it ends
        # Called with the picture the subscription starts from, before any of its events.
        self.on_subscribed: Callable[[], None] | None = None
        self._subscribe_id = -1
        self._read_to: dict[str, int] = {}  # per task: bytes of its log read (offsets mode)

    @classmethod
    def fetch(cls, job_dir: str) -> RemoteRun:
        """A first picture of the run (blocking); `start` then follows it live."""
        return cls(job_dir, request(job_dir, "snapshot"))

    def _apply(self, snap: dict[str, Any]) -> None:
        self.job_name, self.job_path = str(snap["job"]), str(snap["path"])
        self.run_id, self.started_at = str(snap["run_id"]), float(snap["started_at"])
        self.paused, self.limit = bool(snap["paused"]), int(snap["limit"])
        for n, t in snap["tasks"].items():
            if n in self.tasks:
                self.tasks[n].update(t)

    async def start(self, offsets: bool = False) -> None:
        """Connect, subscribe, and follow the run's events (on the running loop). With
        `offsets`, output is read from the logs here, the owner saying only how far
        (see the protocol): it then costs the run next to nothing."""
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        reader, self._writer = await asyncio.open_unix_connection(place.socket_path(self.job_dir), limit=MAX_MESSAGE)
        self._reader_task = asyncio.ensure_future(self._read(reader))
        self._subscribe_id = self._next_id
        await self._ask("subscribe", **({"output": "offsets"} if offsets else {}))

    def _from_log(self, message: dict[str, Any]) -> bytes:
        """The lines an offsets-only output event stands for, read from the task's log."""
        t = self.tasks.get(str(message["task"]))
        if t is None or not t.logs:
            return b""
        start, end = self._read_to.get(t.name, 0), int(message["end"])
        self._read_to[t.name] = end
        try:
            with open(t.logs[-1], "rb") as f:
                data = os.pread(f.fileno(), max(0, end - start), start)
        except OSError:
            return b""
        return data[:-1] if data.endswith(b"\n") else data  # a block's lines carry no final newline

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        code = None
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "id" in message:
                    if message["id"] == self._subscribe_id and message.get("ok"):
                        self._apply(message["result"])  # now, before the events that follow it
                        self._read_to = {n: t.emitted or 0 for n, t in self.tasks.items()}
                        if self.on_subscribed is not None:
                            self.on_subscribed()
                    fut = self._replies.pop(message["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(message)
                elif message.get("event") == "end":
                    code = int(message.get("exit_code", 1))
                    break
                else:
                    if message.get("event") == "output" and "bytes" in message:
                        message["data"] = await reader.readexactly(int(message["bytes"]))
                        task = str(message.get("task"))
                        self._read_to[task] = self._read_to.get(task, 0) + len(message["data"]) + 1
                    elif message.get("event") == "output":
                        # Off the loop: a block may be megabytes of a log (in order all the same).
                        message["data"] = await asyncio.to_thread(self._from_log, message)
                    self._event(message)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            for fut in self._replies.values():
                if not fut.done():
                    fut.set_exception(NoLiveRun("the run's owner is gone"))
            if self.ended is not None and not self.ended.done():
                self.ended.set_result(code)

    def _event(self, message: dict[str, Any]) -> None:
        e = event_from_message(message)
        if e is None:
            return
        if isinstance(e, StateChanged) and e.task in self.tasks:
            t = self.tasks[e.task]
            t.state, t.attempt, t.exit_code, t.reason = e.state, e.attempt, e.exit_code, e.reason
            t.started_at, t.finished_at = e.started_at, e.finished_at
            if e.state == RUNNING and e.previous != RUNNING:
                t.attempts += 1
                t.logs.append(attempt_files(self.run_dir, e.task, t.attempts).log)
                self._read_to[e.task] = 0
            t.pid = None if e.state != RUNNING else t.pid
        elif isinstance(e, Paused):
            self.paused = e.paused
        for listener in list(self._listeners):
            listener(e)

    async def _ask(self, op: str, **fields: Any) -> Any:
        if self._writer is None:
            raise NoLiveRun("not connected")
        rid, self._next_id = self._next_id, self._next_id + 1
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        self._writer.write(encode({"id": rid, "op": op, **fields}))
        reply = await fut
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error")), bool(reply.get("unknown")))
        return reply.get("result")

    def _send(self, op: str, **fields: Any) -> asyncio.Future:
        return asyncio.ensure_future(self._ask(op, **fields))

    # ---- the run API ------------------------------------------------------------

    @property
    def run_dir(self) -> str:
        return os.path.join(self.job_dir, "runs", self.run_id)

    def running(self) -> int:
        return sum(1 for t in self.tasks.values() if t.state == RUNNING)

    def emitted(self, name: str) -> int | None:
        return self.tasks[name].emitted

    def active(self) -> list[RemoteTask]:
        return [t for t in self.tasks.values() if t.state in ACTIVE]

    def downstream(self, name: str) -> list[str]:
        seen: set[str] = set()
        stack = list(self._children.get(name, []))
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._children.get(n, []))
        return [n for n in self.order if n in seen]

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _states(self, name: str) -> set[str]:
        return {self.tasks[n].state for n in self.subflows.get(name, [name])}

    def retry(self, name: str) -> bool:
        if not self._states(name) & {FAILED, ABORTED}:
            return False
        self._send("retry", task=name)
        return True

    def restart(self, name: str) -> asyncio.Future:
        return self._send("restart", task=name)

    def abort(self, name: str) -> asyncio.Future | None:
        if not self._states(name) & set(ACTIVE):
            return None
        return self._send("abort", task=name)

    def abort_all(self) -> asyncio.Future:
        return self._send("abort_all")

    def pause(self) -> None:
        self.paused = True
        self._send("pause")

    def unpause(self) -> None:
        self.paused = False
        self._send("unpause")

    def stop(self) -> asyncio.Future:
        """Ask the owner to end the run: abort all and quit."""
        return self._send("stop")

    def exit_code(self) -> int:
        return 0 if all(t.state == SUCCEEDED for t in self.tasks.values() if t.selected) else 1
