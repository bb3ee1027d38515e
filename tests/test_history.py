"""Every run remembered: its trail, the history index shared by runners, past runs from
the shell, retention, and the commands a run's end runs. Real runs, real SQLite."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import cli, terminate, wait_for, write


def trail(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def run_dirs(folder: Path, job: str = "job") -> list[Path]:
    return sorted((folder / ".jobflow" / job / "runs").iterdir())


def test_a_run_leaves_its_trail_and_its_final_checkpoint(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          extract: {command: 'echo rows', env: {SECRET: s3cr3t}}
          load: {command: 'echo "load failed" >&2; exit 4', dependencies: [extract]}
    """)
    assert cli("job.yaml", "-p", "day=mon", cwd=tmp_path).returncode == 1
    [run] = run_dirs(tmp_path)
    records = trail(run)
    start, end = records[0], records[-1]
    assert start["event"] == "run_start" and start["params"] == {"day": "mon"} and start["resumed"] is False
    assert {"host", "user", "hash", "pid", "time"} <= set(start) and start["run_id"] == run.name
    failed = next(r for r in records if r["event"] == "state" and r["state"] == "failed")
    assert failed["task"] == "load" and failed["exit_code"] == 4 and failed["previous"] == "running"
    assert failed["command"] == 'echo "load failed" >&2; exit 4' and "s3cr3t" not in json.dumps(records)
    assert end["event"] == "run_end" and end["state"] == "failed" and end["failed"] == ["load"]
    assert end["counts"] == {"succeeded": 1, "failed": 1}
    copy = json.loads((run / "checkpoint.json").read_text())
    assert copy["run_id"] == run.name and copy["tasks"]["load"]["state"] == "failed"


def test_history_lists_runs_and_status_and_logs_read_any_of_them(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          step: {{command: 'if [ -e {tmp_path}/ok ]; then echo "second time"; else echo "first time"; exit 3; fi'}}
    """)
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    (tmp_path / "ok").touch()
    assert cli("job.yaml", cwd=tmp_path).returncode == 0
    second = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())["run_id"]
    [first] = [d.name for d in run_dirs(tmp_path) if d.name != second]
    shown = cli("history", "job.yaml", cwd=tmp_path).stdout.splitlines()
    assert shown[0].split() == ["RUN", "STARTED", "STATE", "DURATION", "TASKS"]
    assert shown[1].startswith(second) and "succeeded" in shown[1] and "1 succeeded" in shown[1]
    assert shown[2].startswith(first) and "failed" in shown[2] and "1 failed" in shown[2]
    runs = json.loads(cli("history", "job.yaml", "--json", "--limit", "1", cwd=tmp_path).stdout)
    assert [r["run_id"] for r in runs] == [second] and runs[0]["exit_code"] == 0 and runs[0]["duration"] > 0
    old = cli("status", "job.yaml", "--run", first, cwd=tmp_path)
    assert old.returncode == 1 and f"run {first}" in old.stdout and "failed" in old.stdout
    assert cli("logs", "job.yaml", "step", "--run", first, cwd=tmp_path).stdout == "first time\n"
    assert cli("logs", "job.yaml", "step", cwd=tmp_path).stdout == "second time\n"
    r = cli("status", "job.yaml", "--run", "../../etc", cwd=tmp_path)
    assert r.returncode == 2 and "no run '../../etc'" in r.stderr


def test_two_jobs_at_once_share_the_index_without_a_locked_database(tmp_path: Path) -> None:
    tasks = "".join(f"  t{i}: {{command: 'true'}}\n" for i in range(60))
    for name in ("one", "two"):
        write(tmp_path / f"{name}.yaml", f"config: {{max_concurrency: 8}}\ntasks:\n{tasks}")
    state = str(tmp_path / "state")
    procs = [subprocess.Popen([sys.executable, "-m", "jobflow_tui", f"{n}.yaml", "--state-dir", state],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for n in ("one", "two")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("history" in err or "locked" in err for _, err in outs), [err for _, err in outs]
    db = sqlite3.connect(os.path.join(state, "history.sqlite3"))
    counts = dict(db.execute("SELECT job, count(*) FROM attempts GROUP BY job").fetchall())
    assert counts == {"one": 60, "two": 60}
    assert db.execute("SELECT job, state FROM runs ORDER BY job").fetchall() == [("one", "succeeded"),
                                                                                ("two", "succeeded")]


def test_kill_9_mid_run_leaves_an_index_that_opens_and_a_trail_whose_lines_parse(tmp_path: Path) -> None:
    tasks = "".join(f"  t{i}: {{command: 'sleep 0.0{i % 7}'}}\n" for i in range(400))
    write(tmp_path / "job.yaml", f"config: {{max_concurrency: 6}}\ntasks:\n{tasks}")
    proc = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "job.yaml"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        events = tmp_path / ".jobflow" / "job"

        def busy() -> bool:
            found = list(events.glob("runs/*/events.jsonl"))
            return bool(found) and found[0].read_text().count('"succeeded"') > 50

        wait_for(busy, 60, "the run to be well under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        terminate(proc)
    [run] = run_dirs(tmp_path)
    raw = (run / "events.jsonl").read_bytes()
    whole = raw[: raw.rfind(b"\n") + 1].decode().splitlines()
    assert len(whole) > 50 and all(json.loads(line)["event"] for line in whole)
    db = sqlite3.connect(tmp_path / ".jobflow" / "history.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT state FROM runs").fetchall() == [("running",)]
    assert "interrupted" in cli("history", "job.yaml", cwd=tmp_path).stdout  # its runner is gone
    wait_for(lambda: not list(tmp_path.glob("**/attempts.launched")) or True, 1)


def test_a_spoilt_index_never_stops_a_run_and_rebuild_remakes_it(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'echo hello'}\n")
    assert cli("job.yaml", cwd=tmp_path).returncode == 0
    db = tmp_path / ".jobflow" / "history.sqlite3"
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "a | hello" in r.stdout
    assert "history index is not written" in r.stderr and "--rebuild" in r.stderr
    r = cli("history", "job.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "--rebuild" in r.stderr
    r = cli("history", "job.yaml", "--rebuild", cwd=tmp_path)
    assert r.returncode == 0 and "from 2 run folder(s)" in r.stdout
    runs = json.loads(cli("history", "job.yaml", "--json", cwd=tmp_path).stdout)
    assert [x["state"] for x in runs] == ["succeeded", "succeeded"]
    db.unlink()  # missing: made again from the folders when asked
    assert len(json.loads(cli("history", "job.yaml", "--json", cwd=tmp_path).stdout)) == 2


def test_retention_keeps_the_newest_run_folders(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "config: {retention: {runs: 2}}\ntasks:\n  a: {command: 'true'}\n")
    for _ in range(4):
        assert cli("job.yaml", cwd=tmp_path).returncode == 0
    kept = [d.name for d in run_dirs(tmp_path)]
    assert len(kept) == 2
    runs = json.loads(cli("history", "job.yaml", "--json", cwd=tmp_path).stdout)
    assert sorted(r["run_id"] for r in runs) == kept


def test_end_commands_run_with_the_run_s_outcome(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        config:
          on_success: 'echo "ok $JOBFLOW_RUN_ID" > {tmp_path}/success'
          on_failure: 'echo "$JOBFLOW_RUN_STATE: $JOBFLOW_FAILED_TASKS" > {tmp_path}/failure'
          on_exit: ['sh', '-c', 'echo "exit $JOBFLOW_RUN_STATE" > {tmp_path}/exit']
        tasks:
          a: {{command: 'test -e {tmp_path}/pass'}}
          b: {{command: 'true', dependencies: [a]}}
    """)
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    assert (tmp_path / "failure").read_text() == "failed: a\n" and (tmp_path / "exit").read_text() == "exit failed\n"
    assert not (tmp_path / "success").exists()
    (tmp_path / "pass").touch()
    assert cli("job.yaml", "--resume", cwd=tmp_path).returncode == 0
    [run] = run_dirs(tmp_path)  # the same run, resumed
    assert (tmp_path / "success").read_text() == f"ok {run.name}\n" and (tmp_path / "exit").read_text() == "exit succeeded\n"
    log = (run / "hooks.log").read_text()
    assert "--- on_success:" in log and "--- on_exit:" in log


