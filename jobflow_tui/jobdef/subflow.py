"""Subflows: a task that is a whole other job (`job: checks/validate.yaml`).

The other job's tasks join the run as `<subflow>/<task>` (nested subflows give
`a/b/<task>`): its first tasks need what the subflow needs, what needs the subflow needs
all of its last tasks, its `parameters` reach its tasks as run parameters (over the run's
own), the job's `config.env` lies under theirs. The run's concurrency limit, retries,
checkpoint and resume then treat them as any task. `JobDef.subflows` remembers which
tasks each subflow holds, for the viewers and for acting on a subflow as a whole.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
from typing import Any

from .model import JobDef, TaskDef, digest_of
from .yamlfile import Path

SUBFLOW_KEYS = frozenset({"job", "parameters", "dependencies", "depends_on", "description"})


def subflow_spec(r: Any, tp: Path, t: TaskDef, spec: dict, directory: str) -> None:
    """Check a subflow's own keys (its dependencies are read as any task's)."""
    for k in spec:
        if k not in SUBFLOW_KEYS and k in ("command", "task", "max_attempts", "retry_delay", "retry_backoff",
                                           "retry_max_delay", "timeout", "env", "cwd", "kill_grace", "executor",
                                           "resources"):
            r.error(tp + (k, "<key>"), f"'{k}' does not apply to a subflow ('job:'): set it in its job file")
    job = spec["job"]
    if isinstance(job, str) and job.strip():
        t.subjob = os.path.normpath(os.path.join(directory, os.path.expanduser(job)))
    elif isinstance(job, JobDef):  # a flow built in code
        t.subjob = job
    else:
        r.error(tp + ("job",), "'job' must be the path of a job file")
        t.subjob = ""
    params = spec.get("parameters")
    if params is not None and not isinstance(params, dict):
        r.error(tp + ("parameters",), "'parameters' must be a mapping")
    elif params:
        for k, v in params.items():
            if isinstance(v, (dict, list)) or v is None:
                r.error(tp + ("parameters", k), f"parameter '{k}' must be a string or a number: "
                        "it reaches the subflow's tasks as $JOBFLOW_PARAM_* and self.params")
            else:
                t.params[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    if "description" in spec:
        t.description = str(spec["description"])


def flatten(job: JobDef, subs: dict[str, JobDef]) -> list[tuple[Path, str]]:
    """Put each subflow's tasks (`subs`: subflow name -> its job, already flattened) into
    `job` in its place. Returns the problems (task names taken twice), located."""
    sinks = {name: _last_tasks(sub) for name, sub in subs.items()}
    order = _order(job, subs)  # from the dependencies as written, before they are resolved

    def resolve(deps: list[str]) -> list[str]:
        out: list[str] = []
        for d in deps:
            out += [f"{d}/{x}" for x in sinks[d]] if d in sinks else [d]
        return out

    tasks: dict[str, TaskDef] = {}
    problems: list[tuple[Path, str]] = []
    subflows: dict[str, list[str]] = {}
    for t in sorted(job.tasks.values(), key=lambda t: t.index):
        sub = subs.get(t.name)
        if sub is None:
            if t.subjob is not None:
                continue  # a subflow that could not be read: its problem is reported already
            t.dependencies = resolve(t.dependencies)
            _add(tasks, t, problems, ("tasks", t.name, "<key>"))
            continue
        outer = resolve(t.dependencies)
        members = []
        for inner in (sub.tasks[n] for n in sub.order()):
            name = f"{t.name}/{inner.name}"
            deps = [f"{t.name}/{d}" for d in inner.dependencies] or list(outer)
            _add(tasks, dataclasses.replace(inner, name=name, dependencies=deps, params={**t.params, **inner.params},
                                            env={**job.env, **inner.env}), problems, ("tasks", t.name, "job"))
            members.append(name)
        subflows[t.name] = members
        for nested, names in sub.subflows.items():
            subflows[f"{t.name}/{nested}"] = [f"{t.name}/{n}" for n in names]
    for name in subflows:
        if name in tasks:  # a task and a subflow by one name: acting on it would be ambiguous
            problems.append((("tasks", name, "<key>") if name in job.tasks else ("tasks", name.split("/")[0], "job"),
                             f"'{name}' names a task and a subflow once subflows are put in place"))
    for i, name in enumerate(order):
        tasks[name].index = i
    job.tasks = {n: tasks[n] for n in order}
    job.subflows = subflows
    job.fixed_order = order
    job.hash = digest_of([job.hash, *(s.hash for s in subs.values())])
    job.extension_directories += [d for s in subs.values() for d in (os.path.join(s.directory, "tasks"),
                                                                     *s.extension_directories)]
    job.extension_packages += [p for s in subs.values() for p in s.extension_packages]
    job.task_files += [f for s in subs.values() for f in s.task_files]
    job.notes += [n for s in subs.values() for n in s.notes]
    job.notes += [f"{s.path}: its loggers are not run as a subflow's (the run's own loggers see its tasks)"
                  for s in subs.values() if s.loggers]
    job.__dict__.pop("_children", None)
    return problems


def _add(tasks: dict[str, TaskDef], t: TaskDef, problems: list[tuple[Path, str]], where: Path) -> None:
    if t.name in tasks:
        problems.append((where, f"two tasks are named '{t.name}' once subflows are put in place"))
    tasks[t.name] = t


def _last_tasks(sub: JobDef) -> list[str]:
    """The tasks of a job that no other task of it needs: once they succeed, all did."""
    needed = {d for t in sub.tasks.values() for d in t.dependencies}
    return [n for n in sub.order() if n not in needed]


def _order(job: JobDef, subs: dict[str, JobDef]) -> list[str]:
    """The run order: the job's own order with each subflow in one place, its tasks
    together in their own order, so a viewer can show them as one group."""
    top = {n: t for n, t in job.tasks.items() if t.subjob is None or n in subs}
    indeg = {n: sum(1 for d in t.dependencies if d in top) for n, t in top.items()}
    kids: dict[str, list[str]] = {n: [] for n in top}
    for n, t in top.items():
        for d in t.dependencies:
            if d in kids:
                kids[d].append(n)
    heap = [(t.index, n) for n, t in top.items() if indeg[n] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, n = heapq.heappop(heap)
        out += [f"{n}/{x}" for x in subs[n].order()] if n in subs else [n]
        for c in kids[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(heap, (top[c].index, c))
    return out
