"""Python task classes: `from jobflow_tui import Task, task`.

A Task's class annotations are its parameters (validated by pydantic before anything
runs); `run()` does the work in a child process (never the runner's) and returns the task's
outputs.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import pkgutil
import sys
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

_REGISTRY: dict[str, type[Task]] = {}
_CLASHES: dict[str, set[str]] = {}  # class name -> the files that define one


class Task(BaseModel):
    """Base class of Python tasks. Override `run`; the hooks are optional.

    Hooks run in this order: on_create, on_restart (only when running again after a
    failure or on resume), run, then on_success or on_failure, then on_destroy (always).
    on_abort runs when the task is aborted or times out, before its process is killed.

    Set `fresh_process = True` on a class whose attempts must each start in a process no
    other task has run in; otherwise a process whose attempt succeeded and left nothing
    behind may run a later attempt, keeping module-level state.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    _ctx: dict[str, Any] = PrivateAttr(default_factory=dict)
    task_class_name: ClassVar[str] = ""
    fresh_process: ClassVar[bool] = False  # see the class docstring; the worker decides reuse

    # ---- what a task can use ----------------------------------------------------

    def with_context(self, context: dict[str, Any]) -> Task:
        """This task, given its attempt's context: shared_dict, params, task, attempt, upstream."""
        self._ctx = context
        return self

    @property
    def shared_dict(self) -> dict[str, Any]:
        """The job-wide dict: changes are merged back when the task ends and checkpointed."""
        return self._ctx.setdefault("shared_dict", {})

    @property
    def params(self) -> dict[str, str]:
        """The run's `-p KEY=VALUE` parameters."""
        return self._ctx.setdefault("params", {})

    @property
    def task_name(self) -> str:
        """This task's name in the job."""
        return self._ctx.get("task", "")

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first)."""
        return int(self._ctx.get("attempt", 1))

    def pull_output(self, name: str) -> dict[str, Any]:
        """The outputs of upstream task `name` (it must be one this task depends on)."""
        upstream = self._ctx.get("upstream", {})
        if name not in upstream:
            known = ", ".join(sorted(upstream)) or "none"
            raise KeyError(f"pull_output({name!r}): not an upstream task of {self.task_name!r} (upstream: {known})")
        return copy.deepcopy(upstream[name])

    # ---- what a task implements ---------------------------------------------------

    def run(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    def on_create(self) -> None:
        """Before run()."""

    def on_restart(self) -> None:
        """Before run(), when the task runs again after a failure or on resume."""

    def on_success(self) -> None:
        """After run() returned."""

    def on_failure(self) -> None:
        """After run() raised."""

    def on_destroy(self) -> None:
        """Last, always."""

    def on_abort(self) -> None:
        """When aborted or timed out, before the process is killed."""


def task(cls: type[Task]) -> type[Task]:
    """Register a Task class under its class name, for `task:` in job files."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"@task needs a subclass of jobflow_tui.Task, not {cls!r}")
    cls.task_class_name = cls.__name__
    before = _REGISTRY.get(cls.__name__)
    if before is not None and _where(before) != _where(cls):
        # Two folders (a job's and a subflow's) each with a class of this name: `task:` cannot tell them apart.
        _CLASHES.setdefault(cls.__name__, {_where(before)}).add(_where(cls))
    _REGISTRY[cls.__name__] = cls
    return cls


def _where(cls: type) -> str:
    return getattr(sys.modules.get(cls.__module__), "__file__", None) or cls.__module__


def registry() -> dict[str, type[Task]]:
    return dict(_REGISTRY)


def discover(directories: list[str], packages: list[str], files: list[str] = ()) -> list[tuple[str, int, str]]:
    """Import every module in `directories`, `packages` and `files` so their @task classes
    register; returns the problems as (file, line, message)."""
    problems: list[tuple[str, int, str]] = []
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        if os.path.exists(os.path.join(directory, "__init__.py")):
            # A package (Flowmancer's ./tasks layout): import it by name from its parent.
            parent, pkg = os.path.split(os.path.abspath(directory))
            _guard(problems, directory, lambda pkg=pkg, parent=parent: _import_package(pkg, [parent]))
            continue
        if directory not in sys.path:
            sys.path.insert(0, directory)
        for root, dirs, names in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            for fn in sorted(names):
                if fn.endswith(".py") and not fn.startswith("."):
                    path = os.path.join(root, fn)
                    _guard(problems, path, lambda path=path: _import_file(path))
    for pkg in packages:
        _guard(problems, pkg, lambda pkg=pkg: _import_package(pkg, []))
    for path in files:
        _guard(problems, path, lambda path=path: _import_file(path))
    for name, places in sorted(_CLASHES.items()):
        first, *others = sorted(places)
        problems.append((others[0], 1, f"task class '{name}' is defined here and in {first}: `task: {name}` "
                                       "cannot tell them apart; rename one"))
    return problems


def _import_file(path: str) -> None:
    name = "jobflow_tasks_" + os.path.splitext(os.path.basename(path))[0] + "_" + str(abs(hash(os.path.abspath(path))))
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _import_package(name: str, extra_path: list[str]) -> None:
    for p in extra_path:
        if p not in sys.path:
            sys.path.insert(0, p)
    pkg = importlib.import_module(name)
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), pkg.__name__ + "."):
        importlib.import_module(info.name)


def _guard(problems: list[tuple[str, int, str]], where: str, load) -> None:
    import traceback

    try:
        load()
    except SyntaxError as e:
        problems.append((e.filename or where, e.lineno or 1, f"syntax error in task module: {e.msg}"))
    except Exception as e:  # user code: report where it broke, never crash the caller
        frames = traceback.extract_tb(e.__traceback__)
        last = next((f for f in reversed(frames) if not f.filename.startswith("<")), None)
        file, line = (last.filename, last.lineno or 1) if last else (where, 1)
        problems.append((file, line, f"cannot import task module: {type(e).__name__}: {e}"))
