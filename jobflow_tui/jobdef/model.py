"""The validated, merged job: plain dataclasses the engine consumes."""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .runend import RunEnd


@dataclass
class TaskDef:
    """One task after merging and validation; paths are absolute."""

    name: str
    index: int  # position in the merged file: breaks ties in dependency order
    command: str | list[str] | None = None
    python_class: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    max_attempts: int = 1
    retry_delay: float = 0.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 300.0
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."
    kill_grace: float = 5.0
    description: str = ""
    params: dict[str, str] = field(default_factory=dict)  # run parameters of its subflows, over the run's
    executor: str = ""  # "local": on the runner's machine whatever the job's executor ("": the job's)
    resources: dict[str, float] = field(default_factory=dict)  # Dask worker resources it needs
    subjob: Any = None  # a subflow, until flattened: the job file's path (or a JobDef built in code)

    def retry_wait(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after `failed_attempt` (1-based)."""
        if self.retry_delay <= 0:
            return 0.0
        wait = self.retry_delay * self.retry_backoff ** max(0, failed_attempt - 1)
        return min(wait, self.retry_max_delay)

    def fingerprint(self) -> str:
        """Hash of everything that changes what the task does (not its retry policy)."""
        cached = self.__dict__.get("_fingerprint")
        if cached:
            return cached
        what = {
            "command": self.command,
            "class": self.python_class,
            "parameters": self.parameters,
            "dependencies": sorted(self.dependencies),
            "env": self.env,
            "cwd": self.cwd,
        }
        if self.params:  # only then: the fingerprints of tasks outside subflows stay as they were
            what["params"] = self.params
        self.__dict__["_fingerprint"] = digest = digest_of(what)
        return digest


# json.dumps(sort_keys=True, default=str) builds its encoder on every call: most of the
# cost of fingerprinting 100,000 small tasks. One C encoder gives the same bytes; it skips
# the circular-reference check, which YAML-loaded data never needs (a cycle still ends in
# RecursionError rather than a hang).
_encode: Callable[[Any], str]
if json.encoder.c_make_encoder is not None:
    _c_encoder = json.encoder.c_make_encoder(
        None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", True, False, True
    )

    def _encode(value: Any) -> str:
        return "".join(_c_encoder(value, 0))
else:  # pragma: no cover - CPython always has the C encoder
    _encode = json.JSONEncoder(sort_keys=True, default=str).encode


def digest_of(value: Any) -> str:
    """A short stable hash of YAML-loaded data, whatever its mapping keys (YAML allows
    null, numbers and booleans as keys, which JSON's sorting cannot compare)."""

    def text_keys(v: Any) -> Any:
        if isinstance(v, dict):
            # str keys as they are, so the hashes of ordinary jobs never change
            return {k if isinstance(k, str) else f"{type(k).__name__}:{k}": text_keys(x) for k, x in v.items()}
        if isinstance(v, list):
            return [text_keys(x) for x in v]
        return v

    try:
        raw = _encode(value)
    except TypeError:  # keys of several kinds in one mapping (rare): only then rewrite them
        raw = _encode(text_keys(value))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class LoggerSpec:
    """One entry of `loggers:`: its name, class and parameters (checked before the run starts)."""

    name: str
    cls: str
    parameters: dict[str, Any] = field(default_factory=dict)
    where: tuple[str, int, int] = ("?", 1, 1)  # the `logger:` value in the job file, for located messages


@dataclass
class JobDef:
    """A whole job: config plus tasks in file order."""

    name: str
    path: str
    directory: str
    tasks: dict[str, TaskDef]
    max_concurrency: int = 0
    on_hangup: str = "detach"  # when the dashboard loses its terminal: "detach" or "stop"
    executor: str = "local"  # where commands run: local, dask:local, dask://HOST:PORT
    extension_directories: list[str] = field(default_factory=list)
    extension_packages: list[str] = field(default_factory=list)
    task_files: list[str] = field(default_factory=list)  # modules of task classes (flows in code)
    notes: list[str] = field(default_factory=list)
    hash: str = ""
    env: dict[str, str] = field(default_factory=dict)  # config.env (every task's env starts from it)
    # Subflow name -> every task inside it (all levels), in run order; its tasks are contiguous there.
    subflows: dict[str, list[str]] = field(default_factory=dict)
    fixed_order: list[str] = field(default_factory=list)  # the run order, when subflows fix it
    loggers: list[LoggerSpec] = field(default_factory=list)  # `loggers:`, in file order
    run_end: RunEnd = field(default_factory=RunEnd)  # retention of run folders; commands when the run ends
    # (file, line, column) of a path in the merged document, for located messages later on
    locate: Callable[[tuple], tuple[str, int, int]] = lambda path: ("?", 1, 1)

    def children(self) -> dict[str, list[str]]:
        """Task name -> the tasks that depend on it, in file order (do not modify)."""
        cached = self.__dict__.get("_children")
        if cached is not None:
            return cached
        out: dict[str, list[str]] = {n: [] for n in self.tasks}
        for t in self.tasks.values():
            for d in t.dependencies:
                out[d].append(t.name)
        self.__dict__["_children"] = out
        return out

    def order(self) -> list[str]:
        """Dependency order, ties broken by file order."""
        import heapq

        if self.fixed_order:
            return list(self.fixed_order)
        tasks = self.tasks
        # Usually every task comes after what it needs: then file order is the answer.
        if self._file_order_is_dependency_order():
            return list(tasks)
        indeg = {n: len(t.dependencies) for n, t in tasks.items()}
        kids = self.children()
        heap = [(t.index, n) for n, t in tasks.items() if indeg[n] == 0]
        heapq.heapify(heap)
        out: list[str] = []
        while heap:
            _, n = heapq.heappop(heap)
            out.append(n)
            for c in kids[n]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(heap, (tasks[c].index, c))
        return out

    def _file_order_is_dependency_order(self) -> bool:
        tasks = self.tasks
        last = -1
        for t in tasks.values():
            i = t.index
            if i <= last:
                return False
            for d in t.dependencies:
                u = tasks.get(d)
                if u is None or u.index >= i:
                    return False
            last = i
        return True

    def downstream(self, name: str) -> list[str]:
        """Every task that depends on `name`, directly or not (not `name` itself), in file order."""
        kids = self.children()
        seen: set[str] = set()
        stack = list(kids[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(kids[n])
        return self._in_file_order(seen)

    def upstream(self, names: list[str]) -> list[str]:
        """`names` (a subflow's: all its tasks) and everything they need, in file order."""
        seen: set[str] = set()
        stack = [m for n in names for m in self.subflows.get(n, [n])]
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.tasks[n].dependencies)
        return self._in_file_order(seen)

    def _in_file_order(self, names: set[str]) -> list[str]:
        # Sorting the few found beats scanning every task when the job is large.
        if len(names) * 8 < len(self.tasks):
            return sorted(names, key=lambda n: self.tasks[n].index)
        return [n for n in self.tasks if n in names]
