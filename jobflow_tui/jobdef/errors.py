"""Located job-file errors: every problem carries FILE:LINE:COLUMN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem in a job file, 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class JobFileError(Exception):
    """Raised with every problem found at once; nothing has run."""

    def __init__(self, problems: list[Problem]) -> None:
        # The same place can be reached twice (a value shared through an alias): say it once.
        self.problems = sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


def type_name(v: Any) -> str:
    """How a YAML value's kind is named in messages."""
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "empty (null)",
    }.get(type(v), type(v).__name__)
