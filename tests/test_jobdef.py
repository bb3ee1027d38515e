"""Job files: merging, path resolution, and a located message for every kind of mistake."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobflow_tui.jobdef import JobFileError, load_job

from .conftest import cli, write


def problems(path: Path) -> list[str]:
    with pytest.raises(JobFileError) as e:
        load_job(str(path))
    return [str(p) for p in e.value.problems]


BAD = [
    # (name, job text, expected "LINE:COL: fragment")
    ("yaml syntax", "tasks:\n  a: {command: echo\n", "3:1: YAML syntax error"),
    ("unknown top key", "taks:\n  a: {command: echo}\n", "1:1: unknown top-level key 'taks'; did you mean 'tasks'?"),
    ("unknown task key", "tasks:\n  a:\n    comand: echo\n", "3:5: unknown task key 'comand'; did you mean 'command'?"),
    ("wrong type", "tasks:\n  a:\n    command: echo\n    max_attempts: three\n", "4:19: 'max_attempts' must be a whole number, not a string"),
    ("duplicate key", "tasks:\n  a: {command: echo 1}\n  a: {command: echo 2}\n", "3:3: duplicate key 'a' (first defined at line 2)"),
    ("unknown dependency", "tasks:\n  a: {command: echo}\n  b:\n    command: echo\n    dependencies: [a, c]\n", "5:23: task 'b' depends on unknown task 'c'"),
    ("cycle", "tasks:\n  a: {command: echo, dependencies: [c]}\n  b: {command: echo, dependencies: [a]}\n  c: {command: echo, dependencies: [b]}\n",
     "dependency cycle: a -> c -> b -> a"),
    ("empty file", "", "1:1: the file is empty"),
    ("not a mapping", "- a\n- b\n", "1:1: a job file must be a mapping with a 'tasks' key, not a list"),
    ("missing include", "include: [nothere.yaml]\ntasks:\n  a: {command: echo}\n", "1:11: cannot read include file"),
    ("neither command nor task", "tasks:\n  a:\n    timeout: 3\n", "2:3: task 'a' needs a 'command'"),
    ("both command and task", "tasks:\n  a:\n    command: echo\n    task: Foo\n", "4:5: task 'a' has both 'command' and 'task'"),
    ("bad env name", "tasks:\n  a:\n    command: echo\n    env: {1BAD: x}\n", "4:11: '1BAD' is not a valid environment variable name"),
    ("negative timeout", "tasks:\n  a: {command: echo, timeout: -1}\n", "2:31: 'timeout' must be more than 0"),
    ("no tasks", "config: {name: x}\n", "1:1: the job has no 'tasks' mapping"),
    ("empty command", "tasks:\n  a: {command: ''}\n", "2:16: 'command' must be a non-empty string"),
    ("parameters on a command", "tasks:\n  a:\n    command: echo\n    parameters: {x: 1}\n", "4:5: 'parameters' apply to Python tasks"),
    ("tab indentation", "tasks:\n\ta: {command: echo}\n", "YAML syntax error"),
    ("null top-level key", "&anchored: 1\ntasks:\n  a: {command: echo}\n", "1:1: unknown top-level key 'None'"),
]


@pytest.mark.parametrize("name,text,expected", BAD, ids=[b[0] for b in BAD])
def test_each_mistake_is_located(tmp_path: Path, name: str, text: str, expected: str) -> None:
    job = write(tmp_path / "job.yaml", text)
    found = problems(job)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(job) + ":") or p.startswith("job.yaml:") or "job.yaml:" in p for p in found), found


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", """
        config: {max_concurency: 2}
        tasks:
          a: {command: echo, timeout: nope}
          b: {command: echo, dependencies: [zzz]}
    """)
    found = problems(job)
    assert len(found) == 3, found
    assert [p.split(":")[1] for p in found] == ["1", "3", "4"]


def test_include_cycle_names_the_chain(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: [b.yaml]\ntasks:\n  x: {command: echo}\n")
    write(tmp_path / "b.yaml", "include: [a.yaml]\n")
    found = problems(tmp_path / "a.yaml")
    assert any("include cycle" in p and "a.yaml -> " in p and "b.yaml" in p for p in found), found


def test_error_in_included_file_points_into_that_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "tasks:\n  x:\n    command: echo\n    retries: 3\n")
    job = write(tmp_path / "job.yaml", "include: [base.yaml]\n")
    found = problems(job)
    assert any("base.yaml:4:5: unknown task key 'retries'" in p for p in found), found


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    lines.append("tasks:\n  t: {command: echo}")
    job = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    t0 = time.monotonic()
    found = problems(job)
    assert time.monotonic() - t0 < 5
    assert any("expands to more than" in p for p in found), found


def test_include_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    write(tmp_path / "defs" / "template.yaml", """
        config: {name: template, env: {A: "1", B: "2"}}
        tasks:
          build:
            command: make
            env: {X: "1"}
            dependencies: [fetch]
          fetch: {command: "curl x"}
    """)
    job = write(tmp_path / "job.yaml", """
        include: [defs/template.yaml]
        config: {name: final, env: {B: "3"}}
        tasks:
          build:
            env: {Y: "2"}
            dependencies: []
    """)
    j = load_job(str(job))
    assert j.name == "final"
    build = j.tasks["build"]
    assert build.command == "make"
    assert build.env == {"A": "1", "B": "3", "X": "1", "Y": "2"}
    assert build.dependencies == []  # lists are replaced whole, not merged


def test_paths_resolve_against_the_job_file_not_the_caller(tmp_path: Path, monkeypatch) -> None:
    job = write(tmp_path / "jobs" / "job.yaml", """
        config: {cwd: ./work}
        tasks:
          a: {command: pwd}
          b: {command: pwd, cwd: ../other}
    """)
    monkeypatch.chdir("/")
    j = load_job(str(job))
    assert j.tasks["a"].cwd == str(tmp_path / "jobs" / "work")
    assert j.tasks["b"].cwd == str(tmp_path / "other")


def test_order_is_dependency_order_with_ties_in_file_order(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", """
        tasks:
          z_last: {command: echo, depends_on: [m]}
          b: {command: echo}
          m: {command: echo, dependencies: [b]}
          a: {command: echo}
    """)
    assert load_job(str(job)).order() == ["b", "m", "z_last", "a"]


def test_flowmancer_keys_are_accepted_with_a_note(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", """
        version: 0.1
        config:
          name: my-flowmancer-job
          synchro_interval_seconds: 0.5
        loggers:
          file: {logger: FileLogger}
        checkpointer: {checkpointer: FileCheckpointer}
        tasks:
          a: {command: echo}
    """)
    j = load_job(str(job))
    assert j.name == "my-flowmancer-job"
    assert [(s.name, s.cls) for s in j.loggers] == [("file", "FileLogger")]  # loggers are used
    assert any("checkpointer" in n and "not used" in n for n in j.notes)
    assert any("synchro_interval_seconds" in n for n in j.notes)


def test_cli_reports_problems_with_exit_2_and_runs_nothing(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'touch ran', dependencies: [nope]}\n")
    r = cli(str(job), "--headless", cwd=tmp_path)
    assert r.returncode == 2
    assert f"{job}:2:" in r.stderr and "unknown task 'nope'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / ".jobflow").exists()


def test_cli_missing_job_file(tmp_path: Path) -> None:
    r = cli(str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert "nope.yaml:1:1: cannot read job file" in r.stderr
    assert "Traceback" not in r.stderr


def test_keys_yaml_allows_but_json_cannot_sort_still_load(tmp_path: Path) -> None:
    # null, number and boolean keys side by side with text ones (the job's hash and the
    # tasks' fingerprints must not trip over them)
    job = load_job(str(write(tmp_path / "job.yaml", """
        tasks:
          a:
            task: Anything
            parameters: {2: two, x: ex, null: nothing, true: yes}
    """)))
    assert job.hash and job.tasks["a"].fingerprint()
    same = load_job(str(write(tmp_path / "again.yaml", (tmp_path / "job.yaml").read_text())))
    assert same.tasks["a"].fingerprint() == job.tasks["a"].fingerprint()
