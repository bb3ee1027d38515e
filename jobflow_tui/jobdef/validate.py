"""Validate a merged job document and build the JobDef, locating every problem.

Each check runs once per value present, so a job of 100,000 tasks costs little more than
reading it; nothing here is quadratic in the number of tasks or dependencies.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from typing import Any, NamedTuple, Protocol

from .errors import type_name
from .loggerspec import logger_specs
from .model import JobDef, TaskDef, digest_of
from .placement import parse_executor, task_placement
from .runend import RUN_END_KEYS, parse_run_end
from .subflow import subflow_spec
from .yamlfile import Path

TOP_KEYS = frozenset({"version", "config", "include", "tasks", "loggers", "checkpointer", "extensions"})
# Flowmancer keys that mean nothing here: accepted with a note so they are never misread.
NOTED_TOP = {
    "checkpointer": "the checkpoint is always <state dir>/<job name>/checkpoint.json",
    "extensions": "extensions are not loaded; the dashboard and headless reporter show progress",
}
CONFIG_KEYS = frozenset({
    "name", "max_concurrency", "env", "cwd", "kill_grace", "extension_directories", "on_hangup", *RUN_END_KEYS, "executor",
    "extension_packages", "synchro_interval_seconds", "loggers_interval_seconds",
    "extensions_interval_seconds", "checkpointer_interval_seconds",
})
NOTED_CONFIG = {
    "synchro_interval_seconds": "scheduling is event-driven; there is no polling interval",
    "loggers_interval_seconds": "output is streamed from log files as it is written",
    "extensions_interval_seconds": "extensions are not loaded",
    "checkpointer_interval_seconds": "the checkpoint is written on every state change",
}
TASK_KEYS = frozenset({
    "command", "task", "job", "parameters", "dependencies", "depends_on", "max_attempts",
    "retry_delay", "retry_backoff", "retry_max_delay", "timeout", "env", "cwd",
    "kill_grace", "description", "executor", "resources",
})
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What a task may set besides what it runs and what it needs.
SETTINGS = TASK_KEYS - {"command", "task", "parameters", "dependencies", "depends_on"}
# "Did you mean" for an unknown task compares it with every task name: hints are given
# while the names compared stay under this many, so that a large job with many mistakes
# is still reported in seconds.
HINT_BUDGET = 200_000
# Reporting a cycle costs its length; a few are enough to act on.
MAX_CYCLES = 20


class _Defaults(NamedTuple):
    """What every task starts from: the job's config."""

    env: dict[str, str]
    cwd: str
    kill_grace: float


