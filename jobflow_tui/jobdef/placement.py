"""Where tasks run: `config.executor` (local, `dask:local`, `dask://HOST:PORT`) and, per
task, `executor: local` (stay on the runner's machine) and `resources:` (what a Dask
worker must offer, e.g. `{GPU: 1}`)."""

from __future__ import annotations

import re
from typing import Any

from .model import TaskDef
from .yamlfile import Path

ADDRESS = re.compile(r"^(local|dask:local|dask://[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5})$")
RESOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_executor(r: Any, config: dict, given: str | None = None) -> str:
    """The job's executor: `given` (--executor) or `config.executor`, checked."""
    value = given if given is not None else config.get("executor", "local")
    if not isinstance(value, str) or not ADDRESS.match(value):
        r.error(("config", "executor"), "'config.executor' is 'local', 'dask:local' (a cluster started for the run) "
                "or 'dask://HOST:PORT' (a running Dask scheduler)")
        return "local"
    return value


def task_placement(r: Any, tp: Path, t: TaskDef, spec: dict) -> None:
    """A task's `executor` (only `local` may be said) and `resources`."""
    if "executor" in spec:
        if spec["executor"] != "local":
            r.error(tp + ("executor",), "a task's 'executor' can only be 'local' (run on the runner's machine); "
                    "the job's config.executor says where the others run")
        else:
            t.executor = "local"
    res = spec.get("resources")
    if res is None:
        return
    if not isinstance(res, dict):
        r.error(tp + ("resources",), "'resources' is a mapping of Dask worker resource names to amounts, e.g. {GPU: 1}")
        return
    for name, amount in res.items():
        if not isinstance(name, str) or not RESOURCE.match(name):
            r.error(tp + ("resources", name, "<key>"), f"resource name {name!r} must be letters, digits, '_', '.', '-'")
        elif not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount <= 0:
            r.error(tp + ("resources", name), f"resource '{name}' needs an amount above 0")
        else:
            t.resources[name] = float(amount)
