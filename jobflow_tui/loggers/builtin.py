"""Built-in loggers that write files: FileLogger (text, one file per run) and
JsonLinesLogger (one JSON object a line)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from typing import TextIO

from pydantic import PrivateAttr, field_validator

from .base import Logger, logger
from .events import LogEndEvent, LogStartEvent, LogWriteEvent, SerializableLogEvent, end_text, iso

_UNSAFE = re.compile(r"[^\w.-]")


def safe(name: str) -> str:
    """`name` usable in a file name (no separators, no spaces)."""
    return _UNSAFE.sub("_", name) or "_"


def describe(evt: SerializableLogEvent, run_id: str) -> tuple[str, str]:
    """(severity, text) of an event, as the built-ins write it."""
    if isinstance(evt, LogWriteEvent):
        return evt.severity.value, evt.message
    rec = evt.record
    if isinstance(evt, LogStartEvent):
        return "INFO", f"run {run_id} started" + (" (resumed)" if rec.get("resumed") else "")
    if isinstance(evt, LogEndEvent):
        return ("INFO" if rec.get("state") == "succeeded" else "ERROR"), f"run {run_id} {end_text(rec)}"
    return "INFO", str(rec)


class _FileWriter(Logger):
    """A logger that appends to one file, opened in on_create."""

    _file: TextIO | None = PrivateAttr(default=None)

    def _open(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in on_destroy)

    def _write(self, text: str) -> None:
        if self._file is None:
            raise RuntimeError("the log file is not open (on_create failed)")
        self._file.write(text)
        self._file.flush()  # each block reaches the kernel: a killed runner loses nothing written

    async def on_destroy(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@logger
class FileLogger(_FileWriter):
    """A text log per run, `<base_log_dir>/<job>.<run id>.log`, lines like
    `2026-11-30T07:00:00Z [INFO] task: message`. When a run starts, this job's log files
    older than `retention_days` are deleted (a negative number keeps them all)."""

    base_log_dir: str = "./logs"
    retention_days: int = 10

    @property
    def log_path(self) -> str:
        """This run's log file."""
        return os.path.join(self.resolve(self.base_log_dir), f"{safe(self.job_name)}.{safe(self.run_id)}.log")

    async def on_create(self) -> None:
        path = self.log_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.prune()
        self._open(path)

    def prune(self) -> list[str]:
        """Delete this job's log files older than retention_days; returns their paths."""
        if self.retention_days < 0:
            return []
        folder, mine = os.path.split(self.log_path)
        prefix = safe(self.job_name) + "."
        cutoff = time.time() - self.retention_days * 86400
        gone: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                n = entry.name
                # `<job>.<run id>.log` exactly: never another job's files (a job named `a.b`
                # does not own `a.b.c.<run id>.log`), never this run's.
                if not (n.startswith(prefix) and n.endswith(".log")) or "." in n[len(prefix):-4] or n == mine:
                    continue
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.remove(entry.path)
                        gone.append(entry.path)
                except OSError:
                    pass  # gone meanwhile, or not ours to delete: the run goes on
        return gone

    async def update(self, evt: SerializableLogEvent) -> None:
        severity, text = describe(evt, self.run_id)
        text = text.replace("\n", " ")  # one event, one line
        self._write(f"{iso(evt.timestamp)} [{severity}] {evt.name}: {text}\n")

    async def update_output(self, task: str, lines: list[str], timestamp: datetime) -> None:
        prefix = f"{iso(timestamp)} [INFO] {task}: "
        self._write(prefix + ("\n" + prefix).join(lines) + "\n")


@logger
class JsonLinesLogger(_FileWriter):
    """Every event as one JSON object a line in `path` (relative to the job file's folder;
    `{run_id}` and `{job}` are replaced): the trail record of run and state events, and
    `{"event": "output", "task", "line", "time"}` for each line of output."""

    path: str

    @field_validator("path")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a file path")
        try:
            v.format(run_id="", job="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"only {{run_id}} and {{job}} may stand in braces ({type(e).__name__}: {e})") from None
        return v

    @property
    def file_path(self) -> str:
        """This run's file."""
        return self.resolve(self.path.format(run_id=safe(self.run_id), job=safe(self.job_name)))

    async def on_create(self) -> None:
        self._open(self.file_path)

    async def update(self, evt: SerializableLogEvent) -> None:
        self._write(json.dumps(evt.record, default=str, separators=(",", ":")) + "\n")

    async def update_output(self, task: str, lines: list[str], timestamp: datetime) -> None:
        head = '{"event":"output","task":' + json.dumps(task) + ',"line":'
        tail = f',"time":{timestamp.timestamp()!r}}}\n'
        dumps = json.dumps
        self._write("".join([head + dumps(line) + tail for line in lines]))
