"""Subflows with real processes: a job inside a job, its tasks named `<subflow>/<task>`
everywhere, under the run's limit, parameters passed down, acted on one task or whole,
resumed, and every mistake a located error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import JobFileError, load_job

from .conftest import ROOT, alive, await_for, cli, wait_for, write
from .test_detach import detach


def checkpoint(folder: Path, job: str = "job") -> dict:
    return json.loads((folder / ".jobflow" / job / "checkpoint.json").read_text())


def states(folder: Path, job: str = "job") -> dict[str, str]:
    return {n: t["state"] for n, t in checkpoint(folder, job)["tasks"].items()}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "jobdefs", tmp_path / "jobdefs"))


INNER = ["validate-schema", "validate-quality", "report/summary"]
NAMES = ["extract", *[f"validation/{n}" for n in INNER], *[f"strict-validation/{n}" for n in INNER], "load"]


def test_the_example_runs_nested_three_levels_and_twice_with_other_parameters(examples: Path) -> None:
    r = cli("subflows.yaml", "--headless", cwd=examples)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validation/validate-quality | quality score 95 (at least 90 wanted)" in r.stdout
    assert "strict-validation/validate-quality | quality score 95 (at least 95 wanted)" in r.stdout
    assert "validation/report/summary | validation report: minimum 90" in r.stdout  # a third level
    assert "extract | extracted 3 rows in eu-west" in r.stdout
    assert list(checkpoint(examples, "subflows")["tasks"]) == NAMES
    status = cli("status", "subflows.yaml", cwd=examples).stdout
    assert all(n in status for n in NAMES)
    logs = cli("logs", "subflows.yaml", "strict-validation/validate-quality", cwd=examples)
    assert logs.returncode == 0 and "at least 95 wanted" in logs.stdout
    shown = cli("validate", "subflows.yaml", cwd=examples).stdout
    assert "8 tasks" in shown and "strict-validation/report/summary" in shown
    graph = cli("graph", "subflows.yaml", cwd=examples).stdout
    assert "validation/validate-schema" in graph and "load" in graph


def test_the_flow_example_passes_outputs_into_out_of_and_inside_a_subflow(examples: Path) -> None:
    import subprocess

    r = subprocess.run([sys.executable, str(examples / "subflow_flow.py")], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, cwd=examples, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "load | loading 3 rows, validation score 95" in r.stdout
    assert "validation/validate_schema -> succeeded" in r.stdout


def test_parameters_pass_down_over_the_run_s(tmp_path: Path) -> None:
    write(tmp_path / "sub.yaml", """
        tasks:
          show: {command: 'echo "sub sees $JOBFLOW_PARAM_LEVEL and $JOBFLOW_PARAM_DAY"'}
    """)
    write(tmp_path / "job.yaml", """
        tasks:
          top: {command: 'echo "top sees $JOBFLOW_PARAM_LEVEL"'}
          sub: {job: sub.yaml, parameters: {level: 3}}
    """)
    r = cli("job.yaml", "-p", "level=1", "-p", "day=mon", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "top | top sees 1" in r.stdout and "sub/show | sub sees 3 and mon" in r.stdout


def test_the_run_s_limit_covers_inner_tasks_and_what_follows_waits_for_all(tmp_path: Path) -> None:
    stamp = 'python3 -c "import time; print(time.time())"'
    write(tmp_path / "sub.yaml", "tasks:\n" + "".join(
        f"  s{i}: {{command: '{stamp} > {tmp_path}/s{i}.start; sleep 0.2; {stamp} > {tmp_path}/s{i}.end'}}\n"
        for i in range(3)))
    write(tmp_path / "job.yaml", f"""
        config: {{max_concurrency: 1}}
        tasks:
          sub: {{job: sub.yaml}}
          after: {{command: '{stamp} > {tmp_path}/after.start', dependencies: [sub]}}
    """)
    assert cli("job.yaml", cwd=tmp_path).returncode == 0
    spans = sorted((float((tmp_path / f"s{i}.start").read_text()), float((tmp_path / f"s{i}.end").read_text()))
                   for i in range(3))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
    assert float((tmp_path / "after.start").read_text()) >= max(end for _, end in spans)


SUB = """
    tasks:
      prepare: {{command: 'echo prepared'}}
      gate: {{command: 'test -e {tmp}/open && echo gate open', dependencies: [prepare]}}
      other: {{command: 'echo other', dependencies: [prepare]}}
"""
MAIN = """
    tasks:
      first: {command: 'echo first'}
      checks: {job: sub.yaml, dependencies: [first]}
      last: {command: 'echo last', dependencies: [checks]}
