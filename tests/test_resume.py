"""Resume and re-adoption, driven through the real CLI: a runner that fails, that is
SIGKILLed mid-task, or that is interrupted must never lose work or run a step twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import alive, cli, wait_for, write


def checkpoint(tmp_path: Path, name: str = "job") -> dict:
    return json.loads((tmp_path / ".jobflow" / name / "checkpoint.json").read_text())


def start_runner(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobflow_tui", str(tmp_path / "job.yaml"), "--headless", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def kill_runner_once_started(tmp_path: Path) -> None:
    """Start a headless runner, SIGKILL it as soon as its task wrote `starts`."""
    runner = start_runner(tmp_path)
    wait_for(lambda: (tmp_path / "starts").exists(), 20, "the task to start")
    runner.send_signal(signal.SIGKILL)
    runner.communicate()


def records(tmp_path: Path, task: str) -> list[str]:
    """What the first attempt of `task` recorded in its run's journal, e.g. ["pid 12", "exit 0"]."""
    journal = next((tmp_path / ".jobflow" / "job" / "runs").glob("*/attempts.status")).read_text()
    return [r.rstrip("\n").split(" ", 1)[1] for r in journal.split("\x1e") if r.startswith(f"{task}.1 ")]


def test_resume_after_failure_keeps_what_succeeded(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          extract: {{command: 'echo run >> {tmp_path}/extract.count'}}
          load: {{command: 'test -f {tmp_path}/ready', dependencies: [extract]}}
          report: {{command: 'echo done', dependencies: [load]}}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert {n: t["state"] for n, t in checkpoint(tmp_path)["tasks"].items()} == {
        "extract": "succeeded", "load": "failed", "report": "blocked"}
    (tmp_path / "ready").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "extract.count").read_text() == "run\n"  # not run again
    assert "report | done" in r.stdout
    cp = checkpoint(tmp_path)
    assert all(t["state"] == "succeeded" for t in cp["tasks"].values())
    assert len(cp["tasks"]["load"]["logs"]) == 2  # both attempts' logs are kept


def test_resume_reruns_changed_tasks_and_their_downstream(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    text = f"""
        tasks:
          a: {{command: 'echo a >> {tmp_path}/a.count'}}
          b: {{command: 'echo b >> {tmp_path}/b.count', dependencies: [a]}}
          c: {{command: 'echo c >> {tmp_path}/c.count'}}
          gate: {{command: 'test -f {tmp_path}/ready', dependencies: [b, c]}}
    """
    write(job, text)
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    write(job, text.replace("echo a >>", "echo a; echo a >>"))
    (tmp_path / "ready").touch()
    r = cli("job.yaml", "-r", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "changed since the last run" in r.stderr
    assert (tmp_path / "a.count").read_text().count("a") == 2
    assert (tmp_path / "b.count").read_text().count("b") == 2
    assert (tmp_path / "c.count").read_text().count("c") == 1


SLOW = "echo start >> {tmp}/starts; for i in $(seq 1 25); do echo line $i; sleep 0.1; done; echo out=fine >> $JOBFLOW_OUTPUT"


def test_sigkilled_runner_the_running_task_is_adopted_not_rerun(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          slow: {{command: '{SLOW.format(tmp=tmp_path)}'}}
          after: {{command: 'echo after ran', dependencies: [slow]}}
    """)
    kill_runner_once_started(tmp_path)
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "adopted running process" in r.stdout
    assert "after | after ran" in r.stdout
    assert (tmp_path / "starts").read_text() == "start\n"  # exactly one start, ever
    cp = checkpoint(tmp_path)
    log = (tmp_path / ".jobflow" / "job" / cp["tasks"]["slow"]["logs"][-1]).read_text()
    assert log.splitlines() == [f"line {i}" for i in range(1, 26)]  # complete on disk
    assert cp["tasks"]["slow"]["outputs"] == {"out": "fine"}
    assert cp["tasks"]["slow"]["attempts"] == 1


def test_sigkilled_runner_a_running_python_task_is_adopted_not_rerun(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "slow.py", f"""
        import time
        from jobflow_tui import Task, task

        @task
        class Slow(Task):
            def run(self):
                with open("{tmp_path}/starts", "a") as f:
                    f.write("start\\n")
                for i in range(1, 16):
                    print(f"line {{i}}", flush=True)
                    time.sleep(0.1)
                return {{"out": "fine"}}
    """)
    write(tmp_path / "job.yaml", """
        tasks:
          slow: {task: Slow}
          after: {command: 'echo after ran', dependencies: [slow]}
    """)
    kill_runner_once_started(tmp_path)  # at once: before the runner noted the process's start time
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "after | after ran" in r.stdout
    assert (tmp_path / "starts").read_text() == "start\n"  # exactly one start, ever
    cp = checkpoint(tmp_path)
    assert cp["tasks"]["slow"]["outputs"] == {"out": "fine"} and cp["tasks"]["slow"]["attempts"] == 1


def test_a_changed_task_still_running_is_adopted_then_run_with_its_new_definition(tmp_path: Path) -> None:
    job = "tasks:\n  t: {{command: '{cmd}'}}\n  after: {{command: 'echo after >> {tmp}/order', dependencies: [t]}}\n"
    v1 = f"echo start >> {tmp_path}/starts; echo v1 start >> {tmp_path}/order; sleep 1.5; echo v1 end >> {tmp_path}/order"
    write(tmp_path / "job.yaml", job.format(cmd=v1, tmp=tmp_path))
    kill_runner_once_started(tmp_path)
    write(tmp_path / "job.yaml", job.format(cmd=f"echo v2 >> {tmp_path}/order", tmp=tmp_path))
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "adopted running process" in r.stdout and "changed since the last run" in r.stdout
    # Never two at once, the new definition after the old attempt, and downstream after that.
    assert (tmp_path / "order").read_text().splitlines() == ["v1 start", "v1 end", "v2", "after"]
    assert checkpoint(tmp_path)["tasks"]["t"]["attempts"] == 2


def test_task_that_finished_while_no_runner_was_alive_is_not_rerun(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          quick: {{command: 'echo start >> {tmp_path}/starts; sleep 1'}}
    """)
    kill_runner_once_started(tmp_path)
    wait_for(lambda: "exit 0" in records(tmp_path, "quick"), 20, "the orphaned task to record its exit")
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "starts").read_text() == "start\n"


@pytest.mark.parametrize("command", [
    "exec sh -c 'echo start >> {tmp}/starts; sleep 1'",
    "trap 'echo bye' EXIT; echo start >> {tmp}/starts; sleep 1",
])
def test_a_command_that_execs_or_traps_still_records_its_status(tmp_path: Path, command: str) -> None:
    quoted = json.dumps(command.format(tmp=tmp_path))
    write(tmp_path / "job.yaml", f"tasks:\n  quick: {{command: {quoted}}}\n")
    kill_runner_once_started(tmp_path)
    wait_for(lambda: "exit 0" in records(tmp_path, "quick"), 20, "the orphaned task to record its exit")
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "starts").read_text() == "start\n"  # it succeeded while no runner lived: kept


