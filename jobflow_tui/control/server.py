"""The owner's side of a control socket: the run API of the process that owns a run,
served to any number of viewers of its user.

Only its user gets in: the socket lives in a 0700 folder, is itself 0600, and the peer's
uid is checked on every connection. Every client is untrusted: a request that breaks the
protocol drops it; a client that does not read its events has at most MAX_QUEUED bytes
waiting before it is dropped; neither stops or slows the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..engine.events import Event, Output
from ..engine.run import Run, snapshot, state_of
from . import place
from .protocol import MAX_REQUEST, ProtocolError, encode, encode_event, parse_request

MAX_QUEUED = 32 * 1024 * 1024  # bytes of events waiting for one slow client
STALL = 2.0  # seconds without reading after which a client is let go when the run ends


class Client:
    """One connection: its replies and events go out in order through a bounded queue."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.ready = asyncio.Event()
        self.closed = False
        self.subscribed = False
        self.offsets = False  # output as where it ends in the log, not its bytes (see protocol)

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.queued + len(data) > MAX_QUEUED:
            self.close()  # it does not keep up: dropped, rather than holding the run's memory
            return
        self.queue.append(data)
        self.queued += len(data)
        self.ready.set()

    async def pump(self) -> None:
        try:
            while not self.closed:
                await self.ready.wait()
                self.ready.clear()
                while self.queue:
                    data = self.queue.popleft()
                    self.queued -= len(data)
                    self.writer.write(data)
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection now: what waits is discarded (a peer that reads nothing
        would keep a graceful close waiting for ever)."""
        if not self.closed:
            self.closed = True
            self.queue.clear()
            self.ready.set()
            self.writer.transport.abort()


def peer_uid(sock: socket.socket) -> int:
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


class ControlServer:
    """Serves `run` on the control socket of its job's state folder `job_dir`.

    `stop` is called (on the loop) when a client asks the run to stop: abort all and quit.
    """

    def __init__(self, run: Run, job_dir: str, kind: str, stop: Callable[[], Any]) -> None:
        self.run = run
        self.job_dir = job_dir
        self.kind = kind  # "dashboard", "headless" or "detached"
        self.stop = stop
        self.clients: set[Client] = set()
        self._serving: set[asyncio.Task] = set()  # one per connection, ended before we are
        self._server: asyncio.AbstractServer | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.about: dict[str, Any] = {}

    async def start(self) -> None:
        """Listen (a stale socket of a dead owner is replaced: the state dir's lock is ours)."""
        path = place.socket_path(self.job_dir)
        place.withdraw(self.job_dir)
        # Bound under a private name and made 0600 before it gets its public one, so that
        # nobody ever finds it with the umask's mode.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = f"{path}.{os.getpid()}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        sock.bind(staging)
        os.chmod(staging, 0o600)
        os.rename(staging, path)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_REQUEST, backlog=1024)
        self.about = {"job": self.run.job_name, "path": self.run.job_path, "run_id": self.run.run_id,
                      "pid": os.getpid(), "kind": self.kind, "started_at": self.run.started_at,
                      "state_dir": self.job_dir, "socket": path}
        place.publish(self.job_dir, self.about)
        self._unsubscribe = self.run.subscribe(self._event)

    async def close(self, exit_code: int) -> None:
        """The run is over: tell the viewers, close every connection, remove the socket."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for client in list(self.clients):
            if client.subscribed:
                client.send(encode({"event": "end", "exit_code": exit_code}))
        if self._server is not None:
            self._server.close()
        place.withdraw(self.job_dir)
        # What subscribers have still to read is theirs (a server relaying a flood to its
        # readers may be well behind): the run waits while they read it, and lets go of
        # whoever stops reading for STALL seconds.
        left, progress = self._unsent(), time.monotonic()
        while left and time.monotonic() - progress < STALL:
            await asyncio.sleep(0.01)
            now_left = self._unsent()
            if now_left < left:
                progress = time.monotonic()
            left = now_left
        for client in list(self.clients):
            client.close()
        if self._serving:
            await asyncio.wait(self._serving, timeout=2.0)

    def _unsent(self) -> int:
        """Bytes queued for clients or waiting in their sockets' buffers."""
        total = 0
        for c in self.clients:
            if not c.closed:
                total += c.queued + c.writer.transport.get_write_buffer_size()
        return total

    def _event(self, e: Event) -> None:
        if not any(client.subscribed for client in self.clients):
            return  # nobody listens: nothing to encode
        data = encode_event(e)
        if data is None:
            return
        short = None
        if isinstance(e, Output) and any(c.offsets for c in self.clients):
            end = self.run.emitted(e.task)
            if end is not None:  # else the attempt is gone: its bytes travel as they are
                short = encode({"event": "output", "task": e.task, "attempt": e.attempt, "end": end})
        for client in list(self.clients):
            if client.subscribed:
                client.send(short if short is not None and client.offsets else data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        sock = writer.get_extra_info("socket")
        try:
            if sock is None or peer_uid(sock) != os.getuid():
                writer.transport.abort()
                return
        except OSError:
            writer.transport.abort()
            return
        client = Client(writer)
        self.clients.add(client)
        pump = asyncio.ensure_future(client.pump())
        try:
            while not client.closed:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError, ConnectionError, OSError):
                    break  # a line longer than allowed, or the connection broke
                if not line:
                    break
                if not line.endswith(b"\n"):
                    break  # half a message, then silence: done
                try:
                    req = parse_request(line)
                except ProtocolError:
                    break
                await self._answer(client, req)
        finally:
            self.clients.discard(client)
            client.close()
            pump.cancel()

    async def _answer(self, client: Client, req: dict[str, Any]) -> None:
        rid, op = req["id"], req["op"]
        try:
            result = await self._do(client, op, req)
        except LookupError as e:
            client.send(encode({"id": rid, "ok": False, "error": str(e.args[0]), "unknown": True}))
            return
        client.send(encode({"id": rid, "ok": True, "result": result}))

    async def _do(self, client: Client, op: str, req: dict[str, Any]) -> Any:
        run = self.run
        if op == "hello":
            return self.about
        if op == "snapshot":
            return snapshot(run)
        if op == "subscribe":
            client.subscribed = True  # from this very moment: the snapshot and the events agree
            client.offsets = req.get("output") == "offsets"
            return snapshot(run)
        if op == "pause":
            run.pause()
            return {"paused": run.paused}
        if op == "unpause":
            run.unpause()
            return {"paused": run.paused}
        if op == "abort_all":
            await run.abort_all()
            return {"aborted": True}
        if op == "stop":
            asyncio.get_running_loop().call_soon(self.stop)
            return {"stopping": True}
        name = req["task"]
        if name not in run.tasks and name not in run.subflows:
            raise LookupError(f"no task named {name!r} in job '{run.job_name}'")
        before = state_of(run, name)
        if op == "retry":
            done = run.retry(name)
        elif op == "restart":
            await run.restart(name)
            done = True
        else:
            waiting = run.abort(name)
            done = waiting is not None
            if waiting is not None:
                await waiting
        return {"task": name, "done": done, "state": state_of(run, name), "before": before}
