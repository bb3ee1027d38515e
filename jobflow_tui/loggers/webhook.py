"""WebhookLogger: chosen events POSTed as a Slack-compatible JSON body, `{"text": "..."}`."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import datetime

from pydantic import Field, field_validator

from .base import Logger, logger
from .events import LogEndEvent, LogStartEvent, LogWriteEvent, SerializableLogEvent, end_text

TASK_STATES = ("pending", "running", "succeeded", "failed", "aborted", "retrying", "blocked")
EVENTS = ("run_start", "run_end", *TASK_STATES)
MAX_TEXT = 3500  # a chat message a person reads: longer output is cut, with a note


class WebhookError(Exception):
    """A POST that failed every attempt."""


@logger
class WebhookLogger(Logger):
    """POSTs `{"text": "nightly-etl: task load failed (exit 3): ..."}` to `url` for the
    `events` chosen: task states (`failed`, `retrying`, `succeeded`, ...), `run_start`,
    `run_end`; and, with `output: true`, each block of output lines. A request waits at
    most `timeout` seconds; a failed one (no answer, 5xx, 429) is tried `retries` more
    times, `backoff` seconds later, then twice that, and so on."""

    url: str
    events: list[str] = Field(default_factory=lambda: ["failed", "run_end"])
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(1.0, ge=0)
    output: bool = False

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {', '.join(map(repr, unknown))}: choose among {', '.join(EVENTS)}")
        return v

    @property
    def where(self) -> str:
        """Where it posts, without the path: a webhook's path is its secret."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}"

    def text_of(self, evt: SerializableLogEvent) -> str | None:
        """The message an event sends, or None if it sends none."""
        rec, job = evt.record, self.job_name
        if isinstance(evt, LogStartEvent):
            resumed = " (resumed)" if rec.get("resumed") else ""
            return f"{job} run {self.run_id}: started{resumed}" if "run_start" in self.events else None
        if isinstance(evt, LogEndEvent):
            return f"{job} run {self.run_id}: {end_text(rec)}" if "run_end" in self.events else None
        if isinstance(evt, LogWriteEvent):
            if rec.get("event") == "state":
                return f"{job}: task {evt.name} {evt.message}" if rec.get("state") in self.events else None
            return f"{job}: {evt.name}: {evt.message}" if self.output else None
        return None

    async def update(self, evt: SerializableLogEvent) -> None:
        text = self.text_of(evt)
        if text is not None:
            await self.post(text)

    async def update_output(self, task: str, lines: list[str], timestamp: datetime) -> None:
        if self.output and lines:
            await self.post(f"{self.job_name}: {task}:\n" + "\n".join(lines))

    async def post(self, text: str) -> None:
        """POST `{"text": text}`, retried; WebhookError when every attempt failed."""
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters)"
        import urllib.error  # here: urllib.request takes 50 ms to import, and few runs post
        import urllib.request

        body = json.dumps({"text": text}).encode()
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "jobflow-tui"})
            try:
                # Blocking is fine here: this logger has its thread to itself.
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as e:
                e.close()
                why = f"HTTP {e.code}"
                if e.code < 500 and e.code != 429:
                    break  # the request itself is refused: sending it again changes nothing
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                why = "timed out" if isinstance(reason, TimeoutError) else str(reason)
        tries = attempt + 1
        raise WebhookError(f"POST to {self.where} failed ({why}) after {tries} attempt{'s' if tries > 1 else ''}")
