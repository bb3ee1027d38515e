"""The jobs a server serves: job files named on its command line, and the `*.yaml` job files
in the folders it was given. New jobs sent over HTTP go into the first folder.

Names that come over HTTP never become paths: a job is found by its `config.name` among the
files already served, and a new job's file name is its validated name.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from ..engine import StateDir, default_state_dir
from ..jobdef import JobDef, JobFileError, load_job

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # what a job sent over HTTP may be called
MAX_JOB_FILE = 1024 * 1024  # bytes of a job file sent over HTTP


@dataclass(frozen=True)
class ServedJob:
    """A job file that loads, and where its runs keep their state."""

    name: str
    path: str
    job: JobDef

    @property
    def job_dir(self) -> str:
        return StateDir(default_state_dir(self.job.directory), self.name).job_dir


class AddError(Exception):
    """A job sent over HTTP cannot be stored; `status` is the HTTP code that says why."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


class Catalog:
    """The served jobs, read again when their files change (parsed once per version)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = [os.path.abspath(p) for p in paths]
        self.folders = [p for p in self.paths if os.path.isdir(p)]
        self._cache: dict[str, tuple[tuple[int, int], JobDef | None]] = {}
        self.problems: dict[str, list[str]] = {}  # files that do not load, and why

    def _files(self) -> list[str]:
        files: list[str] = []
        for p in self.paths:
            if os.path.isdir(p):
                try:
                    names = sorted(os.listdir(p))
                except OSError:
                    continue
                files += [os.path.join(p, n) for n in names
                          if n.endswith((".yaml", ".yml")) and not n.startswith(".")]
            else:
                files.append(p)
        return files

    def _load(self, path: str) -> JobDef | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            job: JobDef | None = load_job(path)
            self.problems.pop(path, None)
        except JobFileError as e:
            job = None
            self.problems[path] = [str(p) for p in e.problems]
        except OSError as e:
            job = None
            self.problems[path] = [f"{path}: {e.strerror}"]
        self._cache[path] = (key, job)
        return job

    def jobs(self) -> list[ServedJob]:
        """Every served job that loads, by name (the first file of a name wins)."""
        seen: dict[str, ServedJob] = {}
        for path in self._files():
            job = self._load(path)
            if job is not None and job.name not in seen:
                seen[job.name] = ServedJob(job.name, job.path, job)
        return list(seen.values())

    def job(self, name: str) -> ServedJob | None:
        return next((j for j in self.jobs() if j.name == name), None)

    def add(self, text: bytes) -> ServedJob:
        """Validate a job file sent over HTTP and store it in the first folder as
        `<config.name>.yaml`; AddError if it cannot be."""
        if not self.folders:
            raise AddError(403, "no folder is served: new jobs cannot be stored")
        if len(text) > MAX_JOB_FILE:
            raise AddError(413, f"a job file may hold at most {MAX_JOB_FILE} bytes")
        folder = self.folders[0]
        staging = os.path.join(folder, f".upload-{secrets.token_hex(8)}.yaml")
        try:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(text)
        except OSError as e:
            raise AddError(409, f"cannot store the job: {e.strerror}") from None
        try:
            try:
                job = load_job(staging)
            except JobFileError as e:
                # Say where the problem is in what was sent, not in a file the sender never saw.
                problems = [str(p).replace(staging, "request") for p in e.problems]
                raise AddError(422, f"{len(problems)} problem(s) in the job file", problems) from None
            if not NAME.fullmatch(job.name):
                raise AddError(422, "request:1:1: config.name must be letters, digits, '_', '-' or '.' "
                                    "(at most 128, not starting with '.' or '-') to name a file",
                               [f"request:1:1: config.name {job.name!r} cannot name a file"])
            if self.job(job.name) is not None:
                raise AddError(409, f"a job named {job.name!r} is served already")
            target = os.path.join(folder, job.name + ".yaml")
            try:
                os.link(staging, target)  # never replaces a file that is there
            except FileExistsError:
                raise AddError(409, f"{os.path.basename(target)} exists already in the served folder") from None
            except OSError as e:
                raise AddError(409, f"cannot store the job: {e.strerror}") from None
        finally:
            os.unlink(staging)
        added = self.job(job.name)
        if added is None:
            raise AddError(409, f"the job {job.name!r} was stored but does not load")
        return added
