"""One live run as the HTTP server follows it: a single subscription to the run's owner, its
events numbered and kept in a bounded buffer that every Server-Sent Events stream of the
run reads from.

However many browsers and scripts follow a run, its owner sends each event once. An event's
id is `<feed>.<n>`: `n` counts the feed's events (every output line is one), `<feed>` names
this feed, so an id from another feed (a restarted server) is never taken for one of ours.
A stream resumed with an id still in the buffer misses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from array import array
from collections import deque
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from ..control.client import RemoteRun
from ..engine.events import RUNNING, Event, Notice, Output, Paused, StateChanged

DIGITS = re.compile(r"[0-9]{1,18}")  # what a number in an id may be (str.isdigit takes "²")
MAX_BUFFER = 64 * 1024 * 1024  # bytes of encoded events a feed keeps for late or resuming readers
ENTRY_OVERHEAD = 64  # what an entry costs beyond its encoded bytes, roughly


def sse(event: str, data: dict[str, Any], event_id: str | None) -> bytes:
    """One Server-Sent Event (the JSON of `data` has no newline, so one data line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Entry:
    """Events `first`..`last` of a feed: a state change, a notice, or a block of output lines,
    encoded once as they go on the wire, however many streams send them."""

    __slots__ = ("first", "last", "task", "kind", "encoded", "marks")

    def __init__(self, first: int, kind: str, task: str | None, data: dict[str, Any], token: str,
                 lines: list[str] | None = None, ends: list[int] | None = None) -> None:
        self.first, self.kind, self.task = first, kind, task
        self.marks: array | None = None
        if lines is None:
            self.last = first
            self.encoded = sse(kind, data, f"{token}.{first}")
            return
        assert ends is not None
        self.last = first + len(lines) - 1
        # An output line's id also says where it ends in which log of its task
        # (`<feed>.<n>:<log>:<offset>`): a task's stream resumes from the log itself when
        # the feed is gone (a restarted server, a run over for a while).
        head = f'data: {{"task":{json.dumps(task)},"attempt":{data["attempt"]},"line":'
        log, dumps = data["log"], json.dumps
        events = [f"id: {token}.{first + i}:{log}:{ends[i]}\nevent: output\n{head}{dumps(line)}}}\n\n".encode()
                  for i, line in enumerate(lines)]
        # Where each event starts, to send a block from its middle (a stream that resumes).
        self.marks = array("Q", accumulate((len(e) for e in events[:-1]), initial=0))
        self.encoded = b"".join(events)

    def encode(self, after: int = 0) -> memoryview:
        """The entry's events with numbers above `after` (no copy)."""
        view = memoryview(self.encoded)
        if self.marks is None or after < self.first:
            return view
        return view[self.marks[after - self.first + 1]:]

    @property
    def size(self) -> int:
        return len(self.encoded) + (8 * len(self.marks) if self.marks is not None else 0) + ENTRY_OVERHEAD


class Feed:
    """The events of one live run, numbered from 1, the newest MAX_BUFFER bytes kept."""

    def __init__(self, remote: RemoteRun) -> None:
        self.remote = remote
        self.token = secrets.token_hex(4)
        self.entries: deque[Entry] = deque()
        self.size = 0
        self.last = 0  # the number of the newest event
        self.dropped = 0  # the number of the newest event no longer in the buffer
        # Per task: bytes of its current attempt's log already in events (a new stream
        # reads what came before from the log itself).
        self.emitted: dict[str, int] = {n: t.emitted or 0 for n, t in remote.tasks.items()}
        self.exit_code: int | None = None  # set when the run ended
        self.broken = False
        self.idle_since = time.monotonic()  # when its last stream ended
        self._wakers: set[asyncio.Event] = set()
        self._unsubscribe: Callable[[], None] = remote.subscribe(self._event)
        self._watch: asyncio.Task | None = None

    @classmethod
    async def follow(cls, job_dir: str) -> Feed:
        """Subscribe to the owner of the run of `job_dir` (NoLiveRun if there is none)."""
        remote = await asyncio.to_thread(RemoteRun.fetch, job_dir)
        feed = cls(remote)

        def subscribed() -> None:
            # The subscription's own picture counts, not the one fetched just before it;
            # taken as it arrives, before any of the events that follow it.
            feed.emitted = {n: t.emitted or 0 for n, t in remote.tasks.items()}

        remote.on_subscribed = subscribed
        await remote.start(offsets=True)
        feed._watch = asyncio.ensure_future(feed._until_end())
        return feed

    @property
    def ended(self) -> bool:
        """The run is over (its `end` came)."""
        return self.exit_code is not None

    @property
    def over(self) -> bool:
        """Nothing more will come: the run ended, or the connection to its owner broke (the
        owner drops a reader that does not keep up; a new feed takes over)."""
        return self.exit_code is not None or self.broken

    @property
    def followed(self) -> bool:
        return bool(self._wakers)

    async def _until_end(self) -> None:
        assert self.remote.ended is not None
        code = await self.remote.ended
        if code is None:
            self.broken = True
        else:
            self.exit_code = code
        self._unsubscribe()
        self.idle_since = time.monotonic()
        self._wake()

    async def close(self) -> None:
        """Let go of the run (the server stops, or nobody followed it for a while)."""
        self.broken = True
        await self.remote.close()
        if self._watch is not None:
            self._watch.cancel()
        self._wake()

    def _event(self, e: Event) -> None:
        if isinstance(e, Output):
            ends = list(accumulate((len(raw) + 1 for raw in e.data.split(b"\n")), initial=self.emitted.get(e.task, 0)))
            del ends[0]
            self.emitted[e.task] = ends[-1]
            t = self.remote.tasks.get(e.task)
            log = len(t.logs) if t is not None else 0
            self._append("output", e.task, {"task": e.task, "attempt": e.attempt, "log": log}, e.lines, ends)
        elif isinstance(e, StateChanged):
            if e.state == RUNNING and e.previous != RUNNING:
                self.emitted[e.task] = 0  # a new attempt, a new log
            self._append("state", e.task, {"task": e.task, "state": e.state, "previous": e.previous,
                                           "attempt": e.attempt, "exit_code": e.exit_code, "reason": e.reason})
        elif isinstance(e, Paused):
            self._append("paused", None, {"paused": e.paused})
        elif isinstance(e, Notice):
            self._append("notice", None, {"message": e.message, "severity": e.severity})

    def _append(self, kind: str, task: str | None, data: dict[str, Any], lines: list[str] | None = None,
                ends: list[int] | None = None) -> None:
        entry = Entry(self.last + 1, kind, task, data, self.token, lines, ends)
        self.entries.append(entry)
        self.last = entry.last
        self.size += entry.size
        while self.size > MAX_BUFFER and len(self.entries) > 1:
            old = self.entries.popleft()
            self.size -= old.size
            self.dropped = old.last
        self._wake()

    def _wake(self) -> None:
        for waker in self._wakers:
            waker.set()

    def waker(self) -> asyncio.Event:
        """An event set whenever something new arrives (discard it with `forget`)."""
        w = asyncio.Event()
        self._wakers.add(w)
        return w

    def forget(self, waker: asyncio.Event) -> None:
        self._wakers.discard(waker)
        if not self._wakers:
            self.idle_since = time.monotonic()

    def position(self, event_id: str | None) -> int | None:
        """The event number a Last-Event-ID stands for, if it is one of ours still in reach
        (None: unknown, from another feed, or too old)."""
        if not event_id:
            return None
        token, _, n = event_id.partition(".")
        if token != self.token or not DIGITS.fullmatch(n):
            return None
        pos = int(n)
        if pos > self.last or pos < self.dropped:
            return None
        return pos

    def since(self, pos: int) -> list[Entry]:
        """The entries holding events after number `pos` (which must be in reach)."""
        found: list[Entry] = []
        for entry in reversed(self.entries):
            if entry.last <= pos:
                break
            found.append(entry)
        found.reverse()
        return found