"""


async def test_retry_and_restart_one_inner_task_or_the_whole_subflow(tmp_path: Path) -> None:
    write(tmp_path / "sub.yaml", SUB.format(tmp=tmp_path))
    s = Scheduler(load_job(str(write(tmp_path / "job.yaml", MAIN))), state_dir=str(tmp_path / "state"))
    await s.start()
    try:
        await await_for(lambda: s.tasks["last"].state == "blocked", 30, "the gate to fail")
        assert s.tasks["checks/other"].state == "succeeded"
        assert s.retry("checks") is True  # the subflow: its failed task, and what that blocked
        await await_for(lambda: s.tasks["checks/gate"].state == "failed" and s.tasks["checks/gate"].attempts == 2)
        (tmp_path / "open").touch()
        assert s.retry("checks/gate") is True  # one inner task
        await await_for(lambda: s.tasks["last"].state == "succeeded", 30, "the run to finish")
        assert s.tasks["checks/other"].attempts == 1
        await s.restart("checks")  # the whole subflow and what follows it, not what it needs
        await await_for(lambda: s.tasks["last"].attempts == 2 and s.tasks["last"].state == "succeeded", 30)
        assert [s.tasks[f"checks/{n}"].attempts for n in ("prepare", "gate", "other")] == [2, 4, 2]
        assert s.tasks["first"].attempts == 1
        await s.restart("checks/other")  # one inner task and what follows it
        await await_for(lambda: s.tasks["last"].attempts == 3 and s.tasks["last"].state == "succeeded", 30)
        assert s.tasks["checks/prepare"].attempts == 2 and s.tasks["checks/other"].attempts == 3
    finally:
        await s.shutdown()
        await s.close()


def test_from_the_shell_on_a_live_run_and_on_resume(tmp_path: Path) -> None:
    write(tmp_path / "sub.yaml", SUB.format(tmp=tmp_path))
    write(tmp_path / "job.yaml", MAIN + f"      waits: {{command: 'while [ ! -e {tmp_path}/end ]; do sleep 0.05; done'}}\n")
    pid = detach(tmp_path)
    try:
        wait_for(lambda: states(tmp_path).get("last") == "blocked", 30, "the gate to fail")
        (tmp_path / "open").touch()
        r = cli("retry", "job.yaml", "checks", cwd=tmp_path)  # the whole subflow, by its name
        assert r.returncode == 0 and "checks: failed -> " in r.stdout, r.stdout + r.stderr
        wait_for(lambda: states(tmp_path)["last"] == "succeeded", 30, "the retried subflow and what follows")
        r = cli("abort", "job.yaml", "checks", cwd=tmp_path)
        assert r.returncode == 1 and "it is succeeded" in r.stderr
        assert cli("stop", "job.yaml", cwd=tmp_path, timeout=60).returncode == 0  # `waits` ends aborted
        assert states(tmp_path)["waits"] == "aborted"
    finally:
        (tmp_path / "end").touch()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    r = cli("restart", "job.yaml", "checks", "--follow", cwd=tmp_path, timeout=60)  # no live run: resumed
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checks/gate | gate open" in r.stdout and "last | last" in r.stdout and "first |" not in r.stdout
    done = checkpoint(tmp_path)["tasks"]
    assert done["checks/prepare"]["attempts"] == 2 and done["first"]["attempts"] == 1
    assert {t["state"] for t in done.values()} == {"succeeded"}


def test_a_changed_sub_job_reruns_what_changed_on_resume(tmp_path: Path) -> None:
    write(tmp_path / "sub.yaml", SUB.format(tmp=tmp_path))
    write(tmp_path / "job.yaml", MAIN.replace("'echo last'", f"'test -e {tmp_path}/last-ok && echo last'"))
    (tmp_path / "open").touch()
    assert cli("job.yaml", cwd=tmp_path).returncode == 1  # `last` fails: the run is to be resumed
    write(tmp_path / "sub.yaml", SUB.format(tmp=tmp_path).replace("echo other", "echo other, changed"))
    (tmp_path / "last-ok").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    assert "checks/other | other, changed" in r.stdout and "last | last" in r.stdout
    assert "checks/gate ->" not in r.stdout and "first ->" not in r.stdout


def test_only_a_subflow_runs_it_and_what_it_needs(tmp_path: Path) -> None:
    write(tmp_path / "sub.yaml", SUB.format(tmp=tmp_path))
    write(tmp_path / "job.yaml", MAIN)
    (tmp_path / "open").touch()
    r = cli("job.yaml", "--only", "checks", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert states(tmp_path) == {"first": "succeeded", "checks/prepare": "succeeded", "checks/gate": "succeeded",
                                "checks/other": "succeeded", "last": "pending"}


def test_cycles_through_subflow_files_are_located_errors_and_nothing_runs(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          start: {command: 'touch started'}
          inner: {job: sub/inner.yaml, dependencies: [start]}
    """)
    write(tmp_path / "sub" / "inner.yaml", """
        tasks:
          a: {command: 'true'}
          loop: {job: ../job.yaml}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = next(x for x in r.stderr.splitlines() if "subflow cycle" in x)
    assert line.startswith(f"{tmp_path}/sub/inner.yaml:3:15: subflow cycle: ")
    assert line.count("job.yaml") == 2 and "inner.yaml" in line
    assert not (tmp_path / "started").exists() and not (tmp_path / ".jobflow").exists()
    assert cli("validate", "job.yaml", cwd=tmp_path).returncode == 2


def test_subflow_mistakes_are_located(tmp_path: Path) -> None:
    write(tmp_path / "ok.yaml", "tasks:\n  a: {command: 'true'}\n")
    write(tmp_path / "job.yaml", """
        tasks:
          gone: {job: missing.yaml}
          timed: {job: ok.yaml, timeout: 5}
          listy: {job: ok.yaml, parameters: {x: [1, 2]}}
          clash: {job: ok.yaml}
          clash/a: {command: 'true'}
    """)
    with pytest.raises(JobFileError) as e:
        load_job(str(tmp_path / "job.yaml"))
    said = str(e.value)
    assert "job.yaml:2:15: cannot read the subflow's job file" in said
    assert "job.yaml:3:25: 'timeout' does not apply to a subflow" in said
    assert "job.yaml:4:41: parameter 'x' must be a string or a number" in said
    assert "job.yaml:6:3: two tasks are named 'clash/a'" in said


def test_over_http_a_subflow_is_acted_on_by_name_and_its_tasks_url_encoded(tmp_path: Path) -> None:
    from .served import Served

    jobs = tmp_path / "jobs"
    write(jobs / "sub.yaml", SUB.format(tmp=tmp_path))
    write(jobs / "job.yaml", MAIN + f"      waits: {{command: 'while [ ! -e {tmp_path}/end ]; do sleep 0.05; done'}}\n")
    served = Served(tmp_path, jobs)
    try:
        run = served.start("job")
        wait_for(lambda: served.states(run).get("last") == "blocked", 30, "the gate to fail")
        (tmp_path / "open").touch()
        r = served.post(f"/api/runs/{run}/tasks/checks/retry")
        assert r.json().get("task") == "checks" and r.json()["before"] == "failed", r
        wait_for(lambda: served.states(run).get("last") == "succeeded", 30, "the subflow retried")
        log = served.get(f"/api/runs/{run}/tasks/checks%2Fgate/logs")
        assert log.body == b"gate open\n"
        assert served.get(f"/api/runs/{run}/tasks/checks/logs", check=False).status == 404  # a subflow has no log
    finally:
        (tmp_path / "end").touch()
        served.close()


def test_a_task_named_like_a_nested_subflow_is_a_located_error(tmp_path: Path) -> None:
    write(tmp_path / "inner.yaml", "tasks:\n  x: {command: 'true'}\n")
    write(tmp_path / "sub.yaml", "tasks:\n  inner: {job: inner.yaml}\n")
    write(tmp_path / "job.yaml", """
        tasks:
          validate: {job: sub.yaml}
          validate/inner: {command: 'true'}
    """)
    with pytest.raises(JobFileError) as e:
        load_job(str(tmp_path / "job.yaml"))
    assert "job.yaml:3:3: 'validate/inner' names a task and a subflow" in str(e.value)


def test_two_task_classes_of_one_name_in_a_job_and_its_subflow_are_refused(tmp_path: Path) -> None:
    cls = "from jobflow_tui import Task, task\n\n@task\nclass Check(Task):\n    def run(self):\n        print('{}')\n"
    write(tmp_path / "tasks" / "mine.py", cls.format("main check"))
    write(tmp_path / "sub" / "tasks" / "theirs.py", cls.format("sub check"))
    write(tmp_path / "sub" / "sub.yaml", "tasks:\n  check: {task: Check}\n")
    write(tmp_path / "job.yaml", "tasks:\n  mine: {task: Check}\n  other: {job: sub/sub.yaml}\n")
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "task class 'Check' is defined here and in" in r.stderr, r.stderr
    assert "main check" not in r.stdout and "sub check" not in r.stdout
