"""What a logger receives: Flowmancer's log events, made from the run's trail records and
from blocks of task output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

# States that mean something went wrong: their events are ERROR, the others INFO.
ERROR_STATES = frozenset({"failed", "aborted", "blocked"})
# Escape sequences (CSI, OSC up to BEL or ST, other ESC pairs) and control characters but
# TAB and LF: task output is data, and a log or a chat message must not carry terminal control.
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]"
)
# Bytes that cannot start anything _CONTROL removes (0xC2 leads the UTF-8 of C1 controls):
# deleting them all from a slice, in C, tells whether the regular expression is needed.
_PLAIN = bytes(b for b in range(256) if not (b <= 0x08 or 0x0B <= b <= 0x1F or b in (0x7F, 0xC2)))
# Output blocks are decoded and split this many bytes at a time, so that no single call
# holds the interpreter for long while the run's own thread wants it.
SLICE = 256 * 1024


class Severity(Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class SerializableLogEvent:
    """Base of every event: `name` (the job or the task), `timestamp` (UTC), and `record`,
    the trail record it came from (a dict)."""

    __slots__ = ("name", "timestamp", "_record")

    def __init__(self, name: str, timestamp: datetime | None = None, record: dict[str, Any] | None = None) -> None:
        self.name = name
        self.timestamp = timestamp or datetime.now(UTC)
        self._record = record

    @property
    def record(self) -> dict[str, Any]:
        return self._record if self._record is not None else {"event": type(self).__name__, "name": self.name}

    def serialize(self) -> str:
        """The event as one line of JSON."""
        return json.dumps({"type": type(self).__name__, **self._fields()}, default=str)

    def _fields(self) -> dict[str, Any]:
        return {"name": self.name, "timestamp": self.timestamp.isoformat()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._fields().items())})"


class LogStartEvent(SerializableLogEvent):
    """The run started (`name`: the job)."""

    __slots__ = ()


class LogEndEvent(SerializableLogEvent):
    """The run ended (`name`: the job)."""

    __slots__ = ()


class LogWriteEvent(SerializableLogEvent):
    """A line to log: a task's state change or one line of its output (`name`: the task)."""

    __slots__ = ("severity", "message")

    def __init__(self, name: str, severity: Severity, message: str, timestamp: datetime | None = None,
                 record: dict[str, Any] | None = None) -> None:
        super().__init__(name, timestamp, record)
        self.severity = severity
        self.message = message

    @property
    def record(self) -> dict[str, Any]:
        # Output lines are many: their record is made only when someone asks for it.
        if self._record is None:
            self._record = {"event": "output", "task": self.name, "line": self.message,
                            "time": self.timestamp.timestamp()}
        return self._record

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "severity": self.severity.value, "message": self.message}


def utc(t: Any) -> datetime:
    """A record's `time` (epoch seconds or ISO text) as an aware UTC datetime; now if missing."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return datetime.fromtimestamp(t, UTC)
    if isinstance(t, str):
        try:
            parsed = datetime.fromisoformat(t.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """`2026-11-30T07:00:00Z`: how built-in loggers write a time."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_message(rec: dict[str, Any]) -> str:
    """`failed (attempt 2, exit 3): reason` from a state record."""
    extra = []
    attempt = rec.get("attempt")
    if isinstance(attempt, int) and attempt > 1:
        extra.append(f"attempt {attempt}")
    if rec.get("exit_code") is not None:
        extra.append(f"exit {rec['exit_code']}")
    text = str(rec.get("state", "?")) + (f" ({', '.join(extra)})" if extra else "")
    reason = rec.get("reason")
    return f"{text}: {clean(str(reason))}" if reason else text


def from_record(rec: dict[str, Any], job: str) -> SerializableLogEvent | None:
    """The event of a trail record: run_start -> LogStartEvent, state -> LogWriteEvent,
    run_end -> LogEndEvent; None for anything else."""
    kind = rec.get("event")
    ts = utc(rec.get("time"))
    if kind == "state":
        severity = Severity.ERROR if rec.get("state") in ERROR_STATES else Severity.INFO
        return LogWriteEvent(str(rec.get("task", "")), severity, state_message(rec), ts, rec)
    if kind == "run_start":
        return LogStartEvent(job, ts, rec)
    if kind == "run_end":
        return LogEndEvent(job, ts, rec)
    return None


def clean(text: str) -> str:
    """Text without escape sequences and control characters (TAB and LF stay)."""
    return text if text.isprintable() else _CONTROL.sub("", text)


def output_lines(data: bytes) -> Iterator[list[str]]:
    """The lines of an output block (lines joined by LF), decoded as UTF-8 with replacement
    and cleaned, a slice of about SLICE bytes at a time."""
    pos, end = 0, len(data)
    while pos < end:
        if end - pos <= SLICE:
            stop = end
        else:
            stop = data.rfind(b"\n", pos, pos + SLICE)
            if stop < 0:  # a line longer than a slice goes whole
                stop = data.find(b"\n", pos + SLICE)
                stop = end if stop < 0 else stop
        chunk = data[pos:stop]
        text = chunk.decode("utf-8", "replace")
        yield (_CONTROL.sub("", text) if chunk.translate(None, _PLAIN) else text).split("\n")
        pos = stop + 1
    if pos == end:  # the last slice stopped at a final LF (or the block is empty): one empty line is left
        yield [""]


def end_text(rec: dict[str, Any]) -> str:
    """`failed in 12.3s (1 failed: load)` from a run_end record."""
    text = str(rec.get("state", "ended"))
    duration = rec.get("duration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        text += f" in {duration:.1f}s"
    failed = rec.get("failed")
    if isinstance(failed, list) and failed:
        names = ", ".join(str(n) for n in failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        text += f" ({len(failed)} failed: {names})"
    return text