class Reporter(Protocol):
    """Where problems go, and how a path of the document is located."""

    def at(self, path: Path) -> tuple[str, int, int]: ...

    def error(self, path: Path, message: str) -> None: ...


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@functools.lru_cache(maxsize=256)
def _hint(word: str, allowed: frozenset[str]) -> str:
    # Cached: a mistake copied into every task of a large job costs one search.
    close = difflib.get_close_matches(word, sorted(allowed), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown(r: Reporter, path: Path, key: Any, allowed: frozenset[str], what: str) -> None:
    r.error(path + (key, "<key>"), f"unknown {what} key '{key}'{_hint(str(key), allowed)}")


def _note(r: Reporter, notes: list[str], path: Path, message: str) -> None:
    f, line, col = r.at(path + ("<key>",))
    notes.append(f"{f}:{line}:{col}: note: {message}")


def validate(doc: dict, abspath: str, r: Reporter) -> JobDef:
    """The JobDef of a merged document; every problem goes to `r`."""
    directory = os.path.dirname(abspath)
    notes: list[str] = []
    for k in doc:
        if k not in TOP_KEYS:
            _unknown(r, (), k, TOP_KEYS, "top-level")
        elif k in NOTED_TOP:
            _note(r, notes, (k,), f"'{k}' is accepted and not used: {NOTED_TOP[k]}")

    config = doc.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        r.error(("config",), f"'config' must be a mapping, not {type_name(config)}")
        config = {}
    for k in config:
        if k not in CONFIG_KEYS:
            _unknown(r, ("config",), k, CONFIG_KEYS, "config")
        elif k in NOTED_CONFIG:
            _note(r, notes, ("config", k), f"'{k}' is accepted and not used: {NOTED_CONFIG[k]}")

    stem = os.path.splitext(os.path.basename(abspath))[0]
    name = config.get("name", stem)
    if not isinstance(name, (str, int, float)) or isinstance(name, bool) or not str(name).strip():
        r.error(("config", "name"), "'config.name' must be a non-empty string")
        name = stem
    name = str(name)
    defaults = _Defaults(
        _env(r, config, ("config",)),
        _path(r, config, ("config",), "cwd", directory, directory),
        _num(r, config, ("config",), "kill_grace", 5.0, minimum=0),
    )
    max_conc = _int(r, config, ("config",), "max_concurrency", 0, minimum=0)
    on_hangup = config.get("on_hangup", "detach")
    if on_hangup not in ("detach", "stop"):
        r.error(("config", "on_hangup"), "'config.on_hangup' is 'detach' (the run goes on without the dashboard) "
                "or 'stop' (the run stops with it)")
        on_hangup = "detach"
    ext_dirs = [
        os.path.normpath(os.path.join(directory, os.path.expanduser(p)))
        for p in _str_list(r, config, ("config",), "extension_directories")
    ]
    ext_pkgs = _str_list(r, config, ("config",), "extension_packages")

    tasks_raw = doc.get("tasks")
    if tasks_raw is None:
        r.error((), "the job has no 'tasks' mapping")
        tasks_raw = {}
    elif not isinstance(tasks_raw, dict):
        r.error(("tasks",), f"'tasks' must be a mapping of task names, not {type_name(tasks_raw)}")
        tasks_raw = {}
    elif not tasks_raw:
        r.error(("tasks",), "'tasks' is empty: define at least one task")
    tasks: dict[str, TaskDef] = {}
    dep_keys: dict[str, str] = {}  # tasks that wrote 'depends_on' rather than 'dependencies'
    for i, (tname, spec) in enumerate(tasks_raw.items()):
        t = _task(r, i, tname, spec, defaults, directory, dep_keys)
        if t is not None:
            tasks[t.name] = t

    _check_graph(r, tasks, dep_keys)
    out = JobDef(
        name=name, path=abspath, directory=directory, tasks=tasks, max_concurrency=max_conc, on_hangup=on_hangup,
        run_end=parse_run_end(r, config), executor=parse_executor(r, config),
        extension_directories=ext_dirs, extension_packages=ext_pkgs, notes=notes,
        loggers=logger_specs(r, doc.get("loggers")),
    )
    out.locate = r.at
    out.hash = digest_of(doc)
    out.env = defaults.env
    return out


def _task(r: Reporter, i: int, tname: Any, spec: Any, defaults: _Defaults, directory: str, dep_keys: dict[str, str]) -> TaskDef | None:
    tp: Path = ("tasks", tname)
    if not isinstance(tname, (str, int)) or isinstance(tname, bool) or not str(tname).strip():
        r.error(tp + ("<key>",), f"task name {tname!r} must be a non-empty string")
        return None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        r.error(tp, f"task '{tname}' must be a mapping with 'command' or 'task', not {type_name(spec)}")
        return None
    if not TASK_KEYS.issuperset(spec):
        for k in spec:
            if k not in TASK_KEYS:
                _unknown(r, tp, k, TASK_KEYS, "task")
    t = TaskDef(str(tname), i, env=dict(defaults.env), cwd=defaults.cwd, kill_grace=defaults.kill_grace)
    if "job" in spec:
        subflow_spec(r, tp, t, spec, directory)
    else:
        _what_it_runs(r, tp, t, spec)
    dep_key = "dependencies"
    if "depends_on" in spec:
        dep_key = dep_keys[t.name] = "depends_on"
        if "dependencies" in spec:
            r.error(tp + ("depends_on", "<key>"), "give either 'dependencies' or 'depends_on', not both")
    deps = spec.get(dep_key)
    if deps is not None:
        t.dependencies = _dependencies(r, tp + (dep_key,), deps)
    if t.subjob is not None or SETTINGS.isdisjoint(spec):
        return t  # most tasks set nothing else
    task_placement(r, tp, t, spec)
    if "max_attempts" in spec:
        t.max_attempts = _int(r, spec, tp, "max_attempts", 1, minimum=1)
    if "retry_delay" in spec:
        t.retry_delay = _num(r, spec, tp, "retry_delay", 0.0, minimum=0)
    if "retry_backoff" in spec:
        t.retry_backoff = _num(r, spec, tp, "retry_backoff", 2.0, minimum=1)
    if "retry_max_delay" in spec:
        t.retry_max_delay = _num(r, spec, tp, "retry_max_delay", 300.0, minimum=0)
    if spec.get("timeout") is not None:
        t.timeout = _num(r, spec, tp, "timeout", None, minimum=0, strict=True)
    if "kill_grace" in spec:
        t.kill_grace = _num(r, spec, tp, "kill_grace", defaults.kill_grace, minimum=0)
    if "env" in spec:
        t.env.update(_env(r, spec, tp))
    if "cwd" in spec:
        t.cwd = _path(r, spec, tp, "cwd", defaults.cwd, directory)
    if "description" in spec:
        desc = spec["description"]
        t.description = desc if isinstance(desc, str) else str(desc)
    return t


def _what_it_runs(r: Reporter, tp: Path, t: TaskDef, spec: dict) -> None:
    """A task's `command`, or its Python `task` class and `parameters`."""
    tname = t.name
    cmd, cls = spec.get("command"), spec.get("task")
    if cmd is not None and cls is not None:
        r.error(tp + ("task", "<key>"), f"task '{tname}' has both 'command' and 'task': keep one")
    elif cmd is None and cls is None:
        r.error(tp + ("<key>",), f"task '{tname}' needs a 'command' (shell or argv) or a 'task' (Python class)")
    if cmd is not None:
        if isinstance(cmd, str) and cmd.strip():
            t.command = cmd
        elif isinstance(cmd, list) and cmd and all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in cmd):
            t.command = [str(a) for a in cmd]
            for n, a in enumerate(t.command):
                if len(a.encode()) >= MAX_STRING:
                    r.error(tp + ("command", n), f"argument {n + 1} of 'command' is {len(a.encode())} bytes: one argument "
                            "holds at most 128 KiB (a shell string may be any length; or pass it in a file)")
                    break
        else:
            r.error(tp + ("command",), "'command' must be a non-empty string (run by the shell) or a list of arguments")
    if cls is not None:
        if isinstance(cls, str) and cls.strip():
            t.python_class = cls
        else:
            r.error(tp + ("task",), "'task' must be the name of a Python task class")
    params = spec.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            r.error(tp + ("parameters",), "'parameters' must be a mapping")
        elif cls is None:
            r.error(tp + ("parameters", "<key>"), "'parameters' apply to Python tasks ('task:'); give a command 'env' instead")
        else:
            t.parameters = params


