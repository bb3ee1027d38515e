"""Commands on a Dask cluster (`dask:local`: a LocalCluster of worker processes started for
the run): states, outputs between a remote and a local task, every line of a flood in the
log, abort and timeout ending the whole tree on the worker, and a worker killed mid-task
failing the attempt as lost, its retry succeeding on another worker."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobflow_tui.jobdef import JobFileError, load_job

from .conftest import alive, cli, wait_for, write
from .test_detach import checkpoint, detach, states

pytest.importorskip("distributed")


@contextlib.contextmanager
def detached(tmp_path: Path) -> Iterator[int]:
    """job.yaml started by a detached runner: its pid; killed on the way out if still there."""
    pid = detach(tmp_path)
    try:
        yield pid
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_remote_and_local_tasks_pass_outputs_and_every_line_arrives(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        config: {executor: "dask:local"}
        tasks:
          remote:
            command: 'echo "on $JOBFLOW_WORKER"; seq 1 100000; echo "rows=100000" >> "$JOBFLOW_OUTPUT"'
            resources: {SLOTS: 1}
          here:
            command: 'echo "worker: ${JOBFLOW_WORKER:-none}"; cat "$JOBFLOW_UPSTREAM_OUTPUTS"'
            executor: local
            dependencies: [remote]
    """)
    r = cli("job.yaml", cwd=tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "remote | on tcp://127.0.0.1:" in r.stdout
    assert 'here | worker: none' in r.stdout and 'here | {"remote": {"rows": "100000"}}' in r.stdout
    [remote_log] = (tmp_path / ".jobflow" / "job" / "runs").glob("*/remote.1.log")
    lines = remote_log.read_text().splitlines()
    assert lines[1:] == [str(i) for i in range(1, 100001)]  # complete, in order, past the topic's 1,000 events


def test_abort_and_timeout_end_the_whole_tree_on_the_worker(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{executor: "dask:local"}}
        tasks:
          stuck: {{command: 'sleep 300 & echo $! > {tmp_path}/child; echo started; wait', kill_grace: 1}}
          slow: {{command: 'sleep 300 & echo $! > {tmp_path}/slow-child; wait', timeout: 2, kill_grace: 1}}
    """)
    with detached(tmp_path) as pid:
        wait_for(lambda: (tmp_path / "child").exists(), 60, "the task to start on a worker")
        child = int((tmp_path / "child").read_text())
        assert alive(child)
        r = cli("abort", "job.yaml", "stuck", cwd=tmp_path, timeout=60)
        assert r.returncode == 0 and "stuck: running -> aborted" in r.stdout, r.stdout + r.stderr
        wait_for(lambda: not alive(child), 15, "the aborted task's child to end")
        wait_for(lambda: states(tmp_path).get("slow") == "failed", 60, "the timeout")
        assert "timed out after 2s" in checkpoint(tmp_path)["tasks"]["slow"]["reason"]
        wait_for(lambda: not alive(int((tmp_path / "slow-child").read_text())), 15, "the timed-out tree to end")
        wait_for(lambda: not alive(pid), 60, "the run to end")


def test_a_worker_killed_mid_task_fails_the_attempt_as_lost_and_the_retry_succeeds(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{executor: "dask:local"}}
        tasks:
          fragile:
            command: 'if [ -e {tmp_path}/again ]; then echo "second try on $JOBFLOW_WORKER"; else echo $PPID > {tmp_path}/worker; sleep 300; fi'
            max_attempts: 2
            kill_grace: 1
    """)
    with detached(tmp_path) as pid:
        wait_for(lambda: (tmp_path / "worker").exists(), 60, "the task to start on a worker")
        (tmp_path / "again").touch()
        os.kill(int((tmp_path / "worker").read_text()), signal.SIGKILL)  # the Dask worker process running it
        wait_for(lambda: states(tmp_path).get("fragile") == "succeeded", 120, "the retry on another worker")
        wait_for(lambda: not alive(pid), 60, "the run to end")
    task = checkpoint(tmp_path)["tasks"]["fragile"]
    assert task["attempts"] == 2
    run_dir = tmp_path / ".jobflow" / "job" / "runs" / checkpoint(tmp_path)["run_id"]
    assert "second try on tcp://" in (run_dir / "fragile.2.log").read_text()
    trail = (run_dir / "events.jsonl").read_text()
    assert "worker lost while it ran the attempt" in trail  # the first attempt's reason