def test_task_that_died_without_a_status_runs_again_on_resume(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          t: {{command: 'echo start >> {tmp_path}/starts; test -f {tmp_path}/second || sleep 300'}}
    """)
    kill_runner_once_started(tmp_path)
    pid = int(records(tmp_path, "t")[0].split()[1])
    os.killpg(pid, signal.SIGKILL)  # the whole attempt dies with no exit recorded
    wait_for(lambda: not alive(pid), 10)
    (tmp_path / "second").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "starts").read_text() == "start\nstart\n"


def test_fresh_run_is_refused_while_the_previous_attempt_lives(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  t: {{command: 'echo start >> {tmp_path}/starts; sleep 300'}}\n")
    for _ in range(3):  # killed at once, the checkpoint may not show the start yet: the files do
        (tmp_path / "starts").unlink(missing_ok=True)
        kill_runner_once_started(tmp_path)
        r = cli("job.yaml", cwd=tmp_path, timeout=30)
        assert r.returncode == 2, r.stdout
        assert "still running" in r.stderr and "--resume" in r.stderr
        assert (tmp_path / "starts").read_text() == "start\n"
        os.killpg(int(records(tmp_path, "t")[0].split()[1]), signal.SIGKILL)
        shutil.rmtree(tmp_path / ".jobflow")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  t: {command: 'true'}\n")
    write(tmp_path / ".jobflow" / "job" / "checkpoint.json", '{"job": {"name": "job"}, "tas')
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 2
    assert "checkpoint is not valid JSON" in r.stderr and "Traceback" not in r.stderr
    write(tmp_path / ".jobflow" / "job" / "checkpoint.json", '{"job": {"name": "other"}, "tasks": {}}')
    r = cli("job.yaml", "--resume", cwd=tmp_path)
    assert r.returncode == 2 and "belongs to job 'other'" in r.stderr


def _interrupt(tmp_path: Path, sig: int, code: int) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          long: {{command: 'sleep 300 & echo $! > {tmp_path}/child; echo up; wait'}}
          next: {{command: 'echo never', dependencies: [long]}}
    """)
    runner = start_runner(tmp_path)
    wait_for(lambda: (tmp_path / "child").exists() and (tmp_path / "child").read_text().strip(), 20)
    child = int((tmp_path / "child").read_text())
    runner.send_signal(sig)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == code, err
    assert not alive(child)
    cp = checkpoint(tmp_path)
    assert cp["tasks"]["long"]["state"] == "aborted"
    assert cp["tasks"]["next"]["state"] == "blocked"
    assert "long -> aborted" in out


def test_sigint_stops_gracefully_with_exit_130(tmp_path: Path) -> None:
    _interrupt(tmp_path, signal.SIGINT, 130)


def test_sigterm_stops_gracefully_with_exit_143(tmp_path: Path) -> None:
    _interrupt(tmp_path, signal.SIGTERM, 143)


def test_sighup_stops_gracefully(tmp_path: Path) -> None:
    _interrupt(tmp_path, signal.SIGHUP, 129)


def test_runner_killed_at_once_still_leaves_a_checkpoint_to_resume(tmp_path: Path) -> None:
    # Killed as soon as the step has started: the step must be adopted, not run again.
    write(tmp_path / "job.yaml", f"tasks:\n  t: {{command: 'echo start >> {tmp_path}/starts; sleep 1'}}\n")
    for _ in range(3):
        (tmp_path / "starts").unlink(missing_ok=True)
        kill_runner_once_started(tmp_path)
        r = cli("job.yaml", "--resume", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / "starts").read_text() == "start\n"
        (tmp_path / ".jobflow").rename(tmp_path / f"old-{os.urandom(3).hex()}")


def test_attempt_records_in_the_older_per_attempt_files_are_still_read(tmp_path: Path) -> None:
    # Run folders from before the journal: `<task>.<n>.status` beside each log.
    from jobflow_tui.engine.process import AttemptFiles

    run_dir = tmp_path / "runs" / "old"
    write(run_dir / "t.1.status", 'pid 4242\nresult {"outputs": {"n": 1}, "shared_dict": {}}\nexit 3\n')
    files = AttemptFiles(str(run_dir / "t.1"))
    assert (files.read_pid(), files.read_status()) == (4242, 3)
    assert files.read_result() == {"outputs": {"n": 1}, "shared_dict": {}}
    assert AttemptFiles(str(run_dir / "t.2")).read_status() is None
