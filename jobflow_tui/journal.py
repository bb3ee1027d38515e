"""The journal of a run: what each attempt recorded (its pid, its result, its exit status),
written and read here only, by the runner, the shell wrapper and the Python worker alike.

Every attempt of a run appends its records to one file in the run's folder, each
`RS<attempt> pid N`, `RS<attempt> result {json}` or `RS<attempt> exit C` plus a newline,
in a single write (O_APPEND: records of concurrent attempts never mix). RS (0x1e, which
neither task names nor JSON text contain) starts each record, so one torn by a writer
killed mid-write, or by a full disk, spoils only itself. `pid` is written before the task's
code starts, `exit` when it ends; an attempt killed by a signal writes none, which reads
as "failed". One shared file, not one per attempt: creating files is a measurable part of
a short task's cost.

Run folders written before the journal hold a `<task>.<attempt>.status` file per attempt
with the same records, one a line and without RS; they are still read, so that a run of
an older version can be resumed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

JOURNAL = "attempts.status"
RS = b"\x1e"
PID, RESULT, EXIT = "pid", "result", "exit"

# The same records, from the shell that wraps a command: its pid (`$$`, leader of the
# attempt's session and process group) before the command runs, its exit status from the
# EXIT trap. Then the shell itself opens the attempt's log as its stdout and stderr: the
# file is made in the child, beside the runner's work rather than in its way (making a
# file costs up to a millisecond on some file systems). The attempt's key, the journal's
# path and the log's come in its environment.
SHELL_PREFIX = (
    f'printf "\\036%s {PID} %d\\n" "$JOBFLOW_ATTEMPT_KEY" "$$" >> "$JOBFLOW_STATUS_FILE"; '
    f"trap 'printf \"\\036%s {EXIT} %d\\n\" \"$JOBFLOW_ATTEMPT_KEY\" \"$?\" >> \"$JOBFLOW_STATUS_FILE\"' EXIT; "
    'exec >> "$JOBFLOW_LOG" 2>&1 || exit 125; '
)


def append(journal: str, key: str, kind: str, value: str) -> None:
    """Append one record, in one write (records of others never mix in)."""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, RS + f"{key} {kind} {value}\n".encode())
    finally:
        os.close(fd)


def append_pid(journal: str, key: str, pid: int) -> None:
    """A forked attempt's pid, with the time: the pid of a process forked from a
    long-lived one proves little on its own (see `AttemptFiles.records`)."""
    append(journal, key, PID, f"{pid} {time.time():.3f}")


def exit_unrecorded(journal: str, key: str, pid: int) -> bool:
    """Whether attempt `key` was started by process `pid` (its pid record) and recorded
    no exit status yet."""
    records: dict[str, dict[str, Any]] = {}
    try:
        with open(journal, "rb") as f:
            for record in f.read().split(RS):
                if record.startswith(key.encode() + b" ") and record.endswith(b"\n"):
                    _parse(records, record[:-1])
    except OSError:
        return False
    mine = records.get(key, {})
    return mine.get(PID) == pid and EXIT not in mine


class Journal:
    """A run's attempt records, read incrementally as the file grows."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""  # a record being written as we read
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # callers may be on more than one thread

    def get(self, key: str) -> dict[str, Any]:
        """What attempt `key` recorded: "pid" (with "time" for a forked attempt), "result"
        (raw JSON bytes), "exit"; the first record of each kind counts."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except OSError:
                data = b""
            if data:
                self._offset += len(data)
                *records, self._partial = (self._partial + data).split(RS)
                for record in records:
                    self._add(record)
                if self._partial.endswith(b"\n"):  # the last record is whole
                    self._add(self._partial)
                    self._partial = b""
            return dict(self._records.get(key, ()))

    def _add(self, record: bytes) -> None:
        if record.endswith(b"\n") and b"\n" not in record[:-1]:  # whole, not torn
            _parse(self._records, record[:-1])


def _parse(records: dict[str, dict[str, Any]], line: bytes) -> None:
    """Add one `<attempt> <kind> <value>` line to `records`; the first of each kind counts."""
    key, _, rest = line.partition(b" ")
    kind, _, value = rest.partition(b" ")
    record = records.setdefault(key.decode(errors="replace"), {})
    if kind == RESULT.encode():
        record.setdefault(RESULT, value)
        return
    number, _, when = value.partition(b" ")
    if kind not in (PID.encode(), EXIT.encode()) or not number.lstrip(b"-").isdigit() or kind.decode() in record:
        return
    record[kind.decode()] = int(number)
    if when:
        try:
            record["time"] = float(when)
        except ValueError:
            pass


_JOURNALS: dict[str, Journal] = {}


def journal(run_dir: str) -> Journal:
    """The one reader of a run folder's journal in this process."""
    path = os.path.join(run_dir, JOURNAL)
    j = _JOURNALS.get(path)
    if j is None:
        j = _JOURNALS[path] = Journal(path)
    return j


@dataclass
class AttemptFiles:
    """Where one attempt keeps its log and outputs, and its records in the run's journal."""

    base: str  # path without suffix: <run dir>/<task>.<attempt>

    @property
    def log(self) -> str:
        return self.base + ".log"

    @property
    def status(self) -> str:
        """The run's journal, where this attempt's records go."""
        return os.path.join(os.path.dirname(self.base), JOURNAL)

    @property
    def key(self) -> str:
        """This attempt's name in the journal: <task>.<attempt>."""
        return os.path.basename(self.base)

    @property
    def outputs(self) -> str:
        return self.base + ".out"

    def records(self) -> dict[str, Any]:
        found = journal(os.path.dirname(self.base)).get(self.key)
        return found or self._legacy()

    def _legacy(self) -> dict[str, Any]:
        try:
            with open(self.base + ".status", "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        records: dict[str, dict[str, Any]] = {}
        for line in lines:
            _parse(records, b"_ " + line)
        return records.get("_", {})

    def read_result(self) -> dict | None:
        """A Python task's result (outputs and shared_dict), if it recorded one."""
        raw = self.records().get(RESULT)
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def read_status(self) -> int | None:
        """The exit status the attempt recorded, or None if it recorded none."""
        return self.records().get(EXIT)

    def read_pid(self) -> int | None:
        """The attempt's pid, recorded before its code started."""
        return self.records().get(PID)
