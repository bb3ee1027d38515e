"""The promises under faults: a runner killed at any moment never runs a step twice,
tasks start with the signal dispositions a shell gives, and names or commands too big for
the system are handled before they fail at run time."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import cli, wait_for, write


def _runner(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobflow_tui", str(tmp_path / "job.yaml"), "--headless", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def _ran(tmp_path: Path) -> list[str]:
    path = tmp_path / "ran.txt"
    return path.read_text().split() if path.exists() else []


def test_runner_killed_at_any_moment_never_runs_a_step_twice(tmp_path: Path) -> None:
    """Short tasks, no concurrency limit, the runner SIGKILLed at random moments and resumed
    until the run completes: every task ran exactly once (commands and Python tasks)."""
    (tmp_path / "tasks").mkdir()
    write(tmp_path / "tasks" / "note.py", f"""
        import os
        import time
        from jobflow_tui import Task, task

        @task
        class Note(Task):
            delay: float = 0.0

            def run(self):
                time.sleep(self.delay)
                with open({str(tmp_path / "ran.txt")!r}, "a") as f:
                    f.write(os.environ["JOBFLOW_TASK"] + "\\n")
    """)
    lines = ["config: {max_concurrency: 0}", "tasks:"]
    names = []
    for i in range(160):
        # Endings a few ms apart, so that many tasks end around any moment a runner dies
        # or a resumed one looks at them; a second layer waits on the first.
        name = f"t{i}"
        names.append(name)
        deps = f", dependencies: [t{i - 100}]" if i >= 100 else ""
        delay = 0.2 + (i % 100) * 0.004
        if i % 9 == 4:
            lines.append(f"  {name}: {{task: Note, parameters: {{delay: {delay:.3f}}}{deps}}}")
        else:
            lines.append(f"  {name}: {{command: 'sleep {delay:.3f}; echo $JOBFLOW_TASK >> ran.txt'{deps}}}")
    (tmp_path / "job.yaml").write_text("\n".join(lines) + "\n")
    rng = random.Random(7)
    kills = 0
    checkpoint = tmp_path / ".jobflow" / "job" / "checkpoint.json"
    for attempt in range(60):
        if checkpoint.exists() and json.loads(checkpoint.read_text()).get("completed"):
            break  # killed after the last task ended: --resume would start a new run
        runner = _runner(tmp_path, *(["--resume"] if checkpoint.exists() else []))
        try:
            runner.wait(timeout=rng.uniform(0.1, 0.6 + 0.05 * attempt))
        except subprocess.TimeoutExpired:
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            kills += 1
            continue
        finally:
            runner.stderr.close()
        if runner.returncode == 0:
            break
    else:
        raise AssertionError("the run never completed")
    assert kills >= 3, "the runner was not killed often enough to test anything"
    ran = _ran(tmp_path)
    twice = sorted({n for n in ran if ran.count(n) > 1})
    assert not twice, f"run more than once: {twice}"
    assert sorted(ran) == sorted(names)


def test_an_attempt_that_ends_while_the_runner_is_dead_is_not_run_again(tmp_path: Path) -> None:
    """The window the consistent reading closes: tasks that end right around the moment a
    resumed runner looks at them (many tasks, each ending a few ms after the previous)."""
    tasks = "\n".join(
        f"  t{i}: {{command: 'sleep {0.30 + i * 0.002:.3f}; echo $JOBFLOW_TASK >> ran.txt'}}" for i in range(150)
    )
    (tmp_path / "job.yaml").write_text(f"config: {{max_concurrency: 0}}\ntasks:\n{tasks}\n")
    for _ in range(3):
        (tmp_path / "ran.txt").unlink(missing_ok=True)
        runner = _runner(tmp_path)
        wait_for(lambda: (tmp_path / ".jobflow" / "job" / "checkpoint.json").exists(), 20, "the first checkpoint")
        time.sleep(0.45)  # the fault: the runner dies while the tasks are about to end
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        runner.stderr.close()
        r = cli("job.yaml", "--resume", cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        ran = _ran(tmp_path)
        assert sorted(ran) == sorted(f"t{i}" for i in range(150)), sorted({n for n in ran if ran.count(n) > 1})
        (tmp_path / ".jobflow").rename(tmp_path / f"old-{time.monotonic_ns()}")


# glibc's posix_spawn leaves its two internal signals (32 and 33, unnamed outside glibc,
# which installs its own handlers for them when it needs them) ignored in every child.
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def _sig_masks(status: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in status.splitlines() if line[:6] in ("SigBlk", "SigIgn"))}


def _from_a_careless_parent() -> None:
    # What nohup, cron or a daemon can hand down: signals ignored and blocked.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGWINCH})


def _run_from_a_careless_parent(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobflow_tui", "job.yaml"], cwd=tmp_path, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60, preexec_fn=_from_a_careless_parent,
    )


def test_commands_start_with_default_signals(tmp_path: Path) -> None:
    """SIGPIPE ends a pipeline's writer as in a shell; nothing ignored, nothing blocked,
    whatever the runner itself was started with."""
    write(tmp_path / "job.yaml", """
        tasks:
          endless: {command: 'while :; do echo x; done | head -1', timeout: 10}
          yes_head: {command: 'yes | head -2'}
          masks: {command: 'cat /proc/self/status'}
          argv: {command: [cat, /proc/self/status]}
    """)
    r = _run_from_a_careless_parent(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Broken pipe" not in r.stdout and "I/O error" not in r.stdout
    for task in ("masks", "argv"):
        log = next((tmp_path / ".jobflow" / "job" / "runs").glob(f"*/{task}.1.log")).read_text()
        masks = _sig_masks(log)
        assert masks["SigIgn"] & ~GLIBC_INTERNAL == 0 and masks["SigBlk"] == 0, (task, masks)


def test_python_tasks_start_with_the_signals_of_a_fresh_interpreter(tmp_path: Path) -> None:
    """A Python task's process has an empty signal mask and ignores only what Python itself
    ignores, whatever the runner was started with."""
    (tmp_path / "tasks").mkdir()
    write(tmp_path / "tasks" / "sig.py", """
        from jobflow_tui import Task, task

        @task
        class Masks(Task):
            def run(self):
                with open("/proc/self/status") as f:
                    print(f.read())
    """)
    write(tmp_path / "job.yaml", "tasks:\n  masks: {task: Masks}\n")
    fresh = subprocess.run([sys.executable, "-c", "print(open('/proc/self/status').read())"],
                           capture_output=True, text=True).stdout
    r = _run_from_a_careless_parent(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    log = next((tmp_path / ".jobflow" / "job" / "runs").glob("*/masks.1.log")).read_text()
    masks, expected = _sig_masks(log), _sig_masks(fresh)
    assert masks["SigBlk"] == 0
    assert masks["SigIgn"] == expected["SigIgn"], (hex(masks["SigIgn"]), hex(expected["SigIgn"]))


def test_very_long_names_get_short_file_names(tmp_path: Path) -> None:
    """A 5,000-character task name and a 300-character job name run, and `logs` finds them."""
    long_task = "t" * 5000
    job = "j" * 300
    write(tmp_path / "job.yaml", f"""
        config: {{name: {job}}}
        tasks:
          ? {long_task}
          : {{command: 'echo hello from the long one'}}
          after: {{command: 'echo after', dependencies: [{long_task}]}}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{long_task} | hello from the long one" in r.stdout
    r = cli("logs", "job.yaml", long_task, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the long one\n"
    for path in (tmp_path / ".jobflow").rglob("*"):
        assert len(path.name) <= 255 - 20, path.name[:80]
    cp = json.loads(next((tmp_path / ".jobflow").glob("*/checkpoint.json")).read_text())
    assert cp["job"]["name"] == job and long_task in cp["tasks"]  # the full names are kept


def test_a_command_larger_than_the_environment_allows_runs(tmp_path: Path) -> None:
    """A 1 MB command (one environment variable holds at most 128 KB) runs as written."""
    body = "; ".join(f": {'x' * 1000}" for _ in range(1000))
    write(tmp_path / "job.yaml", f"""
        tasks:
          big: {{command: '{body}; echo big done'}}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "big | big done" in r.stdout


def _daemons(tmp_path: Path) -> list[int]:
    pids = []
    for f in tmp_path.glob("daemon*.pid"):
        text = f.read_text().strip()
        if text:
            pids.append(int(text))
    return pids


def _daemon_scripts(tmp_path: Path) -> None:
    # setsid + double fork of a process that ignores SIGTERM: out of the task's process
    # group and session, its parent gone at once.
    write(tmp_path / "inner.sh", """
        trap '' TERM
        echo $$ > "$1"
        exec sleep 300
    """)
    write(tmp_path / "daemon.sh", """
        setsid sh -c 'sh "$0" "$1" & exit 0' "$(dirname "$0")/inner.sh" "$(dirname "$0")/daemon$1.pid" \\
            < /dev/null > /dev/null 2>&1
    """)


def test_a_double_forked_daemon_is_ended_with_its_attempt(tmp_path: Path) -> None:
    """Stopped by its timeout, the task takes its escaped daemons with it; a task that
    succeeds does too, and so does a task whose daemon clears its environment."""
    _daemon_scripts(tmp_path)
    write(tmp_path / "job.yaml", """
        config: {kill_grace: 1}
        tasks:
          timed_out: {command: 'sh daemon.sh 1; sh daemon.sh 2; sleep 60', timeout: 2}
          succeeded: {command: 'sh daemon.sh 3; sleep 1'}
          bare: {command: 'env -i PATH=/usr/bin:/bin sh daemon.sh 4; sleep 1'}
    """)
    from .conftest import alive

    try:
        r = cli("job.yaml", cwd=tmp_path, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        pids = _daemons(tmp_path)
        assert len(pids) == 4, pids
        wait_for(lambda: not any(alive(p) for p in pids), 10, "every daemon to be ended")
    finally:
        for pid in _daemons(tmp_path):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_in_a_cgroup_even_a_daemon_that_hides_its_origin_ends_with_its_attempt(tmp_path: Path) -> None:
    """Where cgroup v2 is writable: a daemon started late, with a cleared environment and
    in a session of its own, is ended when its attempt times out, while the run goes on."""
    from jobflow_tui.engine.contain import cgroup_base

    if cgroup_base() is None:
        pytest.skip("no writable cgroup v2 here")
    _daemon_scripts(tmp_path)
    write(tmp_path / "job.yaml", f"""
        tasks:
          hides: {{command: 'sleep 1.5; env -i PATH=/usr/bin:/bin sh daemon.sh 5; sleep 60', timeout: 3}}
          goes_on: {{command: 'while [ ! -e {tmp_path}/stop ]; do sleep 0.05; done'}}
    """)
    runner = subprocess.Popen(
        [sys.executable, "-m", "jobflow_tui", "job.yaml", "--headless"], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    from .conftest import alive

    try:
        wait_for(lambda: _daemons(tmp_path), 20, "the daemon to start")
        daemon = _daemons(tmp_path)[0]
        checkpoint = tmp_path / ".jobflow" / "job" / "checkpoint.json"
        wait_for(lambda: json.loads(checkpoint.read_text())["tasks"]["hides"]["state"] == "failed", 30, "the timeout")
        assert not alive(daemon)
        assert json.loads(checkpoint.read_text())["tasks"]["goes_on"]["state"] == "running"
    finally:
        (tmp_path / "stop").touch()
        runner.wait(timeout=30)
        for pid in _daemons(tmp_path):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_arguments_and_environment_values_too_long_for_the_system_are_located(tmp_path: Path) -> None:
    """An argv command or an env value past what exec allows is refused before anything
    runs, at its place in the file (a shell string of any length runs: see above)."""
    big = "x" * 200_000
    write(tmp_path / "job.yaml", f"""
        tasks:
          argv: {{command: [echo, '{big}']}}
          env: {{command: 'true', env: {{BIG: '{big}'}}}}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "job.yaml:2:" in r.stderr and "argument 2 of 'command'" in r.stderr
    assert "job.yaml:3:" in r.stderr and "too long for an environment variable" in r.stderr
    assert not (tmp_path / ".jobflow").exists()  # nothing ran
