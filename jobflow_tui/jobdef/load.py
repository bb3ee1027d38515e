"""Load a job file: read, merge includes, validate, and build a JobDef.

Every problem is collected and raised at once as JobFileError, each located at the node
that causes it. Nothing here starts anything.
"""

from __future__ import annotations

import difflib
import gc
import os
import re
from typing import Any

from .errors import JobFileError, Problem
from .model import JobDef, TaskDef, digest_of
from .yamlfile import Path, load_yaml

TOP_KEYS = {"version", "config", "include", "tasks", "loggers", "checkpointer", "extensions"}
# Flowmancer keys that mean nothing here: accepted with a note so they are never misread.
NOTED_TOP = {
    "loggers": "every attempt's output is kept in its own log file under the state dir",
    "checkpointer": "the checkpoint is always <state dir>/<job name>/checkpoint.json",
    "extensions": "extensions are not loaded; the dashboard and headless reporter show progress",
}
CONFIG_KEYS = {
    "name", "max_concurrency", "env", "cwd", "kill_grace", "extension_directories",
    "extension_packages", "synchro_interval_seconds", "loggers_interval_seconds",
    "extensions_interval_seconds", "checkpointer_interval_seconds",
}
NOTED_CONFIG = {
    "synchro_interval_seconds": "scheduling is event-driven; there is no polling interval",
    "loggers_interval_seconds": "output is streamed from log files as it is written",
    "extensions_interval_seconds": "extensions are not loaded",
    "checkpointer_interval_seconds": "the checkpoint is written on every state change",
}
TASK_KEYS = {
    "command", "task", "parameters", "dependencies", "depends_on", "max_attempts",
    "retry_delay", "retry_backoff", "retry_max_delay", "timeout", "env", "cwd",
    "kill_grace", "description",
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_name(v: Any) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "empty (null)",
    }.get(type(v), type(v).__name__)


def _display(path: str) -> str:
    # Paths are shown as the user wrote them (includes: joined to the including file's).
    return os.path.normpath(path)


class _Reader:
    """Reads files with includes and keeps every mark, for located messages."""

    def __init__(self) -> None:
        self.marks: dict[Path, tuple[str, int, int]] = {}
        self.problems: list[Problem] = []
        self.files: list[str] = []

    def at(self, path: Path) -> tuple[str, int, int]:
        for i in range(len(path), -1, -1):
            m = self.marks.get(path[:i])
            if m:
                return m
        return (self.files[0] if self.files else "?", 1, 1)

    def error(self, path: Path, message: str) -> None:
        f, line, col = self.at(path)
        self.problems.append(Problem(f, line, col, message))

    def read(self, path: str, stack: tuple[str, ...], origin: tuple[str, int, int] | None) -> Any:
        real = os.path.realpath(path)
        shown = _display(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            self.problems.append(Problem(shown, 1, 1, f"not UTF-8 text ({e.reason})"))
            return None
        except OSError as e:
            where = origin or (shown, 1, 1)
            what = "include file" if origin else "job file"
            self.problems.append(Problem(*where, f"cannot read {what} {path!r}: {e.strerror}"))
            return None
        self.files.append(shown)
        loaded, problems = load_yaml(text, shown)
        self.problems.extend(problems)
        if loaded is None:
            return None
        doc = loaded.value
        if not isinstance(doc, dict):
            self.problems.append(
                Problem(shown, 1, 1, f"a job file must be a mapping with a 'tasks' key, not {_type_name(doc)}")
            )
            return None
        includes = doc.get("include")
        merged: dict = {}
        merged_marks: dict[Path, tuple[str, int, int]] = {}
        if includes is not None:
            if isinstance(includes, str):
                includes = [includes]
            if not isinstance(includes, list):
                f, line, col = loaded.marks.get(("include",), (shown, 1, 1))
                self.problems.append(Problem(f, line, col, "'include' must be a list of file paths"))
                includes = []
            base = os.path.dirname(path)
            for i, inc in enumerate(includes):
                where = loaded.marks.get(("include", i)) or loaded.marks.get(("include",), (shown, 1, 1))
                if not isinstance(inc, str) or not inc:
                    self.problems.append(Problem(*where, "an include entry must be a file path"))
                    continue
                target = os.path.normpath(os.path.join(base, os.path.expanduser(inc)))
                if os.path.realpath(target) in stack + (real,):
                    chain = " -> ".join(_display(p) for p in stack + (real, os.path.realpath(target)))
                    self.problems.append(Problem(*where, f"include cycle: {chain}"))
                    continue
                sub = self._read_marked(target, stack + (real,), where)
                if sub is not None:
                    _merge(merged, merged_marks, sub[0], sub[1], ())
        own = {k: v for k, v in doc.items() if k != "include"}
        own_marks = {p: m for p, m in loaded.marks.items() if not (p and p[0] == "include")}
        _merge(merged, merged_marks, own, own_marks, ())
        self._last_marks = merged_marks
        return merged

    def _read_marked(self, path: str, stack: tuple[str, ...], origin: tuple[str, int, int]):
        value = self.read(path, stack, origin)
        if value is None:
            return None
        return value, self._last_marks


def _merge(dst: dict, dst_marks: dict, src: dict, src_marks: dict, path: Path) -> None:
    """Flowmancer's rule: mappings merge key by key, everything else is replaced whole."""
    for p, m in src_marks.items():
        if p[: len(path)] == path:
            dst_marks[p] = m
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], dst_marks, v, {}, path + (k,))
        else:
            dst[k] = v


