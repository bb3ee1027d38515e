"""A run without a terminal: `--detach`, `ps`, the verbs from a shell, `stop`, and `retry`
of a run that is not live any more (a detached runner resumes it)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from jobflow_tui.control import place

from .conftest import alive, cli, wait_for, write


def checkpoint(tmp_path: Path) -> dict:
    return json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())


def states(tmp_path: Path) -> dict[str, str]:
    return {n: t["state"] for n, t in checkpoint(tmp_path)["tasks"].items()}


def gate(tmp_path: Path, name: str) -> str:
    return f"while [ ! -e {tmp_path}/{name} ]; do sleep 0.05; done"


def detach(tmp_path: Path, *args: str) -> int:
    """Start job.yaml detached; the runner's pid."""
    r = cli("job.yaml", "--detach", *args, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started in the background" in r.stdout and "jobflow-tui attach job.yaml" in r.stdout
    return int(r.stdout.split("(pid ")[1].split(")")[0])


def test_detach_ps_verbs_and_stop(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          setup: {{command: 'echo set up'}}
          fails: {{command: 'exit 3', dependencies: [setup]}}
          waits: {{command: '{gate(tmp_path, "never")}', dependencies: [setup]}}
          later: {{command: 'echo later', dependencies: [fails]}}
    """)
    pid = detach(tmp_path)
    try:
        wait_for(lambda: states(tmp_path).get("fails") == "failed" and states(tmp_path)["waits"] == "running", 30,
                 "the run to get going")
        r = cli("ps", "--json", cwd=tmp_path)
        ours = [x for x in json.loads(r.stdout) if x["pid"] == pid]
        assert len(ours) == 1
        run = ours[0]
        assert set(run) == {"job", "path", "run_id", "pid", "kind", "started_at", "counts"}
        assert run["kind"] == "detached" and run["path"] == str(tmp_path / "job.yaml")
        assert run["counts"] == {"succeeded": 1, "failed": 1, "running": 1, "blocked": 1}
        assert "detached" in cli("ps", cwd=tmp_path).stdout

        r = cli("retry", "job.yaml", "waits", cwd=tmp_path)  # running: not retried
        assert r.returncode == 1 and "it is running" in r.stderr
        r = cli("retry", "job.yaml", "nope", cwd=tmp_path)
        assert r.returncode == 2 and "no task named 'nope'" in r.stderr
        r = cli("pause", "job.yaml", cwd=tmp_path)
        assert r.returncode == 0 and "paused" in r.stdout
        r = cli("retry", "job.yaml", "fails", cwd=tmp_path)  # retried, but paused: waits
        assert r.returncode == 0 and "fails: failed -> pending" in r.stdout
        wait_for(lambda: states(tmp_path)["later"] == "pending", 10, "the checkpoint to show the retry")
        r = cli("unpause", "job.yaml", cwd=tmp_path)
        assert r.returncode == 0
        wait_for(lambda: checkpoint(tmp_path)["tasks"]["fails"]["attempts"] == 2, 20, "the retry")

        r = cli("stop", "job.yaml", cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "stopped run" in r.stdout
        assert not alive(pid)
        assert states(tmp_path)["waits"] == "aborted"
        assert not os.path.exists(place.socket_path(str(tmp_path / ".jobflow" / "job")))
        r = cli("stop", "job.yaml", cwd=tmp_path)
        assert r.returncode == 1 and "no live run of job 'job'" in r.stderr
    finally:
        (tmp_path / "never").touch()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_retry_with_no_live_run_resumes_it_detached_and_follows(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          gate: {{command: 'test -e {tmp_path}/ready && echo gate open'}}
          after: {{command: 'echo after the gate', dependencies: [gate]}}
    """)
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    (tmp_path / "ready").touch()
    r = cli("retry", "job.yaml", "gate", "--follow", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed run" in r.stdout and "gate | gate open" in r.stdout and "after | after the gate" in r.stdout
    assert states(tmp_path) == {"gate": "succeeded", "after": "succeeded"}


def test_attach_with_no_live_run_says_where_the_last_run_stands(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'exit 1'}\n")
    r = cli("attach", "job.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "no live run" in r.stderr and "it has not run yet" in r.stderr
    cli("job.yaml", cwd=tmp_path)
    r = cli("attach", "job.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "1 failed" in r.stderr


def test_a_detached_runner_killed_is_recovered_by_resume(tmp_path: Path) -> None:
    """kill -9 of the detached runner: its task goes on, and --resume adopts it (never a
    second start)."""
    write(tmp_path / "job.yaml", f"""
        tasks:
          long: {{command: 'echo started >> {tmp_path}/starts; {gate(tmp_path, "go")}; echo $$ >> {tmp_path}/ends'}}
    """)
    pid = detach(tmp_path)
    wait_for(lambda: (tmp_path / "starts").exists(), 20, "the task to start")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, "the runner to die")
    (tmp_path / "go").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "starts").read_text() == "started\n"
    assert len((tmp_path / "ends").read_text().split()) == 1


def test_detach_refused_when_the_job_is_already_running(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  wait: {{command: '{gate(tmp_path, 'go')}'}}\n")
    pid = detach(tmp_path)
    try:
        r = cli("job.yaml", "--detach", cwd=tmp_path, timeout=60)
        assert r.returncode == 2 and "already being run" in r.stderr
    finally:
        (tmp_path / "go").touch()
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def test_restarting_the_only_running_task_keeps_the_run_going(tmp_path: Path) -> None:
    """Its abort leaves nothing running for a moment: the run must not take that for its end."""
    write(tmp_path / "job.yaml", f"""
        tasks:
          only: {{command: 'echo "attempt $JOBFLOW_ATTEMPT"; {gate(tmp_path, "go")}'}}
    """)
    pid = detach(tmp_path)
    try:
        wait_for(lambda: states(tmp_path).get("only") == "running", 30, "the task to run")
        r = cli("restart", "job.yaml", "only", cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: checkpoint(tmp_path)["tasks"]["only"]["attempts"] == 2
                 and states(tmp_path)["only"] == "running", 30, "the second attempt")
        assert alive(pid)
        (tmp_path / "go").touch()
        wait_for(lambda: not alive(pid), 30, "the run to end")
        assert states(tmp_path) == {"only": "succeeded"}
    finally:
        (tmp_path / "go").touch()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
