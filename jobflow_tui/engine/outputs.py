"""Data between tasks: what an attempt publishes, and the job-wide shared dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..journal import AttemptFiles
from .executor import Outcome


def parse_outputs(path: str) -> dict[str, str]:
    """`key=value` lines (and GitHub's `key<<EOF ... EOF` blocks) from a JOBFLOW_OUTPUT file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        eq = line.find("=")
        heredoc = line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            key, delim = line[:heredoc].strip(), line[heredoc + 2 :].strip()
            body: list[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            if key:
                out[key] = "\n".join(body)
        elif eq > 0:
            out[line[:eq].strip()] = line[eq + 1 :]
    return out


def merge_shared(shared: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Apply to `shared` what one attempt changed in its copy (`before` -> `after`), so that
    concurrent tasks' changes to other keys survive; whether anything changed."""
    changed = False
    for k, v in after.items():
        if k not in before or before[k] != v:
            shared[k] = v
            changed = True
    for k in before:
        if k not in after and k in shared:
            del shared[k]
            changed = True
    return changed


def recorded_outcome(files: AttemptFiles, code: int | None) -> Outcome:
    """An attempt's outcome from its files: what it published, and a Python task's result."""
    outputs = parse_outputs(files.outputs) if os.path.exists(files.outputs) else {}
    result = files.read_result() or {}
    if isinstance(result.get("outputs"), dict):
        outputs.update(result["outputs"])
    shared = result.get("shared_dict")
    return Outcome(code, outputs, shared if isinstance(shared, dict) else None)


def with_local_names(task: str, upstream: dict[str, Any], subflows: Mapping[str, list[str]]) -> dict[str, Any]:
    """`upstream` (outputs by task name) with, for a task inside a subflow, its neighbours
    also under the names its own job file gives them (`schema` for `validate/schema`)."""
    inside = task.rpartition("/")[0]
    if inside not in subflows:
        return upstream
    local = inside + "/"
    return {**upstream, **{n[len(local):]: v for n, v in upstream.items() if n.startswith(local)}}
