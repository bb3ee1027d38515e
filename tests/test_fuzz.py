"""Mutated job files only ever give a JobDef or located problems: never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobflow_tui.jobdef import JobFileError, load_job

from .conftest import cli

SEED = """version: 1
config:
  name: fuzz
  max_concurrency: 2
  env: {A: "1"}
tasks:
  extract:
    command: "echo extract"
    timeout: 10
    max_attempts: 2
    retry_delay: 0.5
  load:
    command: [echo, load]
    dependencies: [extract]
    env: {B: x}
  report:
    depends_on: [load]
    command: "echo report"
"""

PIECES = ["", " ", "\n", ":", "- ", "[", "]", "{", "}", "&a", "*a", "!!int", "'", '"', "\t", "#", "null",
          "-1", "1e999", "tasks", "dependencies", "command", "<<: *a", "\x00", "\ufeff", "é", "%YAML 1.1"]


@st.composite
def mutated(draw) -> str:
    text = SEED
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(PIECES)) if draw(st.booleans()) else draw(st.text(max_size=4))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 12)):]
        else:
            text = text[:pos] + piece + text[pos + len(piece):]
    return text


LOCATED = re.compile(r"^.+:\d+:\d+: .+$")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_validator_never_crashes(tmp_path: Path, text: str) -> None:
    job = tmp_path / "fuzz.yaml"
    job.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_job(str(job))
    except JobFileError as e:
        assert e.problems
        for p in e.problems:
            assert LOCATED.match(str(p).splitlines()[0]), str(p)


def test_cli_on_mutations_exits_0_or_2(tmp_path: Path) -> None:
    # A few mutations through the real CLI: exit code and no traceback.
    samples = [SEED.replace("dependencies: [extract]", "dependencies: [extract"),
               SEED.replace("tasks:", "tasks: 3"), SEED.replace("max_attempts: 2", "max_attempts: []"),
               SEED + "  load:\n    command: dup\n", SEED.replace('"echo extract"', "*nope")]
    for i, text in enumerate(samples):
        job = tmp_path / f"m{i}.yaml"
        job.write_text(text)
        r = cli("validate", str(job))
        assert r.returncode in (0, 2), r.stderr
        assert "Traceback" not in r.stderr
        if r.returncode == 2:
            assert all(LOCATED.match(line) for line in r.stderr.splitlines()[:-1]), r.stderr
