"""YAML loading that keeps where every value came from.

PyYAML's constructors lose positions and silently keep the last of duplicate keys, and a
naive construction of aliases can expand exponentially ("billion laughs"). So the file is
composed into nodes and converted here, recording a mark for every path, reporting
duplicate keys, and counting expanded nodes against a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple[Any, ...]

# Far above any real job file, far below what would hurt memory or time.
MAX_NODES = 200_000


@dataclass
class Loaded:
    """A YAML document's value plus the position of every path in it."""

    value: Any
    file: str
    marks: dict[Path, tuple[str, int, int]] = field(default_factory=dict)


# libyaml's composer is several times faster on large jobs and keeps the same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR = "tag:yaml.org,2002:str"


class _TooBig(Exception):
    pass


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[Path, tuple[str, int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        # One loader instance resolves scalars (int, bool, null, ...) exactly as SafeLoader would.
        self.scalars = yaml.SafeLoader("")

    def mark(self, node: yaml.Node) -> tuple[str, int, int]:
        m = node.start_mark
        return (self.file, m.line + 1, m.column + 1)

    def problem(self, node: yaml.Node, message: str) -> None:
        f, line, col = self.mark(node)
        self.problems.append(Problem(f, line, col, message))

    def convert(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > 200:
            raise _TooBig
        if path not in self.marks:
            self.marks[path] = self.mark(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:  # most values: no constructor needed
                return node.value
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(n, path + (i,), depth + 1) for i, n in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        return None  # pragma: no cover - PyYAML has no other node kinds

    def scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            self.problem(node, f"cannot read the value {node.value!r} as {node.tag.rsplit(':', 1)[-1]}")
            return node.value

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict:
        result: dict = {}
        merged: dict = {}
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # YAML merge keys (<<: *anchor) fill in what the mapping does not set itself.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    value = self.convert(src, path, depth + 1)
                    if isinstance(value, dict):
                        for k, v in value.items():
                            merged.setdefault(k, v)
                    else:
                        self.problem(src, "a merge key (<<) needs a mapping")
                continue
            if key_node.tag == _STR:
                key = key_node.value
                self.count += 1
            else:
                key = self.convert(key_node, path + ("<key>",), depth + 1)
            if isinstance(key, (list, dict)):
                self.problem(key_node, "a mapping key must be a plain value")
                continue
            if key in seen:
                first = seen[key].start_mark
                self.problem(
                    key_node,
                    f"duplicate key {key!r} (first defined at line {first.line + 1}); "
                    "only one definition is allowed",
                )
                continue
            seen[key] = key_node
            sub = path + (key,)
            self.marks[sub] = self.mark(value_node)
            self.marks[sub + ("<key>",)] = self.mark(key_node)
            result[key] = self.convert(value_node, sub, depth + 1)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result


def load_yaml(text: str, file: str) -> tuple[Loaded | None, list[Problem]]:
    """Parse one YAML document; return it with marks, or the problems found."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        return None, [Problem(file, line, col, f"YAML syntax error: {what}")]
    except yaml.YAMLError as e:
        return None, [Problem(file, 1, 1, f"YAML error: {e}")]
    conv = _Converter(file)
    if node is None:
        return None, [Problem(file, 1, 1, "the file is empty: a job needs a 'tasks' mapping")]
    try:
        value = conv.convert(node, ())
    except _TooBig:
        return None, [
            Problem(
                file,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                f"the document expands to more than {MAX_NODES} values or nests too deeply "
                "(aliases repeated too often?)",
            )
        ]
    return Loaded(value, file, conv.marks), conv.problems
