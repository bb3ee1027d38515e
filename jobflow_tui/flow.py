"""Jobs built in Python: the same engine, dashboard and checkpoint as a job file.

    from jobflow_tui.flow import Flow

    flow = Flow("etl", max_concurrency=2)
    flow.command("extract", "python extract.py", timeout=600)

    @flow.task(depends_on=["extract"], max_attempts=2)
    def transform(task):
        rows = task.pull_output("extract")
        return {"rows": len(rows)}

    if __name__ == "__main__":      # the worker imports this file to find the functions
        raise SystemExit(flow.run())
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .jobdef import JobDef, from_mapping


class Flow:
    """A job built in code. Task options are those of a job file (timeout, max_attempts, ...)."""

    def __init__(self, name: str, *, max_concurrency: int = 0, env: dict[str, str] | None = None,
                 directory: str | None = None) -> None:
        caller = inspect.stack()[1].filename
        self.file = os.path.abspath(caller)
        self.name = name
        self.directory = directory or os.path.dirname(self.file)
        self.config: dict[str, Any] = {"name": name, "max_concurrency": max_concurrency, "env": dict(env or {})}
        self.tasks: dict[str, dict[str, Any]] = {}

    def command(self, name: str, command: str | list[str], *, depends_on: Sequence[str] = (), **options: Any) -> str:
        """Add a command task (a shell string or an argv list); returns its name."""
        self.tasks[name] = {"command": command, "dependencies": list(depends_on), **options}
        return name

    def task(self, name: str | None = None, *, depends_on: Sequence[str] = (), parameters: dict | None = None,
             **options: Any) -> Callable:
        """Decorate a function `fn(task)` (or a Task subclass) to add it as a Python task.

        The function receives the running Task: `task.pull_output(name)`, `task.shared_dict`,
        `task.params`; what it returns is the task's outputs.
        """
        from .pytask import Task
        from .pytask import task as register

        def add(obj: Any) -> Any:
            if isinstance(obj, type) and issubclass(obj, Task):
                cls = register(obj)
                task_name = name or obj.__name__
            else:
                fn = obj

                def run(self: Task) -> Any:
                    return fn(self)

                cls = type(f"{self.name}.{fn.__name__}", (Task,), {"run": run, "__module__": fn.__module__,
                                                                  "__doc__": fn.__doc__})
                cls = register(cls)
                task_name = name or fn.__name__
            entry: dict[str, Any] = {"task": cls.task_class_name, "dependencies": list(depends_on), **options}
            if parameters:
                entry["parameters"] = parameters
            self.tasks[task_name] = entry
            return obj

        return add

    def subflow(self, name: str, flow: Flow, *, depends_on: Sequence[str] = (),
                parameters: dict[str, Any] | None = None) -> str:
        """Add another flow as one step: its tasks run in this run as `name/<task>`, after
        `depends_on`; what depends on `name` waits for all of them. Returns `name`."""
        self.tasks[name] = {"job": flow, "dependencies": list(depends_on), "parameters": dict(parameters or {})}
        return name

    def job(self) -> JobDef:
        """The validated JobDef (JobFileError lists every problem)."""
        tasks = {n: {**t, "job": t["job"].job()} if isinstance(t.get("job"), Flow) else t for n, t in self.tasks.items()}
        job = from_mapping({"config": self.config, "tasks": tasks}, os.path.join(self.directory, f"{self.name}.flow"))
        job.task_files = [self.file]
        return job

    def run(self, *, headless: bool | None = None, resume: bool = False, state_dir: str | None = None,
            params: dict[str, str] | None = None, only: list[str] | None = None,
            max_concurrency: int | None = None) -> int:
        """Run the flow: the dashboard on a terminal, plain lines otherwise. The exit code."""
        from .engine import Scheduler
        from .jobdef import JobFileError
        from .launch import launch
        from .worker.client import check

        try:
            job = self.job()
        except JobFileError as e:
            print(e, file=sys.stderr)
            return 2
        problems = [str(p) for p in check(job)]
        if job.loggers:
            from .loggers import check as check_loggers

            problems += check_loggers(job.directory, job.extension_directories, job.extension_packages, job.loggers)
        if problems:
            for p in problems:
                print(p, file=sys.stderr)
            return 2
        scheduler = Scheduler(job, state_dir=state_dir, params=params, only=only, resume=resume,
                              max_concurrency=max_concurrency)
        return launch(scheduler, headless)
