"""Server-Sent Events of a run: `/events` (every state change and output line) and a task's
`/logs/stream` (its output lines and state changes).

A new stream of the whole run starts with a `snapshot` event; a new stream of one task
first reads the task's latest log from the disk, up to where the run's events take over
(those lines' ids say where in the log they end, so a resume continues the reading). A
stream that falls so far behind that the feed dropped what it had still to send is ended:
it resumes with its Last-Event-ID, or gets a `reset` (a new snapshot) if that is gone too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .feed import DIGITS, Feed, sse

HEARTBEAT = 15.0  # seconds between comments that keep proxies from closing a quiet stream
HEARTBEAT_KEY = web.AppKey("heartbeat", float)
MAX_WRITE = 1024 * 1024  # bytes handed to one write (the rest follows when it drained)
SLICE = 256 * 1024  # bytes handed to the socket at once
WRITE_TIMEOUT = 30.0  # seconds a reader may leave a write waiting before it is dropped
READ = 1024 * 1024  # bytes of a log read at once while catching up


async def open_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    return resp


async def log_lines(path: str, offset: int, end: int | None, last_partial: bool):
    """Batches of (line, where it ends in the file) of the log at `path`, from byte `offset`
    up to `end` (None: its end); a last line without a newline only if `last_partial`."""
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except OSError:
        return
    pending = b""
    try:
        f.seek(offset)
        while end is None or offset + len(pending) < end:
            want = READ if end is None else min(READ, end - offset - len(pending))
            chunk = await asyncio.to_thread(f.read, want)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            batch = []
            for raw in lines:
                offset += len(raw) + 1
                batch.append((raw, offset))
            if batch:
                yield batch
        if pending and last_partial:
            yield [(pending, offset + len(pending))]
    finally:
        await asyncio.to_thread(f.close)


async def ended_stream(request: web.Request, exit_code: int, log: tuple[str, str, int, int] | None = None,
                       states: dict[str, Any] | None = None) -> web.StreamResponse:
    """The stream of a run that is over: the lines of `log` (path, task, attempt, which log of
    the task) if given, from where a Last-Event-ID says a previous stream stopped; then its end.
    A Last-Event-ID that cannot be followed on (its feed is gone) gets a `reset` first, with
    the run's final `states`: what came between is not known."""
    resp = await open_stream(request)
    offset = 0
    last_id = request.headers.get("Last-Event-ID")
    _, read_to = _split_id(last_id)
    if last_id and (log is None or read_to is None or read_to[0] != log[3]):
        await resp.write(sse("reset", states or {}, "over.0"))
    if log is not None:
        path, task, attempt, index = log
        offset = read_to[1] if read_to is not None and read_to[0] == index else 0
        async for batch in log_lines(path, offset, None, True):
            await resp.write(b"".join(_line(task, attempt, raw, f"over.0:{index}:{end}") for raw, end in batch))
            offset = batch[-1][1]
    await resp.write(sse("end", {"exit_code": exit_code}, "over.0" if log is None else f"over.0:{log[3]}:{offset}"))
    await resp.write_eof()
    return resp


def _split_id(event_id: str | None) -> tuple[str | None, tuple[int, int] | None]:
    """`<feed>.<n>`, or `<feed>.<n>:<log>:<offset>` for an output line that ends at `offset`
    in the `log`th log of its task -> (the feed's id, (log, offset)). Lines read from the
    log before the events took over are `<feed>.<n>c:<log>:<offset>`: no event of the feed,
    so a stream resumed from one reads on from the log."""
    if not event_id:
        return None, None
    head, _, rest = event_id.partition(":")
    log, _, off = rest.partition(":")
    return head, ((int(log), int(off)) if DIGITS.fullmatch(log) and DIGITS.fullmatch(off) else None)


def snapshot_data(feed: Feed) -> dict[str, Any]:
    r = feed.remote
    return {"run_id": r.run_id, "paused": r.paused,
            "tasks": {n: {"state": t.state, "attempt": t.attempt, "exit_code": t.exit_code}
                      for n, t in r.tasks.items()}}