def test_a_wrong_executor_is_a_located_error(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        config: {executor: "dask//nowhere"}
        tasks:
          a: {command: 'true', executor: remote}
    """)
    with pytest.raises(JobFileError) as e:
        load_job(str(tmp_path / "job.yaml"))
    said = str(e.value)
    assert "job.yaml:1:20: 'config.executor' is 'local', 'dask:local'" in said
    assert "job.yaml:3:34: a task's 'executor' can only be 'local'" in said
    r = cli("job.yaml", "--executor", "nowhere", cwd=tmp_path)
    assert r.returncode == 2


def test_resume_ends_an_attempt_its_dead_runner_left_on_the_cluster_before_running_it_again(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{executor: "dask:local"}}
        tasks:
          long:
            command: 'if [ -e {tmp_path}/second ]; then echo "second run"; exit 0; fi; sleep 300 & echo $! > {tmp_path}/child; wait'
            kill_grace: 1
    """)
    with detached(tmp_path) as pid:
        wait_for(lambda: (tmp_path / "child").exists(), 60, "the task to start on a worker")
        os.kill(pid, signal.SIGKILL)  # the runner dies; the command it started goes on
        child = int((tmp_path / "child").read_text())
        wait_for(lambda: not alive(pid), 10, "the runner to be gone")
        assert alive(child)
    (tmp_path / "second").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not alive(child)  # ended before the task ran again: never two at once
    assert "long | second run" in r.stdout and checkpoint(tmp_path)["tasks"]["long"]["attempts"] == 2


TASKS = '''
import os
from jobflow_tui import Task, task

@task
class Count(Task):
    n: int = 3

    def run(self):
        for i in range(self.n):
            print(f"count {i} on {os.environ.get('JOBFLOW_WORKER')}", flush=True)
        self.shared_dict["seen"] = self.n
        return {"total": self.n, "rows": self.pull_output("make")["rows"]}

@task
class Broken(Task):
    def run(self):
        raise ValueError("no such table")
'''


def test_python_tasks_run_on_workers_with_outputs_and_shared_dict_both_ways(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "counting.py", TASKS)
    write(tmp_path / "job.yaml", """
        config: {executor: "dask:local"}
        tasks:
          make: {command: 'echo rows=7 >> "$JOBFLOW_OUTPUT"'}
          count: {task: Count, parameters: {n: 4}, dependencies: [make]}
          broken: {task: Broken}
          show: {command: 'cat "$JOBFLOW_UPSTREAM_OUTPUTS"', dependencies: [count], executor: local}
    """)
    r = cli("job.yaml", cwd=tmp_path, timeout=180)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "count | count 3 on tcp://127.0.0.1:" in r.stdout
    assert 'show | {"make": {"rows": "7"}, "count": {"total": 4, "rows": "7"}}' in r.stdout
    assert "broken | ValueError: no such table" in r.stdout
    cp = checkpoint(tmp_path)
    assert cp["shared_dict"] == {"seen": 4} and cp["tasks"]["broken"]["state"] == "failed"
    assert cp["tasks"]["count"]["outputs"] == {"total": 4, "rows": "7"}


@pytest.fixture
def cluster(tmp_path: Path):
    """A Dask cluster of its own, as an operator starts one: `dask scheduler`, two `dask worker`s."""
    import json
    import subprocess
    import sys

    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([*dask, "--scheduler-file", str(info), "--port", "0", "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        wait_for(info.exists, 60, "the scheduler to start")
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                           str(info), "--nthreads", "2", "--no-nanny"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        address = json.loads(info.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield "dask://" + address.removeprefix("tcp://")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_on_a_running_cluster_resume_ends_what_a_dead_runner_left_and_a_lost_worker_is_told(
        tmp_path: Path, cluster: str) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{executor: "{cluster}"}}
        tasks:
          long:
            command: 'if [ -e {tmp_path}/second ]; then echo "second run"; exit 0; fi; sleep 300 & echo $! > {tmp_path}/child; echo $PPID > {tmp_path}/worker; wait'
            kill_grace: 1
            max_attempts: 2
    """)
    with detached(tmp_path) as pid:
        wait_for(lambda: (tmp_path / "child").exists(), 60, "the task to start on a worker")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, "the runner to be gone")
        child = int((tmp_path / "child").read_text())
        assert alive(child)  # the cluster outlives the runner, and so does the attempt
    (tmp_path / "second").touch()
    r = cli("job.yaml", "--resume", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not alive(child) and "long | second run" in r.stdout

    # A worker lost under an attempt: Dask gives the task to the other worker, where it refuses to run again.
    (tmp_path / "second").unlink()
    (tmp_path / "child").unlink()
    with detached(tmp_path) as pid:
        wait_for(lambda: (tmp_path / "child").exists(), 60, "the task to start on a worker")
        (tmp_path / "second").touch()
        os.kill(int((tmp_path / "worker").read_text()), signal.SIGKILL)
        wait_for(lambda: not alive(pid), 120, "the run to end")
    task = checkpoint(tmp_path)["tasks"]["long"]
    assert task["state"] == "succeeded" and task["attempts"] == 2
    run_dir = tmp_path / ".jobflow" / "job" / "runs" / checkpoint(tmp_path)["run_id"]
    assert "worker lost while it ran the attempt" in (run_dir / "events.jsonl").read_text()