def _dependencies(r: Reporter, p: Path, deps: Any) -> list[str]:
    if isinstance(deps, str):
        return [deps]
    if deps.__class__ is list and len(deps) == 1 and deps[0].__class__ is str:
        return [deps[0]]  # the usual case, without the checks below
    if not isinstance(deps, list):
        r.error(p, f"'{p[-1]}' must be a list of task names")
        return []
    names: list[str] = []
    for j, d in enumerate(deps):
        if isinstance(d, str):
            names.append(d)
        elif isinstance(d, int) and not isinstance(d, bool):
            names.append(str(d))
        else:
            r.error(p + (j,), "a dependency must be a task name")
    return list(dict.fromkeys(names)) if len(names) > 1 else names


def _check_graph(r: Reporter, tasks: dict[str, TaskDef], dep_keys: dict[str, str]) -> None:
    hints = HINT_BUDGET // max(1, len(tasks))
    backward = True  # every task needs only tasks written before it
    for t in tasks.values():
        for j, d in enumerate(t.dependencies):
            u = tasks.get(d)
            if u is not None:
                if u.index >= t.index:
                    backward = False
            else:
                hint = ""
                if hints > 0:
                    hints -= 1
                    close = difflib.get_close_matches(d, tasks.keys(), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                where = ("tasks", t.name, dep_keys.get(t.name, "dependencies"), j)
                r.error(where, f"task '{t.name}' depends on unknown task '{d}'{hint}")
    if backward:
        return  # then no cycle can close
    # Colour-marking DFS (1: on the current path, 2: done), iterative so that a
    # 100,000-task chain cannot hit the recursion limit; each edge is followed once.
    colour: dict[str, int] = {}
    reported: set[frozenset[str]] = set()
    for root in tasks:
        if root in colour:
            continue
        colour[root] = 1
        path = [root]
        depth = {root: 0}  # position on the path, so that a cycle is cut out without a search
        stack = [iter(tasks[root].dependencies)]
        while stack:
            for d in stack[-1]:
                c = colour.get(d)
                if c is None:
                    if d in tasks:
                        colour[d] = 1
                        depth[d] = len(path)
                        path.append(d)
                        stack.append(iter(tasks[d].dependencies))
                        break
                elif c == 1 and len(reported) < MAX_CYCLES:
                    cycle = path[depth[d]:] + [d]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        first = cycle[0]
                        j = tasks[first].dependencies.index(cycle[1])
                        where = ("tasks", first, dep_keys.get(first, "dependencies"), j)
                        r.error(where, f"dependency cycle: {' -> '.join(cycle)} (each needs the next)")
            else:
                colour[path.pop()] = 2
                stack.pop()


def _int(r: Reporter, spec: dict, p: Path, key: str, default: int, minimum: int) -> int:
    v = spec.get(key, default)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        r.error(p + (key,), f"'{key}' must be a whole number, not {type_name(v)}")
        return default
    if v < minimum:
        r.error(p + (key,), f"'{key}' must be at least {minimum}")
        return default
    return v


def _num(r: Reporter, spec: dict, p: Path, key: str, default: Any, minimum: float, strict: bool = False) -> Any:
    v = spec.get(key, default)
    if v is None:
        return default
    if not _is_number(v):
        r.error(p + (key,), f"'{key}' must be a number of seconds, not {type_name(v)}")
        return default
    if v < minimum or (strict and v <= minimum):
        r.error(p + (key,), f"'{key}' must be {'more than' if strict else 'at least'} {minimum}")
        return default
    return float(v)


# Linux holds each argument and each NAME=value of a new program in at most 128 KiB.
MAX_STRING = 128 * 1024


def _env(r: Reporter, spec: dict, p: Path) -> dict[str, str]:
    env = spec.get("env")
    if env is None:
        return {}
    if not isinstance(env, dict):
        r.error(p + ("env",), "'env' must be a mapping of variable names to values")
        return {}
    out: dict[str, str] = {}
    for k, v in env.items():
        if not isinstance(k, str) or not ENV_NAME.match(k):
            r.error(p + ("env", k, "<key>"), f"'{k}' is not a valid environment variable name")
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            out[k] = str(v)
            if len(k) + 1 + len(out[k].encode()) >= MAX_STRING:
                r.error(p + ("env", k), f"the value of '{k}' is too long for an environment variable (at most 128 KiB)")
        else:
            r.error(p + ("env", k), f"the value of '{k}' must be a string or number, not {type_name(v)}")
    return out


def _path(r: Reporter, spec: dict, p: Path, key: str, default: str, base: str) -> str:
    v = spec.get(key)
    if v is None:
        return default
    if not isinstance(v, str) or not v:
        r.error(p + (key,), f"'{key}' must be a folder path")
        return default
    return os.path.normpath(os.path.join(base, os.path.expanduser(v)))


def _str_list(r: Reporter, spec: dict, p: Path, key: str) -> list[str]:
    v = spec.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        r.error(p + (key,), f"'{key}' must be a list of strings")
        return []
    return list(v)
