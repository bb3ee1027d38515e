"""Command palette entries: every action on every task, as "task: retry extract"."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider

TASK_ACTIONS = [("retry", "retry"), ("restart", "restart"), ("abort", "abort"), ("show", "show log of")]
JOB_ACTIONS = [("pause", "pause / resume launching"), ("abort_all", "abort all running tasks"), ("help", "help")]


class TaskCommands(Provider):
    """Per-task and job-wide actions for the palette (ctrl+p)."""

    async def search(self, query: str) -> Hits:
        app = self.app
        matcher = self.matcher(query)
        for name in app.scheduler.order:
            for action, words in TASK_ACTIONS:
                text = f"task: {words} {name}"
                score = matcher.match(text)
                if score > 0:
                    yield Hit(score, matcher.highlight(text), partial(app.run_task_action, action, name),
                              help=f"{app.scheduler.tasks[name].state}")
        for action, words in JOB_ACTIONS:
            text = f"job: {words}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.run_job_action, action))
