"""What travels over a control socket: one JSON object per line, each way.

A client sends requests `{"id": N, "op": OP, ...}` and gets one reply per request,
`{"id": N, "ok": true, "result": ...}` or `{"id": N, "ok": false, "error": "..."}`.
After `subscribe` the owner also sends every event of the run, `{"event": KIND, ...}`,
and `{"event": "end", "exit_code": C}` when the run is over. Output is the one exception
to a line of JSON: `{"event": "output", "task", "attempt", "bytes": N}` and then the N raw
bytes of its lines (escaping a flood into JSON would cost the run more than the flood).
A subscriber on the same machine may ask `{"op": "subscribe", "output": "offsets"}`: then
output is `{"event": "output", "task", "attempt", "end": E}`, the task's log holding those
lines up to byte E, read by the subscriber itself: the run pays a line of JSON per block
however large, and holds nothing for a subscriber that reads slowly.

Requests are untrusted: at most MAX_REQUEST bytes a line, a known `op`, the fields it
needs with the right types; anything else is a ProtocolError (the client is dropped).
"""

from __future__ import annotations

import json
from typing import Any

from ..engine.events import Event, Notice, Output, Paused, RunIdle, StateChanged

MAX_REQUEST = 64 * 1024  # bytes of one request line
MAX_MESSAGE = 32 * 1024 * 1024  # bytes of one line from the owner (an output block, a snapshot)
TASK_OPS = ("retry", "restart", "abort")
RUN_OPS = ("hello", "snapshot", "subscribe", "abort_all", "pause", "unpause", "stop")


class ProtocolError(Exception):
    """A message that breaks the protocol."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    """A request, checked; ProtocolError if it is not one."""
    if len(line) > MAX_REQUEST:
        raise ProtocolError("request too long")
    try:
        req = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("not JSON") from None
    if not isinstance(req, dict):
        raise ProtocolError("not a JSON object")
    rid, op = req.get("id"), req.get("op")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise ProtocolError("'id' must be a number")
    if op in TASK_OPS:
        if not isinstance(req.get("task"), str) or not req["task"]:
            raise ProtocolError(f"'{op}' needs a 'task' name")
    elif op not in RUN_OPS:
        raise ProtocolError("unknown 'op'")
    return req


def encode_event(e: Event) -> bytes | None:
    """An engine event as it travels (None: not one that does)."""
    message = event_message(e)
    if message is None:
        return None
    return encode(message) + e.data if isinstance(e, Output) else encode(message)


def event_message(e: Event) -> dict[str, Any] | None:
    """An engine event as a message (None: not one that travels)."""
    if isinstance(e, StateChanged):
        return {"event": "state", "task": e.task, "state": e.state, "previous": e.previous, "attempt": e.attempt,
                "max_attempts": e.max_attempts, "exit_code": e.exit_code, "started_at": e.started_at,
                "finished_at": e.finished_at, "reason": e.reason}
    if isinstance(e, Output):
        return {"event": "output", "task": e.task, "attempt": e.attempt, "bytes": len(e.data)}
    if isinstance(e, RunIdle):
        return {"event": "idle", "exit_code": e.exit_code}
    if isinstance(e, Paused):
        return {"event": "paused", "paused": e.paused}
    if isinstance(e, Notice):
        return {"event": "notice", "message": e.message, "severity": e.severity}
    return None


def event_from_message(m: dict[str, Any]) -> Event | None:
    """The engine event a message carries (None: not one, or malformed)."""
    try:
        kind = m["event"]
        if kind == "state":
            return StateChanged(str(m["task"]), str(m["state"]), str(m["previous"]), int(m["attempt"]),
                                int(m["max_attempts"]), m.get("exit_code"), m.get("started_at"),
                                m.get("finished_at"), str(m.get("reason") or ""))
        if kind == "output":
            return Output(str(m["task"]), int(m["attempt"]), m["data"])
        if kind == "idle":
            return RunIdle(int(m["exit_code"]))
        if kind == "paused":
            return Paused(bool(m["paused"]))
        if kind == "notice":
            return Notice(str(m["message"]), str(m.get("severity") or "warning"))
    except (KeyError, TypeError, ValueError):
        return None
    return None
