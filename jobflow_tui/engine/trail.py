"""What a run leaves behind besides its checkpoint: its trail (`events.jsonl` in the run's
folder: start and end with params, host, user and job hash, every state change with what
the task runs), the history index, a copy of the final checkpoint, and at its end the
`on_success` / `on_failure` / `on_exit` commands. At a new run's start, older run folders
beyond `config.retention` go.

None of it may stop or slow the run: the trail is appended and synced in the background,
the index is written by a thread of its own, and a failure of either is said once.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import threading
import time
from collections import Counter
from typing import Any

from ..history import History, TrailWriter
from ..history.store import Recorder
from .events import BLOCKED, Event, Output, StateChanged
from .retention import prune

HOOK_TIMEOUT = 600.0  # seconds an on_* command may take before it is ended


class RunTrail:
    """Records one owner's part of a run (`s`: the Scheduler, started)."""

    def __init__(self, s: Any) -> None:
        self.s = s
        path = os.path.join(s.run_dir, "events.jsonl")
        resumed = os.path.exists(path)
        self.writer = TrailWriter(path)
        self.index = Recorder(History(s.state_dir), s.run_dir, self._warn)
        self._said: set[str] = set()
        self._ended = False  # its end is recorded already
        self._pruning: threading.Thread | None = None
        self.hub: Any = None  # the job's loggers, each in a thread of its own behind a bounded queue
        if s.job.loggers:
            from ..loggers import LoggerHub

            job = s.job
            self.hub = LoggerHub(job.loggers, job.directory, job.extension_directories, job.extension_packages,
                                 job.name, s.run_id)
            self.hub.start()
        if not resumed and (s.job.run_end.retention.runs or s.job.run_end.retention.days):
            # In a thread: deleting many folders, or an index locked by another runner, must not hold up the start.
            self._pruning = threading.Thread(target=self._prune, name="retention", daemon=True)
            self._pruning.start()
        self.add({"event": "run_start", "started_at": s.started_at, "path": s.job.path, "hash": s.job.hash,
                  "params": s.params, "host": socket.gethostname(), "user": _user(), "pid": os.getpid(),
                  "resumed": resumed})
        self.unsubscribe = s.subscribe(self.on_event)

    def add(self, record: dict[str, Any]) -> None:
        record = {"event": record.pop("event"), "time": time.time(), "job": self.s.job.name,
                  "run_id": self.s.run_id, **record}
        self.writer.add(record)
        self.index.add(record)
        if self.hub is not None:
            self.hub.record(record)
        if self.writer.failed:
            self._warn(self.writer.failed)

    def on_event(self, e: Event) -> None:
        if isinstance(e, Output):
            if self.hub is not None:
                self.hub.output(e.task, e.data)
        elif isinstance(e, StateChanged):
            t = self.s.tasks[e.task]
            self.add({"event": "state", "task": e.task, "attempt": e.attempt, "state": e.state, "previous": e.previous,
                      "exit_code": e.exit_code, "reason": e.reason, "started_at": e.started_at, **_what(t)})

    def _prune(self) -> None:
        s = self.s
        gone = prune(s.state_dir, s.job_dir, s.run_id, s.job.run_end.retention)
        if gone:
            try:
                History(s.state_dir).forget(s.job.name, gone)
            except Exception:  # noqa: BLE001 - the index is remade from the folders; never stop a run for it
                pass
            s.notify(f"retention: removed {len(gone)} older run folder(s)", "information")

    def _warn(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.s.notify(message)

    def flush_now(self) -> None:
        """Put what waits in the trail and the index now (blocking, any thread, briefly)."""
        self.writer.flush()
        self.index.flush(timeout=1.0)

    def end_now(self) -> None:
        """The run ends without its event loop (an emergency stop): record its end as stopped."""
        s = self.s
        self.add({"event": "run_end", "state": "stopped", "exit_code": s.exit_code(),
                  "counts": dict(Counter(r.state for r in s.tasks.values())), "duration": time.time() - s.started_at,
                  "failed": [n for n, r in s.tasks.items() if r.state in ("failed", "aborted")]})
        self._ended = True

    async def finish(self, handed_off: bool) -> None:
        """The owner lets go of the run: record its end (unless another process takes the
        run over), keep a copy of the final checkpoint, run the end commands."""
        self.unsubscribe()
        s = self.s
        if self._pruning is not None:  # a run shorter than its pruning: let the pruning finish
            await asyncio.get_running_loop().run_in_executor(None, self._pruning.join, 30.0)
        outcome, failed = "", []
        if not handed_off and not self._ended:
            code = s.exit_code()
            counts = Counter(r.state for r in s.tasks.values())
            failed = [n for n, r in s.tasks.items() if r.selected and r.state not in ("succeeded", BLOCKED)
                      and r.state != "pending"]
            outcome = "succeeded" if code == 0 else "stopped" if s.attempts.stopping else "failed"
            self.add({"event": "run_end", "state": outcome, "exit_code": code, "counts": dict(counts),
                      "duration": time.time() - s.started_at, "failed": failed})
            try:
                shutil.copyfile(s.checkpoint_path, os.path.join(s.run_dir, "checkpoint.json"))
            except OSError:
                pass
        self.writer.close()
        loop = asyncio.get_running_loop()
        if self.hub is not None:  # at most a second for what the loggers still have to say
            for sentence in await loop.run_in_executor(None, self.hub.close, outcome or "stopped", 1.0):
                self._warn(sentence)
        await loop.run_in_executor(None, self.index.close)
        if outcome:
            try:
                await self._hooks(outcome, failed)
            except Exception as e:  # noqa: BLE001 - an end command's trouble never fails the run
                self._warn(f"the end commands did not all run: {e}")

    async def _hooks(self, outcome: str, failed: list[str]) -> None:
        hooks = self.s.job.run_end.hooks
        chosen = [h for h in (("on_success" if outcome == "succeeded" else "on_failure"), "on_exit") if h in hooks]
        if not chosen:
            return
        env = {**os.environ, **self.s.job.env, "JOBFLOW_RUN_ID": self.s.run_id, "JOBFLOW_RUN_STATE": outcome,
               "JOBFLOW_FAILED_TASKS": " ".join(failed), "JOBFLOW_JOB": self.s.job.name,
               "JOBFLOW_STATE_DIR": self.s.state_dir}
        with open(os.path.join(self.s.run_dir, "hooks.log"), "ab") as log:
            for name in chosen:
                cmd = hooks[name]
                log.write(f"--- {name}: {cmd}\n".encode())
                log.flush()
                start = (asyncio.create_subprocess_shell(cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                                                         env=env, cwd=self.s.job.directory, start_new_session=True)
                         if isinstance(cmd, str) else
                         asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                                                        env=env, cwd=self.s.job.directory, start_new_session=True))
                try:
                    proc = await start
                except OSError as e:
                    self._warn(f"{name}: cannot run {cmd!r}: {e.strerror}")
                    continue
                try:
                    code = await asyncio.wait_for(proc.wait(), HOOK_TIMEOUT)
                except TimeoutError:
                    os.killpg(proc.pid, 9)
                    code = await proc.wait()
                if code != 0:
                    self._warn(f"{name} exited with {code} (its output: {log.name})")


def _what(t: Any) -> dict[str, Any]:
    d = t.definition
    if "command" in d:
        return {"command": d["command"]}
    return {"class": d.get("task"), "parameters": d.get("parameters")}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