async def _catch_up(resp: web.StreamResponse, feed: Feed, task: str, pos: int, since: tuple[int, int] | None) -> None:
    """The task's latest log up to where the feed's events after `pos` take over, from where
    `since` (log, offset) says a previous stream stopped reading it."""
    t = feed.remote.tasks[task]
    if not t.logs:
        return
    path, end, log, attempt = t.logs[-1], feed.emitted.get(task, 0), len(t.logs), t.attempt
    offset = since[1] if since is not None and since[0] == log else 0
    # A last line without a newline is the task's last word only once it ended.
    async for batch in log_lines(path, offset, end, t.state != "running"):
        await resp.write(b"".join(_line(task, attempt, raw, f"{feed.token}.{pos}c:{log}:{at}") for raw, at in batch))


def _line(task: str, attempt: int, raw: bytes, event_id: str | None) -> bytes:
    return sse("output", {"task": task, "attempt": attempt, "line": raw.rstrip(b"\r").decode("utf-8", "replace")},
               event_id)


async def _send(resp: web.StreamResponse, parts: list[memoryview]) -> bool:
    """Write `parts` (views of the feed's shared bytes) in pieces of about SLICE bytes, each
    drained before the next: a stream never holds a copy of much more than one piece
    (small events are joined, large blocks sliced). False if the reader left a piece
    waiting for WRITE_TIMEOUT."""
    batch: list[memoryview] = []
    size = 0
    try:
        for part in parts:
            for i in range(0, len(part), SLICE):
                piece = part[i:i + SLICE]
                batch.append(piece)
                size += len(piece)
                if size >= SLICE:
                    await asyncio.wait_for(resp.write(batch[0] if len(batch) == 1 else b"".join(batch)),
                                           WRITE_TIMEOUT)
                    batch, size = [], 0
        if batch:
            await asyncio.wait_for(resp.write(b"".join(batch)), WRITE_TIMEOUT)
    except TimeoutError:
        return False
    return True


async def follow(request: web.Request, feed: Feed, task: str | None = None) -> web.StreamResponse:
    """Stream `feed`'s events (only those of `task` if given) until the run ends."""
    last_id, read_to = _split_id(request.headers.get("Last-Event-ID"))
    pos = feed.position(last_id)
    resp = await open_stream(request)
    waker = feed.waker()
    try:
        if task is not None and pos is None:
            # From the log on disk (from where the last id says, if it says), to where the
            # events take over (both taken together, at once).
            pos = feed.last
            await _catch_up(resp, feed, task, pos, read_to)
        elif pos is None:
            pos = feed.last
            kind = "reset" if last_id else "snapshot"  # a reset: what came between is not known
            await resp.write(sse(kind, snapshot_data(feed), f"{feed.token}.{pos}"))
        heartbeat = request.app.get(HEARTBEAT_KEY, HEARTBEAT)
        while True:
            waker.clear()
            if pos < feed.dropped:
                break  # too slow: what it had to read is gone; it resumes or resets
            out: list[memoryview] = []
            size = 0
            for entry in feed.since(pos):
                if task is None or entry.task == task:
                    data = entry.encode(pos)
                    out.append(data)
                    size += len(data)
                pos = entry.last
                if size >= MAX_WRITE:
                    break
            if out:
                if not await _send(resp, out):
                    # It stopped reading: drop it (what waits for it would hold memory for
                    # nothing); it resumes from its last id if it comes back.
                    if request.transport is not None:
                        request.transport.abort()
                    break
                continue
            if feed.ended:
                await resp.write(sse("end", {"exit_code": feed.exit_code}, f"{feed.token}.{feed.last}"))
                break
            if feed.over:
                break  # the feed lost its owner's connection: the client resumes on a new one
            try:
                await asyncio.wait_for(waker.wait(), heartbeat)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
    except (ConnectionError, OSError):
        pass  # the client went away
    finally:
        feed.forget(waker)
    try:
        await resp.write_eof()
    except (ConnectionError, OSError):
        pass
    return resp
