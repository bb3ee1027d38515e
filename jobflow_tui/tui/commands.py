"""Command palette entries: every action on every task, as "task: retry extract", and
the job's own ("job: pause / resume launching"), from the one list of actions."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider

from .actions import palette


class TaskCommands(Provider):
    """Per-task and job-wide actions for the palette (ctrl+p)."""

    async def search(self, query: str) -> Hits:
        app = self.app
        matcher = self.matcher(query)
        for name in app.scheduler.order:
            for action, words in palette("task"):
                text = f"task: {words} {name}"
                score = matcher.match(text)
                if score > 0:
                    yield Hit(score, matcher.highlight(text), partial(app.run_task_action, action, name),
                              help=f"{app.scheduler.tasks[name].state}")
        for action, words in palette("job"):
            text = f"job: {words}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.run_job_action, action))
