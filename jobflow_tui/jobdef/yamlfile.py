"""YAML loading that keeps where every value came from.

PyYAML's constructors lose positions and silently keep the last of duplicate keys, and a
naive construction of aliases can expand exponentially ("billion laughs"). So the file is
composed into nodes and converted here: duplicate keys are reported, and what aliases
expand to is counted against a budget before it is copied. Positions are looked up in the
nodes only when a message needs one: a job of 100,000 tasks has some 700,000 nodes and
usually no problem at all.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problem

Path = tuple[Any, ...]
Mark = tuple[str, int, int]

# libyaml refuses deeper flow nesting itself; block nesting is limited here.
MAX_DEPTH = 200
# What aliases may add: this many values, or ALIAS_RATIO per value written out, whichever
# is more. Reuse such as `<<: *defaults` in every task stays far below it; a "billion
# laughs" is refused before its first large copy, in milliseconds.
ALIAS_FLOOR = 200_000
ALIAS_RATIO = 10

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_IMPLICIT = {k: tuple(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items() if k is not None}
_BOOLS = yaml.constructor.SafeConstructor.bool_values
_NOT_A_KEY = object()

# libyaml's composer is several times faster on large jobs and keeps the same marks.
_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):
    """SafeLoader's tags, resolved without the general resolver's path lookups, which
    SafeLoader never uses (resolve runs once per scalar: some 10% of composing)."""

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in _IMPLICIT.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return _STR
        return _SEQ if kind is SequenceNode else _MAP


def compose(text: str) -> Node | None:
    """The node graph of one YAML document (aliases are shared nodes)."""
    return yaml.compose(text, Loader=_Loader)


class _Refused(Exception):
    def __init__(self, node: Node, message: str) -> None:
        self.node, self.message = node, message


def _mark(file: str, node: Node) -> Mark:
    m = node.start_mark
    return (file, m.line + 1, m.column + 1)


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.count = 0  # values produced, aliases' copies included
        self.aliased = 0  # values produced by copying what an alias refers to
        self.in_alias = 0
        # id of a collection node -> values it produced (-1 while it is being converted)
        self.sizes: dict[int, int] = {}
        # One loader instance resolves scalars (int, bool, null, ...) exactly as SafeLoader would.
        self.scalars = yaml.SafeLoader("")

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(Problem(*_mark(self.file, node), message))

    def convert(self, node: Node, depth: int) -> Any:
        cls = node.__class__
        if cls is ScalarNode:
            return node.value if node.tag == _STR else self.scalar(node)
        if depth > MAX_DEPTH:
            raise _Refused(node, f"the document nests deeper than {MAX_DEPTH} levels")
        key = id(node)
        size = self.sizes.get(key)
        if size is None:
            self.sizes[key] = -1
            before = self.count
            value = self.collection(node, cls, depth)
            self.sizes[key] = self.count - before + 1
            return value
        if size < 0:
            raise _Refused(node, "this value contains itself through an alias: it has no end")
        # Reached again, so through an alias: it is copied whole (so that no two places of
        # the document share a mutable value); what the copy adds is checked beforehand.
        if not self.in_alias:
            written = self.count - self.aliased
            self.aliased += size
            limit = max(ALIAS_FLOOR, ALIAS_RATIO * written)
            if self.aliased > limit:
                raise _Refused(
                    node,
                    f"the document expands to more than {limit} values through aliases: "
                    "the anchor here is repeated too often (each alias copies all it holds)",
                )
        self.in_alias += 1
        value = self.collection(node, cls, depth)
        self.in_alias -= 1
        return value

    def collection(self, node: Node, cls: type, depth: int) -> Any:
        if cls is MappingNode:
            return self.mapping(node, depth)
        items = node.value
        self.count += len(items)
        d = depth + 1
        return [n.value if n.__class__ is ScalarNode and n.tag == _STR else self.convert(n, d) for n in items]

    def scalar(self, node: ScalarNode) -> Any:
        tag, value = node.tag, node.value
        # The usual non-string scalars without the constructor's machinery.
        if tag == _INT and value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)
        if tag == _BOOL and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        if tag == _NULL:
            return None
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            self.problem(node, f"cannot read the value {value!r} as {tag.rsplit(':', 1)[-1]}")
            return value

    def mapping(self, node: MappingNode, depth: int) -> dict:
        pairs = node.value
        self.count += 2 * len(pairs)
        d = depth + 1
        result: dict = {}
        merged: dict = {}
        firsts: dict | None = None  # key -> its first node, built at the first duplicate
        for key_node, value_node in pairs:
            tag = key_node.tag
            if tag == _STR:
                key = key_node.value
            elif tag == _MERGE:
                self.merge(value_node, d, merged)
                continue
            else:
                key = self.convert(key_node, d)
                if isinstance(key, (list, dict)):
                    self.problem(key_node, "a mapping key must be a plain value")
                    continue
            if key in result:
                if firsts is None:
                    firsts = self.first_keys(pairs)
                first = firsts.get(key, key_node).start_mark.line + 1
                self.problem(
                    key_node,
                    f"duplicate key {key!r} (first defined at line {first}); only one definition is allowed",
                )
                continue
            if value_node.__class__ is ScalarNode and value_node.tag == _STR:
                result[key] = value_node.value
            else:
                result[key] = self.convert(value_node, d)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def merge(self, value_node: Node, depth: int, merged: dict) -> None:
        # YAML merge keys (<<: *anchor) fill in what the mapping does not set itself.
        sources = value_node.value if value_node.__class__ is SequenceNode else [value_node]
        for src in sources:
            value = self.convert(src, depth)
            if isinstance(value, dict):
                for k, v in value.items():
                    merged.setdefault(k, v)
            else:
                self.problem(src, "a merge key (<<) needs a mapping")

    def first_keys(self, pairs: list) -> dict:
        firsts: dict = {}
        for k, _ in pairs:
            if k.tag != _MERGE:
                try:
                    firsts.setdefault(self.key_of(k), k)
                except TypeError:  # unhashable: reported as such
                    pass
        return firsts

    def key_of(self, node: Node) -> Any:
        if node.tag == _STR:
            return node.value
        if node.__class__ is not ScalarNode:
            return _NOT_A_KEY
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            return node.value


class Loaded:
    """One YAML document: its value, and where each path of it was written.

    The value and nodes are kept only until `release()`; a later `find` composes the text
    again, unless it asks for a top-level key or one of the mappings under them other
    than the tasks (notes point there).
    """

    def __init__(self, value: Any, file: str, text: str, root: Node) -> None:
        self.value, self.file, self.text = value, file, text
        self._root: Node | None = root
        self._entries: dict[int, dict[Any, tuple[Node, Node]]] = {}
        self._kept: dict[Path, Mark] = {}

    def release(self) -> None:
        """Drop the value and the nodes (most of a large file's memory); positions stay
        available."""
        root = self._root
        if root is not None and root.__class__ is MappingNode:
            for key, (key_node, value_node) in self.entries(root).items():
                self._keep((key,), key_node, value_node)
                if key != "tasks" and value_node.__class__ is MappingNode:
                    for sub, (sub_key, sub_value) in self.entries(value_node).items():
                        self._keep((key, sub), sub_key, sub_value)
        self.value = None
        self._root = None
        self._entries = {}

    def _keep(self, path: Path, key_node: Node, value_node: Node) -> None:
        self._kept[path] = _mark(self.file, value_node)
        self._kept[path + ("<key>",)] = _mark(self.file, key_node)

    def at(self, path: Path, default: Mark) -> Mark:
        """Where `path` was written, if all of it was; else `default`."""
        n, mark = self.find(path)
        return mark if n == len(path) else default

    def find(self, path: Path) -> tuple[int, Mark]:
        """The longest prefix of `path` written in this document: its length and position.

        Steps are mapping keys and list indexes; a step "<key>" after a key means the
        key itself rather than its value.
        """
        if self._root is None:
            kept = self._kept.get(path)
            if kept is not None:
                return (len(path), kept)
            self._root = compose(self.text)
        node: Node = self._root
        found = (0, _mark(self.file, node))
        for i, step in enumerate(path):
            if node.__class__ is MappingNode:
                entry = self.entries(node).get(step)
                if entry is None:
                    break
                if i + 1 < len(path) and path[i + 1] == "<key>":
                    return (i + 2, _mark(self.file, entry[0]))
                node = entry[1]
            elif node.__class__ is SequenceNode and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
            else:
                break
            found = (i + 1, _mark(self.file, node))
        return found

    def entries(self, node: MappingNode) -> dict[Any, tuple[Node, Node]]:
        """Key -> (key node, value node) as conversion resolved them: the first of
        duplicates, then what merge keys bring in."""
        cached = self._entries.get(id(node))
        if cached is not None:
            return cached
        keys = _Converter(self.file)
        out: dict[Any, tuple[Node, Node]] = {}
        sources: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources.extend(value_node.value if value_node.__class__ is SequenceNode else [value_node])
                continue
            if key_node.__class__ is not ScalarNode:
                continue  # a collection as a key: reported when converting
            key = keys.key_of(key_node)
            try:
                out.setdefault(key, (key_node, value_node))
            except TypeError:  # an unhashable key, reported when converting
                pass
        self._entries[id(node)] = out
        for src in sources:
            if src.__class__ is MappingNode and src is not node:
                for k, v in self.entries(src).items():
                    out.setdefault(k, v)
        return out


def load_yaml(text: str, file: str) -> tuple[Loaded | None, list[Problem]]:
    """Parse one YAML document; return it with its positions, or the problems found."""
    try:
        node = compose(text)
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        return None, [Problem(file, line, col, f"YAML syntax error: {what}")]
    except yaml.YAMLError as e:
        return None, [Problem(file, 1, 1, f"YAML error: {e}")]
    if node is None:
        return None, [Problem(file, 1, 1, "the file is empty: a job needs a 'tasks' mapping")]
    conv = _Converter(file)
    try:
        value = conv.convert(node, 0)
    except _Refused as e:
        return None, [Problem(*_mark(file, e.node), e.message)]
    return Loaded(value, file, text, node), conv.problems
