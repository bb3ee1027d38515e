"""The command line as cron, CI and operators use it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from jobflow_tui import __version__

from .conftest import cli, write

NASTY = (
    r"printf 'title\033]0;PWNED\007 clip\033]52;c;aGk=\007 link\033]8;;http://x\033\\here\033]8;;\033\\ "
    r"clear\033[2J\033[H c1\302\233 31m \033[31mred\033[0m end\n'"
)


def test_headless_output_lines_states_and_summary(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          hello: {command: 'echo hi; echo oops >&2'}
          boom: {command: 'exit 4', dependencies: [hello]}
          never: {command: 'echo no', dependencies: [boom]}
    """)
    r = cli("job.yaml", cwd=tmp_path)  # stdout is a pipe: headless without asking
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert "hello | hi" in out and "hello | oops" in out
    assert "hello -> running (attempt 1/1)" in out
    assert any(re.fullmatch(r"boom -> failed \(attempt 1/1, [\d.]+s, exit code 4\)", line) for line in out)
    assert "never -> blocked ('boom' did not succeed)" in out
    assert re.search(r"^boom\s+failed\s+1/1\s+[\d.]+s\s+4$", r.stdout, re.M)
    assert re.search(r"^job job: 1 succeeded, 1 failed, 1 blocked in ", r.stdout, re.M)
    assert "\x1b" not in r.stdout  # no colour without a terminal


def test_exit_code_0_when_all_succeed(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'true'}\n")
    assert cli("job.yaml", cwd=tmp_path).returncode == 0


def test_control_sequences_never_reach_the_output(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  evil: {{command: {json.dumps(NASTY)}}}\n")
    r = cli("job.yaml", "--headless", cwd=tmp_path)
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("evil | "))
    assert line == "evil | title clip linkhere clear c1 31m red end"
    # the log on disk keeps every raw byte
    cp = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())
    raw = (tmp_path / ".jobflow" / "job" / cp["tasks"]["evil"]["logs"][0]).read_bytes()
    assert b"\x1b]0;PWNED\x07" in raw and b"\x1b]52;c;aGk=\x07" in raw


def test_params_only_and_state_dir(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          prep: {command: 'echo prep'}
          main: {command: 'echo "day=$JOBFLOW_PARAM_DAY"', dependencies: [prep]}
          other: {command: 'echo other'}
    """)
    r = cli("job.yaml", "-p", "day=monday", "--only", "main", "--state-dir", str(tmp_path / "st"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "main | day=monday" in r.stdout and "other |" not in r.stdout
    assert (tmp_path / "st" / "job" / "checkpoint.json").exists()
    assert not (tmp_path / ".jobflow").exists()
    r = cli("status", "job.yaml", cwd=tmp_path, env={"JOBFLOW_STATE_DIR": str(tmp_path / "st")})
    assert re.search(r"^other\s+pending", r.stdout, re.M) and re.search(r"^main\s+succeeded", r.stdout, re.M)


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'touch ran'}\n")
    for args in (["--only", "nope"], ["-p", "novalue"], ["--max-concurrency", "-1"], ["--bogus"]):
        r = cli("job.yaml", *args, cwd=tmp_path)
        assert r.returncode == 2, args
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "ran").exists()


def test_validate_graph_status_logs(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        config: {name: etl, max_concurrency: 2}
        tasks:
          extract: {command: 'echo e1; echo e2'}
          clean: {command: 'echo c', dependencies: [extract]}
          load: {command: 'exit 1', dependencies: [extract, clean], max_attempts: 2}
    """)
    r = cli("validate", "job.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "OK: job 'etl', 3 tasks, 3 dependencies, max concurrency 2" in r.stdout
    assert not (tmp_path / ".jobflow").exists()  # validate runs nothing
    r = cli("graph", "job.yaml", cwd=tmp_path)
    assert r.stdout == "etl (3 tasks)\n└── extract\n    ├── clean\n    └── load  (also needs clean)\n"
    dot = cli("graph", "job.yaml", "--format", "dot", cwd=tmp_path).stdout
    assert '"extract" -> "load";' in dot and dot.startswith('digraph "etl"')
    mer = cli("graph", "job.yaml", "--format", "mermaid", cwd=tmp_path).stdout
    assert mer.startswith("flowchart TD") and "t0 --> t1" in mer
    r = cli("status", "job.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "no run of job 'etl'" in r.stderr
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    r = cli("status", "job.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert re.search(r"^load\s+failed\s+2/2\s+1\s+exit code 1", r.stdout, re.M)
    assert cli("logs", "job.yaml", "extract", cwd=tmp_path).stdout == "e1\ne2\n"
    assert cli("logs", "job.yaml", "load", "--attempt", "1", cwd=tmp_path).returncode == 0
    r = cli("logs", "job.yaml", "load", "--attempt", "3", cwd=tmp_path)
    assert r.returncode == 2 and "attempts 1 to 2" in r.stderr


def test_logs_follow_prints_until_the_attempt_ends(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  t: {{command: 'echo one; while [ ! -f {tmp_path}/stop ]; do sleep 0.05; done; echo two'}}\n")
    runner = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "job.yaml"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        from .conftest import wait_for

        wait_for(lambda: (tmp_path / ".jobflow" / "job" / "checkpoint.json").exists()
                 and '"running"' in (tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text(), 20)
        follow = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "logs", "job.yaml", "t", "--follow"],
                                  cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        assert follow.stdout is not None
        import select

        assert select.select([follow.stdout], [], [], 20)[0], "nothing printed"
        assert follow.stdout.readline() == "one\n"  # printed while the task still runs
        assert follow.poll() is None  # ... and still following
        (tmp_path / "stop").touch()
        out, _ = follow.communicate(timeout=20)
        assert out == "two\n"
    finally:
        runner.wait(timeout=20)


def test_version_and_help() -> None:
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"jobflow-tui {__version__}"
    r = cli("--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "--only" in r.stdout and "validate" in r.stdout


def test_headless_output_reaches_a_pipe_while_the_task_still_runs(tmp_path: Path) -> None:
    # A CI log is a pipe: a long step's lines must show as they come, not when it ends.
    import os
    import select

    from .conftest import wait_for

    write(tmp_path / "job.yaml", f"tasks:\n  build: {{command: 'echo compiling; while [ ! -f {tmp_path}/stop ]; do sleep 0.05; done'}}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell has it
    runner = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "job.yaml"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert runner.stdout is not None
    seen = b""
    try:
        def got_line() -> bool:
            nonlocal seen
            if select.select([runner.stdout], [], [], 0)[0]:
                seen += os.read(runner.stdout.fileno(), 65536)
            return b"build | compiling\n" in seen

        wait_for(got_line, 20, "the task's line on the pipe")
        assert runner.poll() is None and not (tmp_path / "stop").exists()  # ... while it runs
    finally:
        (tmp_path / "stop").touch()
        runner.communicate(timeout=20)
