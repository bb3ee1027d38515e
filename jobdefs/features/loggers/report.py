"""A logger of our own: a short Markdown report of the run, written when it ends."""

from __future__ import annotations

import os

from jobflow_tui.loggers import LogEndEvent, Logger, LogWriteEvent, SerializableLogEvent, logger


@logger
class RunReport(Logger):
    path: str = "./report.md"
    last_lines: int = 3

    async def on_create(self) -> None:
        self._states: dict[str, str] = {}
        self._tails: dict[str, list[str]] = {}
        self._outcome = "running"

    async def update(self, evt: SerializableLogEvent) -> None:
        if isinstance(evt, LogWriteEvent):
            if evt.record.get("event") == "state":  # a state change; otherwise a line of output
                self._states[evt.name] = evt.message
            else:
                tail = self._tails.setdefault(evt.name, [])
                tail.append(evt.message)
                del tail[:-self.last_lines]
        elif isinstance(evt, LogEndEvent):
            self._outcome = evt.record.get("state", "ended")

    async def on_destroy(self) -> None:
        lines = [f"# {self.job_name}, run {self.run_id}: {self._outcome}", ""]
        for task, state in self._states.items():
            lines.append(f"- **{task}**: {state}")
            lines.extend(f"    > {line}" for line in self._tails.get(task, []))
        path = self.resolve(self.path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
