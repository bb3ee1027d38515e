"""Find logger classes and check a job's `loggers:` before anything runs.

Classes come, later ones winning: every class decorated @logger in this process (a flow
written in Python), the built-ins, then the job's own: the modules in `<job dir>/loggers`,
and, when a class is still missing, the extension directories and packages.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, Protocol

from pydantic import ValidationError

from .base import Logger, registered, registry
from .builtin import FileLogger, JsonLinesLogger
from .webhook import WebhookLogger

BUILTINS: dict[str, type[Logger]] = {c.__name__: c for c in (FileLogger, JsonLinesLogger, WebhookLogger)}
_LOCK = threading.Lock()  # imports change sys.modules and sys.path: one at a time


class Spec(Protocol):
    """What a `loggers:` entry gives (jobflow_tui.jobdef.LoggerSpec has it)."""

    name: str
    cls: str
    parameters: dict[str, Any]
    where: tuple[str, int, int]


def load_classes(job_directory: str, extension_directories: Iterable[str], extension_packages: Iterable[str],
                 wanted: Iterable[str]) -> tuple[dict[str, type[Logger]], list[str]]:
    """Logger classes by name for a job, and the problems importing its modules as
    "FILE:LINE:COL: message" (only those met while looking for `wanted` classes)."""
    classes = {**registry(), **BUILTINS}
    problems: list[str] = []
    missing = set(wanted) - set(BUILTINS)
    with _LOCK:
        own = os.path.join(job_directory, "loggers")
        if os.path.isdir(own):
            classes.update(_scan_directory(own, problems))
        if missing - set(classes):
            for directory in extension_directories:
                if os.path.isdir(directory):
                    classes.update(_scan_directory(directory, problems))
            for pkg in extension_packages:
                classes.update(_scan(lambda pkg=pkg: _import_package(pkg), pkg, problems))
    return classes, problems


def instantiate(spec: Spec, classes: dict[str, type[Logger]]) -> tuple[Logger | None, list[str]]:
    """The logger of one entry, its parameters validated; or None and what is wrong."""
    cls = classes.get(spec.cls)
    if cls is None:
        close = difflib.get_close_matches(spec.cls, sorted(classes), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return None, [f"logger '{spec.name}': unknown logger class '{spec.cls}'{hint} (built in: "
                      f"{', '.join(BUILTINS)}; others are classes decorated @logger in ./loggers "
                      "or an extension directory)"]
    if getattr(cls, "__abstractmethods__", None):
        return None, [f"logger '{spec.name}': class '{spec.cls}' does not implement async update(event)"]
    try:
        return cls.model_validate(spec.parameters), []
    except ValidationError as e:
        return None, [_parameter_problem(spec, cls, err) for err in e.errors()]
    except Exception as e:  # the class's own checks: whatever they raise is the problem
        return None, [f"logger '{spec.name}' ({spec.cls}): {type(e).__name__}: {e}"]


def check(job_directory: str, extension_directories: list[str], extension_packages: list[str],
          specs: list[Any]) -> list[str]:
    """Every problem of a job's loggers (unknown class, bad parameter, module that does not
    import), as "FILE:LINE:COL: message"; nothing is started."""
    if not specs:
        return []
    classes, problems = load_classes(job_directory, extension_directories, extension_packages, [s.cls for s in specs])
    for spec in specs:
        f, line, col = spec.where
        problems.extend(f"{f}:{line}:{col}: {m}" for m in instantiate(spec, classes)[1])
    return problems


def _parameter_problem(spec: Spec, cls: type[Logger], err: Any) -> str:
    loc = ".".join(str(x) for x in err.get("loc", ())) or "parameters"
    head = f"logger '{spec.name}' ({spec.cls}):"
    kind = err.get("type")
    if kind == "missing":
        return f"{head} parameter '{loc}' is required"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc, sorted(cls.model_fields), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(cls.model_fields) or "none"
        return f"{head} unknown parameter '{loc}'{hint} (its parameters: {known})"
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return f"{head} parameter '{loc}': {err.get('msg', 'invalid')} (got {got})"


def _scan_directory(directory: str, problems: list[str]) -> dict[str, type[Logger]]:
    if os.path.exists(os.path.join(directory, "__init__.py")):
        # A package (Flowmancer's ./loggers layout), imported under a name of its own so that
        # two jobs' `loggers` packages never meet in sys.modules.
        name = _unique("jobflow_loggers_pkg", directory)
        return _scan(lambda: _import_package(name, directory), directory, problems)
    if directory not in sys.path:
        # So that its modules can import each other; last, so that a `logging.py` of the
        # user's never hides the standard library from the runner.
        sys.path.append(directory)
    found: dict[str, type[Logger]] = {}
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for fn in sorted(names):
            if fn.endswith(".py") and not fn.startswith("."):
                path = os.path.join(root, fn)
                found.update(_scan(lambda path=path: [_import_file(path)], path, problems))
    return found


def _scan(load: Callable[[], list[ModuleType]], where: str, problems: list[str]) -> dict[str, type[Logger]]:
    """The @logger classes in the modules `load` imports; a module that fails is a problem."""
    try:
        modules = load()
    except SyntaxError as e:
        problems.append(f"{e.filename or where}:{e.lineno or 1}:{e.offset or 1}: syntax error in logger module: {e.msg}")
        return {}
    except Exception as e:  # user code: say where it broke, never crash the caller
        frames = traceback.extract_tb(e.__traceback__)
        last = next((f for f in reversed(frames) if not f.filename.startswith("<")), None)
        file, line = (last.filename, last.lineno or 1) if last else (where, 1)
        problems.append(f"{file}:{line}:1: cannot import logger module: {type(e).__name__}: {e}")
        return {}
    return {c.__name__: c for m in modules for c in list(vars(m).values()) if registered(c)}


def _unique(prefix: str, path: str) -> str:
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    stem = "".join(ch if ch.isalnum() else "_" for ch in os.path.splitext(os.path.basename(path))[0])
    return f"{prefix}_{stem}_{digest}"


def _import_file(path: str) -> ModuleType:
    name = _unique("jobflow_loggers", path)
    module = sys.modules.get(name)
    if module is not None:
        return module
    return _exec(name, importlib.util.spec_from_file_location(name, path))


def _exec(name: str, spec: Any) -> ModuleType:
    """Run a module from its spec under `name`; if it fails, it is forgotten, so that a
    fixed file is read again."""
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_package(name: str, folder: str | None = None) -> list[ModuleType]:
    """A package and all its modules: installed, or in `folder` under the name `name`."""
    if folder is not None and name not in sys.modules:
        _exec(name, importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                           submodule_search_locations=[folder]))
    pkg = importlib.import_module(name)
    modules = [pkg]
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), pkg.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    return modules
