"""Load a job file: read, merge includes, validate, and build a JobDef.

Every problem is collected and raised at once as JobFileError, each located at the node
that causes it. Nothing here starts anything.
"""

from __future__ import annotations

import gc
import os

from .errors import JobFileError, Problem
from .model import JobDef
from .subflow import flatten
from .validate import type_name, validate
from .yamlfile import Loaded, Path, load_yaml

# All the YAML of one job, includes counted: well above any real job (100,000 tasks take
# 3 to 6 MiB, and load in about 70 bytes of memory per byte of YAML), and refused before
# reading rather than after a minute of parsing and gigabytes.
MAX_BYTES = 16 << 20


def _display(path: str) -> str:
    # Paths are shown as the user wrote them (includes: joined to the including file's).
    return os.path.normpath(path)


class _Reader:
    """Reads files with includes, and locates any path of the merged document."""

    def __init__(self) -> None:
        # In merge order (a file after what it includes): the later of two places wins.
        self.sources: list[Loaded] = []
        self.problems: list[Problem] = []
        self.files: list[str] = []
        self.size = 0

    def at(self, path: Path) -> tuple[str, int, int]:
        if path and path[0] == "include":  # not part of the merged document
            path = ()
        best: tuple[int, tuple[str, int, int]] | None = None
        for src in reversed(self.sources):
            n, mark = src.find(path)
            if best is None or n > best[0]:
                best = (n, mark)
        if best is not None:
            return best[1]
        return (self.files[0] if self.files else "?", 1, 1)

    def error(self, path: Path, message: str) -> None:
        f, line, col = self.at(path)
        self.problems.append(Problem(f, line, col, message))

    def release(self) -> None:
        """Let go of the parsed nodes; `at` still works (it parses again if asked)."""
        for src in self.sources:
            src.release()

    def read(self, path: str, stack: tuple[str, ...], origin: tuple[str, int, int] | None) -> dict | None:
        real = os.path.realpath(path)
        shown = _display(path)
        where = origin or (shown, 1, 1)
        room = MAX_BYTES - self.size
        try:
            with open(path, encoding="utf-8") as f:
                size = os.fstat(f.fileno()).st_size
                # Refused before reading: parsing a file this big would take minutes and gigabytes.
                text = "" if size > room else f.read(room + 1)
        except UnicodeDecodeError as e:
            self.problems.append(Problem(shown, 1, 1, f"not UTF-8 text ({e.reason})"))
            return None
        except OSError as e:
            what = "include file" if origin else "job file"
            self.problems.append(Problem(*where, f"cannot read {what} {path!r}: {e.strerror}"))
            return None
        size = max(size, len(text))
        if size > room:
            limit = f"more than {MAX_BYTES >> 20} MiB of YAML"
            what = f"including {path!r} makes the job too large: {limit} in all" if origin else f"the job file is too large: {limit}"
            self.problems.append(Problem(*where, what))
            return None
        self.size += size
        self.files.append(shown)
        loaded, problems = load_yaml(text, shown)
        self.problems.extend(problems)
        if loaded is None:
            return None
        doc = loaded.value
        if not isinstance(doc, dict):
            self.problems.append(
                Problem(shown, 1, 1, f"a job file must be a mapping with a 'tasks' key, not {type_name(doc)}")
            )
            return None
        includes = doc.get("include")
        merged: dict = {}
        if includes is not None:
            if isinstance(includes, str):
                includes = [includes]
            if not isinstance(includes, list):
                self.problems.append(Problem(*loaded.at(("include",), (shown, 1, 1)), "'include' must be a list of file paths"))
                includes = []
            base = os.path.dirname(path)
            for i, inc in enumerate(includes):
                at = loaded.at(("include", i), loaded.at(("include",), (shown, 1, 1)))
                if not isinstance(inc, str) or not inc:
                    self.problems.append(Problem(*at, "an include entry must be a file path"))
                    continue
                target = os.path.normpath(os.path.join(base, os.path.expanduser(inc)))
                if os.path.realpath(target) in stack + (real,):
                    chain = " -> ".join(_display(p) for p in stack + (real, os.path.realpath(target)))
                    self.problems.append(Problem(*at, f"include cycle: {chain}"))
                    continue
                sub = self.read(target, stack + (real,), at)
                if sub is not None:
                    _merge(merged, sub)
        _merge(merged, {k: v for k, v in doc.items() if k != "include"})
        # The nodes are most of the memory at this point and only a problem needs them:
        # dropped now, so that validation reuses their memory (a 100,000-task job peaks
        # lower); the first problem found composes the text again.
        loaded.release()
        self.sources.append(loaded)
        return merged


def _merge(dst: dict, src: dict) -> None:
    """Flowmancer's rule: mappings merge key by key, everything else is replaced whole."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def load_job(path: str, _within: tuple[str, ...] = ()) -> JobDef:
    """Load, merge and validate `path` (and the job files of its subflows); raise
    JobFileError listing every problem. `_within`: the job files whose subflows lead here."""
    # Loading allocates several objects per YAML node, none of them in a cycle: the cyclic
    # collector would run again and again over them for nothing (a third of the time of a
    # 10,000-task file).
    collecting = gc.isenabled()
    gc.disable()
    reader = _Reader()
    try:
        doc = reader.read(path, (), None)
        if doc is None:
            raise JobFileError(reader.problems or [Problem(_display(path), 1, 1, "empty job file")])
        job = validate(doc, os.path.abspath(path), reader)
        _subflows(job, reader, (*_within, os.path.realpath(path)))
    finally:
        reader.release()
        if collecting:
            gc.enable()
    if reader.problems:
        raise JobFileError(reader.problems)
    return job


def from_mapping(doc: dict, path: str) -> JobDef:
    """Validate a job given as Python data (as a job file would hold it); JobFileError if bad."""
    reader = _Reader()
    reader.files.append(_display(path))
    job = validate(doc, os.path.abspath(path), reader)
    _subflows(job, reader, ())
    if reader.problems:
        raise JobFileError(reader.problems)
    return job


def _subflows(job: JobDef, reader: _Reader, within: tuple[str, ...]) -> None:
    """Read the job of each subflow (a file through which the job would include itself is
    a problem located at its `job:`) and put their tasks in place."""
    subs: dict[str, JobDef] = {}
    for t in job.tasks.values():
        if isinstance(t.subjob, JobDef):
            subs[t.name] = t.subjob
        elif t.subjob:
            where = ("tasks", t.name, "job")
            real = os.path.realpath(t.subjob)
            if real in within:
                chain = " -> ".join(_display(p) for p in (*within, real))
                reader.error(where, f"subflow cycle: {chain} (a job cannot contain itself)")
                continue
            if not os.path.isfile(t.subjob):
                reader.error(where, f"cannot read the subflow's job file {t.subjob!r}: no such file")
                continue
            try:
                subs[t.name] = load_job(t.subjob, within)
            except JobFileError as e:
                reader.problems.extend(e.problems)
    if subs or any(t.subjob is not None for t in job.tasks.values()):
        for where, message in flatten(job, subs):
            reader.error(where, message)
