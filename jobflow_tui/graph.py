"""The DAG as text: an indented tree, Graphviz dot, or Mermaid."""

from __future__ import annotations

import json

from .jobdef import JobDef
from .sanitize import clean_line


def render(job: JobDef, fmt: str = "text") -> str:
    if fmt == "dot":
        return _dot(job)
    if fmt == "mermaid":
        return _mermaid(job)
    return _tree(job)


def _tree(job: JobDef) -> str:
    """Each task under its first dependency; other dependencies are named beside it."""
    order = job.order()
    kids: dict[str, list[str]] = {n: [] for n in order}
    roots = []
    for n in order:
        deps = job.tasks[n].dependencies
        (kids[deps[0]] if deps else roots).append(n)
    out = [f"{job.name} ({len(order)} tasks)"]
    # Explicit stack: a 10,000-task chain must not hit the recursion limit.
    stack = [(n, "", i == len(roots) - 1) for i, n in reversed(list(enumerate(roots)))]
    while stack:
        name, prefix, last = stack.pop()
        deps = job.tasks[name].dependencies
        also = f"  (also needs {', '.join(deps[1:])})" if len(deps) > 1 else ""
        out.append(f"{prefix}{'└── ' if last else '├── '}{clean_line(name, False)}{clean_line(also, False)}")
        child_prefix = prefix + ("    " if last else "│   ")
        ks = kids[name]
        for i in range(len(ks) - 1, -1, -1):
            stack.append((ks[i], child_prefix, i == len(ks) - 1))
    return "\n".join(out) + "\n"


def _dot(job: JobDef) -> str:
    lines = [f"digraph {json.dumps(job.name)} {{", "  rankdir=LR;"]
    for n in job.order():
        lines.append(f"  {json.dumps(n)};")
        for d in job.tasks[n].dependencies:
            lines.append(f"  {json.dumps(d)} -> {json.dumps(n)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid(job: JobDef) -> str:
    ids = {n: f"t{i}" for i, n in enumerate(job.order())}

    def label(n: str) -> str:
        return '"' + n.replace('"', "#quot;") + '"'

    lines = ["flowchart TD"]
    for n, i in ids.items():
        lines.append(f"  {i}[{label(n)}]")
    for n, i in ids.items():
        for d in job.tasks[n].dependencies:
            lines.append(f"  {ids[d]} --> {i}")
    return "\n".join(lines) + "\n"