def test_a_failing_end_command_is_reported_and_changes_no_exit_code(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "config: {on_exit: 'exit 7'}\ntasks:\n  a: {command: 'true'}\n")
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "on_exit exited with 7" in r.stderr


def test_history_before_any_run_says_so(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'true'}\n")
    r = cli("history", "job.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "no run of job 'job' recorded" in r.stdout and not (tmp_path / ".jobflow").exists()


def test_rebuild_keeps_the_index_that_live_runners_write_to(tmp_path: Path) -> None:
    from jobflow_tui.history import History

    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'true'}\n")
    assert cli("job.yaml", cwd=tmp_path).returncode == 0
    history = History(str(tmp_path / ".jobflow"))
    live = history.connect()  # a runner's connection, open across the rebuild
    assert cli("history", "job.yaml", "--rebuild", cwd=tmp_path).returncode == 0
    history.apply(live, [("", {"event": "run_start", "job": "job", "run_id": "live-run", "time": 1e10})])
    live.close()
    assert [r.run_id for r in history.runs("job")][0] == "live-run"


def test_after_its_end_a_run_takes_no_action_while_its_end_commands_run(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{on_exit: 'touch {tmp_path}/ending; sleep 3'}}
        tasks:
          a: {{command: 'exit 3'}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "job.yaml"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "ending").exists(), 30, "the end command")
        r = cli("retry", "job.yaml", "a", cwd=tmp_path)
        assert r.returncode != 0, r.stdout
        assert proc.wait(timeout=30) == 1
    finally:
        terminate(proc)
    [run] = run_dirs(tmp_path)
    assert not (run / "a.2.log").exists()
    assert trail(run)[-1]["event"] == "run_end"


def test_the_server_lists_past_runs_and_serves_their_checkpoints_and_logs(tmp_path: Path) -> None:
    from .served import Served

    jobs = tmp_path / "jobs"
    write(jobs / "job.yaml", f"tasks:\n  step: {{command: 'test -e {tmp_path}/ok && echo second || echo first'}}\n")
    for _ in range(3):
        assert cli("job.yaml", cwd=jobs).returncode == 0
    served = Served(tmp_path, jobs)
    try:
        runs = served.get("/api/runs?job=job").json()
        assert len(runs) == 3 and all(r["state"] == "succeeded" and not r["live"] for r in runs)
        assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
        assert len(served.get("/api/runs?limit=2").json()) == 2
        assert served.get("/api/runs?limit=0", check=False).status == 400
        oldest = runs[-1]["run_id"]
        detail = served.get(f"/api/runs/{oldest}").json()
        assert detail["run_id"] == oldest and detail["state"] == "succeeded" and not detail["live"]
        assert served.get(f"/api/runs/{oldest}/tasks/step/logs").body == b"first\n"
        r = served.post(f"/api/runs/{oldest}/tasks/step/retry", check=False)
        assert r.status == 409  # a past run is read-only
        assert served.get("/api/runs/..%2F..%2Fetc", check=False).status == 404
    finally:
        served.close()
