"""The DAG as text: an indented tree, Graphviz dot, or Mermaid.

Each format writes every task once and costs time and bytes in proportion to the tasks
and dependencies, however long the chains.
"""

from __future__ import annotations

import json
from collections import deque

from .jobdef import JobDef
from .sanitize import clean_line

# Indent levels before a subtree is continued in a block of its own: deeper, a tree's
# lines would be mostly indentation (and its size grow with the square of its depth).
MAX_DEPTH = 12


def render(job: JobDef, fmt: str = "text") -> str:
    """The job's DAG in `fmt`: "text" (a tree), "dot" or "mermaid"."""
    if fmt == "dot":
        return _dot(job)
    if fmt == "mermaid":
        return _mermaid(job)
    return _tree(job)


def _tree(job: JobDef) -> str:
    """Each task under its first dependency; other dependencies are named beside it.

    A task that is the only one under its parent follows it on the next line, at the
    same indent, after an arrow: a chain reads top to bottom instead of drifting right.
    A subtree that would sit deeper than MAX_DEPTH levels continues in a block below.
    """
    order = job.order()
    kids: dict[str, list[str]] = {n: [] for n in order}
    roots: list[str] = []
    for n in order:
        deps = job.tasks[n].dependencies
        (kids[deps[0]] if deps else roots).append(n)

    def label(name: str) -> str:
        deps = job.tasks[name].dependencies
        also = f"  (also needs {', '.join(deps[1:])})" if len(deps) > 1 else ""
        return clean_line(name, False) + clean_line(also, False)

    out = [f"{job.name} ({len(order)} tasks)"]
    blocks: deque[str | None] = deque([None])  # None: the roots
    while blocks:
        head = blocks.popleft()
        if head is not None:
            out.append(f"{clean_line(head, False)} (continued)")
        items = roots if head is None else kids[head]
        # Explicit stack: a 100,000-task job must not hit the recursion limit.
        stack = [(n, "", i == len(items) - 1, 0) for i, n in reversed(list(enumerate(items)))]
        while stack:
            name, prefix, last, depth = stack.pop()
            out.append(f"{prefix}{'└── ' if last else '├── '}{label(name)}")
            while len(kids[name]) == 1:
                name = kids[name][0]
                out.append(f"{prefix}{'  → ' if last else '│ → '}{label(name)}")
            ks = kids[name]
            if not ks:
                continue
            if depth + 1 >= MAX_DEPTH:
                out[-1] += "  (continued below)"
                blocks.append(name)
                continue
            child_prefix = prefix + ("    " if last else "│   ")
            for i in range(len(ks) - 1, -1, -1):
                stack.append((ks[i], child_prefix, i == len(ks) - 1, depth + 1))
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