def load_job(path: str) -> JobDef:
    """Load, merge and validate `path`; raise JobFileError listing every problem."""
    # Loading allocates a few objects per YAML node and frees almost none: the cyclic
    # collector would run again and again over them for nothing (a third of the time of a
    # 10,000-task file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        reader = _Reader()
        doc = reader.read(path, (), None)
        if doc is None:
            raise JobFileError(reader.problems or [Problem(_display(path), 1, 1, "empty job file")])
        reader.marks = reader._last_marks
        job = _validate(doc, os.path.abspath(path), reader)
    finally:
        if collecting:
            gc.enable()
    if reader.problems:
        raise JobFileError(reader.problems)
    return job


def from_mapping(doc: dict, path: str) -> JobDef:
    """Validate a job given as Python data (as a job file would hold it); JobFileError if bad."""
    reader = _Reader()
    reader.files.append(_display(path))
    job = _validate(doc, os.path.abspath(path), reader)
    if reader.problems:
        raise JobFileError(reader.problems)
    return job


def _unknown(reader: _Reader, path: Path, key: Any, allowed: set[str], what: str) -> None:
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    reader.error(path + (key, "<key>"), f"unknown {what} key '{key}'{hint}")


def _note(reader: _Reader, notes: list[str], path: Path, message: str) -> None:
    f, line, col = reader.at(path + ("<key>",))
    notes.append(f"{f}:{line}:{col}: note: {message}")


def _validate(doc: dict, abspath: str, r: _Reader) -> JobDef:
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
        r.error(("config",), f"'config' must be a mapping, not {_type_name(config)}")
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
    max_conc = _int(r, config, ("config",), "max_concurrency", 0, minimum=0)
    job_env = _env(r, config, ("config",))
    job_cwd = _path(r, config, ("config",), "cwd", directory, directory)
    job_grace = _num(r, config, ("config",), "kill_grace", 5.0, minimum=0)
    ext_dirs = [
        os.path.normpath(os.path.join(directory, os.path.expanduser(p)))
        for p in _str_list(r, config, ("config",), "extension_directories")
    ]
    ext_pkgs = _str_list(r, config, ("config",), "extension_packages")

    tasks_raw = doc.get("tasks")
    tasks: dict[str, TaskDef] = {}
    if tasks_raw is None:
        r.error((), "the job has no 'tasks' mapping")
        tasks_raw = {}
    elif not isinstance(tasks_raw, dict):
        r.error(("tasks",), f"'tasks' must be a mapping of task names, not {_type_name(tasks_raw)}")
        tasks_raw = {}
    elif not tasks_raw:
        r.error(("tasks",), "'tasks' is empty: define at least one task")
    for i, (tname, spec) in enumerate(tasks_raw.items()):
        tp: Path = ("tasks", tname)
        if not isinstance(tname, (str, int)) or isinstance(tname, bool) or not str(tname).strip():
            r.error(tp + ("<key>",), f"task name {tname!r} must be a non-empty string")
            continue
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            r.error(tp, f"task '{tname}' must be a mapping with 'command' or 'task', not {_type_name(spec)}")
            continue
        for k in spec:
            if k not in TASK_KEYS:
                _unknown(r, tp, k, TASK_KEYS, "task")
        t = TaskDef(name=str(tname), index=i)
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
        if "dependencies" in spec and "depends_on" in spec:
            r.error(tp + ("depends_on", "<key>"), "give either 'dependencies' or 'depends_on', not both")
        dep_key = "depends_on" if "depends_on" in spec else "dependencies"
        deps = spec.get(dep_key)
        if isinstance(deps, str):
            deps = [deps]
        if deps is None:
            deps = []
        if not isinstance(deps, list):
            r.error(tp + (dep_key,), f"'{dep_key}' must be a list of task names")
            deps = []
        seen: list[str] = []
        for j, d in enumerate(deps):
            if not isinstance(d, (str, int)) or isinstance(d, bool):
                r.error(tp + (dep_key, j), "a dependency must be a task name")
            elif str(d) not in seen:
                seen.append(str(d))
        t.dependencies = seen
        t._dep_key = dep_key  # type: ignore[attr-defined]
        t.max_attempts = _int(r, spec, tp, "max_attempts", 1, minimum=1)
        t.retry_delay = _num(r, spec, tp, "retry_delay", 0.0, minimum=0)
        t.retry_backoff = _num(r, spec, tp, "retry_backoff", 2.0, minimum=1)
        t.retry_max_delay = _num(r, spec, tp, "retry_max_delay", 300.0, minimum=0)
        timeout = spec.get("timeout")
        t.timeout = None if timeout is None else _num(r, spec, tp, "timeout", None, minimum=0, strict=True)
        t.kill_grace = _num(r, spec, tp, "kill_grace", job_grace, minimum=0)
        t.env = {**job_env, **_env(r, spec, tp)}
        t.cwd = _path(r, spec, tp, "cwd", job_cwd, directory)
        desc = spec.get("description", "")
        t.description = desc if isinstance(desc, str) else str(desc)
        tasks[t.name] = t

    _check_graph(r, tasks)
    job = JobDef(
        name=name, path=abspath, directory=directory, tasks=tasks, max_concurrency=max_conc,
        extension_directories=ext_dirs, extension_packages=ext_pkgs, notes=notes,
    )
    job.locate = r.at
    job.hash = digest_of(doc)
    return job


def _check_graph(r: _Reader, tasks: dict[str, TaskDef]) -> None:
    for t in tasks.values():
        key = getattr(t, "_dep_key", "dependencies")
        for j, d in enumerate(t.dependencies):
            if d not in tasks:
                close = difflib.get_close_matches(d, list(tasks), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                r.error(("tasks", t.name, key, j), f"task '{t.name}' depends on unknown task '{d}'{hint}")
    # Colour-marking DFS, iterative so that a 10,000-task chain cannot hit the recursion limit.
    colour: dict[str, int] = {}
    reported: set[frozenset[str]] = set()
    for root in tasks:
        if colour.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                colour[node] = 1
                path.append(node)
            deps = [d for d in tasks[node].dependencies if d in tasks]
            if i < len(deps):
                stack.append((node, i + 1))
                d = deps[i]
                if colour.get(d) == 1:
                    cycle = path[path.index(d):] + [d]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        first = cycle[0]
                        dep_key = getattr(tasks[first], "_dep_key", "dependencies")
                        j = tasks[first].dependencies.index(cycle[1]) if len(cycle) > 1 else 0
                        shown = " -> ".join(cycle)
                        r.error(("tasks", first, dep_key, j), f"dependency cycle: {shown} (each needs the next)")
                elif not colour.get(d):
                    stack.append((d, 0))
            else:
                colour[node] = 2
                path.pop()


def _int(r: _Reader, spec: dict, p: Path, key: str, default: int, minimum: int) -> int:
    v = spec.get(key, default)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        r.error(p + (key,), f"'{key}' must be a whole number, not {_type_name(v)}")
        return default
    if v < minimum:
        r.error(p + (key,), f"'{key}' must be at least {minimum}")
        return default
    return v


def _num(r: _Reader, spec: dict, p: Path, key: str, default: Any, minimum: float, strict: bool = False) -> Any:
    v = spec.get(key, default)
    if v is None:
        return default
    if not _is_number(v):
        r.error(p + (key,), f"'{key}' must be a number of seconds, not {_type_name(v)}")
        return default
    if v < minimum or (strict and v <= minimum):
        r.error(p + (key,), f"'{key}' must be {'more than' if strict else 'at least'} {minimum}")
        return default
    return float(v)


def _env(r: _Reader, spec: dict, p: Path) -> dict[str, str]:
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
        else:
            r.error(p + ("env", k), f"the value of '{k}' must be a string or number, not {_type_name(v)}")
    return out


def _path(r: _Reader, spec: dict, p: Path, key: str, default: str, base: str) -> str:
    v = spec.get(key)
    if v is None:
        return default
    if not isinstance(v, str) or not v:
        r.error(p + (key,), f"'{key}' must be a folder path")
        return default
    return os.path.normpath(os.path.join(base, os.path.expanduser(v)))


def _str_list(r: _Reader, spec: dict, p: Path, key: str) -> list[str]:
    v = spec.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        r.error(p + (key,), f"'{key}' must be a list of strings")
        return []
    return list(v)
