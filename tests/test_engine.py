"""The scheduler with real child processes: order, limits, retries, timeouts, control."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from jobflow_tui.engine import Output, Scheduler, StateChanged
from jobflow_tui.jobdef import load_job

from .conftest import alive, await_for, write


def make(tmp_path: Path, text: str, **kw) -> Scheduler:
    job = load_job(str(write(tmp_path / "job.yaml", text)))
    return Scheduler(job, state_dir=str(tmp_path / "state"), **kw)


class Recorder:
    def __init__(self, s: Scheduler) -> None:
        self.states: list[tuple[str, str]] = []
        self.lines: dict[str, list[str]] = {}
        self.max_running = 0
        self.running: set[str] = set()
        s.subscribe(self)

    def __call__(self, e) -> None:
        if isinstance(e, StateChanged):
            self.states.append((e.task, e.state))
            if e.state == "running":
                self.running.add(e.task)
            else:
                self.running.discard(e.task)
            self.max_running = max(self.max_running, len(self.running))
        elif isinstance(e, Output):
            self.lines.setdefault(e.task, []).extend(e.lines)

    def of(self, task: str) -> list[str]:
        return [s for t, s in self.states if t == task]


def times(path: Path) -> tuple[float, float]:
    start, end = path.read_text().split()
    return float(start), float(end)


STAMP = 'python3 -c "import time; print(time.time())" > {f}.start; sleep {d}; python3 -c "import time; print(time.time())" > {f}.end'


async def test_diamond_runs_in_order_and_in_parallel(tmp_path: Path) -> None:
    def stamp(name: str, d: float) -> str:
        return STAMP.format(f=tmp_path / name, d=d)

    s = make(tmp_path, f"""
        tasks:
          top: {{command: '{stamp("top", 0)}'}}
          left: {{command: '{stamp("left", 0.6)}', dependencies: [top]}}
          right: {{command: '{stamp("right", 0.6)}', dependencies: [top]}}
          bottom: {{command: '{stamp("bottom", 0)}', dependencies: [left, right]}}
    """)
    assert await s.run() == 0

    def t(name: str, edge: str) -> float:
        return float((tmp_path / f"{name}.{edge}").read_text())

    assert t("left", "start") >= t("top", "end") and t("right", "start") >= t("top", "end")
    assert t("bottom", "start") >= max(t("left", "end"), t("right", "end"))
    # the two branches overlapped in time
    assert t("left", "start") < t("right", "end") and t("right", "start") < t("left", "end")


async def test_concurrency_limit_is_never_exceeded(tmp_path: Path) -> None:
    tasks = "\n".join(
        f"  t{i}: {{command: 'mkdir {tmp_path}/slots/t{i} && ls {tmp_path}/slots | wc -l >> {tmp_path}/counts; sleep 0.1; rmdir {tmp_path}/slots/t{i}'}}"
        for i in range(12)
    )
    (tmp_path / "slots").mkdir()
    s = make(tmp_path, "config: {max_concurrency: 3}\ntasks:\n" + tasks + "\n")
    rec = Recorder(s)
    assert await s.run() == 0
    counts = [int(x) for x in (tmp_path / "counts").read_text().split()]
    assert len(counts) == 12
    assert max(counts) <= 3
    assert rec.max_running == 3  # the limit was reached, so it was really tested


async def test_max_concurrency_override(tmp_path: Path) -> None:
    tasks = "\n".join(f"  t{i}: {{command: 'sleep 0.2'}}" for i in range(4))
    s = make(tmp_path, "config: {max_concurrency: 4}\ntasks:\n" + tasks + "\n", max_concurrency=1)
    rec = Recorder(s)
    assert await s.run() == 0
    assert rec.max_running == 1


async def test_retries_keep_one_log_per_attempt(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          flaky:
            command: 'echo "try $JOBFLOW_ATTEMPT"; echo x >> {tmp_path}/n; test $(wc -l < {tmp_path}/n) -ge 3'
            max_attempts: 3
    """)
    rec = Recorder(s)
    assert await s.run() == 0
    run = s.tasks["flaky"]
    assert run.state == "succeeded" and run.attempts == 3
    assert rec.of("flaky") == ["running", "retrying", "running", "retrying", "running", "succeeded"]
    assert [Path(p).read_text() for p in run.logs] == ["try 1\n", "try 2\n", "try 3\n"]
    cp = json.loads(Path(s.checkpoint_path).read_text())
    assert cp["tasks"]["flaky"]["attempts"] == 3
    assert len(cp["tasks"]["flaky"]["logs"]) == 3


async def test_retry_delay_grows_with_backoff(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          f:
            command: 'python3 -c "import time; print(time.time())" >> {tmp_path}/t; exit 1'
            max_attempts: 3
            retry_delay: 0.3
            retry_backoff: 2
    """)
    assert await s.run() == 1
    t = [float(x) for x in (tmp_path / "t").read_text().split()]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.3 and t[2] - t[1] >= 0.6


async def test_failure_blocks_downstream_but_not_other_branches(tmp_path: Path) -> None:
    s = make(tmp_path, """
        tasks:
          bad: {command: 'exit 3'}
          after_bad: {command: 'echo no', dependencies: [bad]}
          after_after: {command: 'echo no', dependencies: [after_bad]}
          other: {command: 'sleep 0.3; echo yes'}
          after_other: {command: 'echo yes', dependencies: [other]}
    """)
    rec = Recorder(s)
    assert await s.run() == 1
    st = {n: r.state for n, r in s.tasks.items()}
    assert st == {"bad": "failed", "after_bad": "blocked", "after_after": "blocked",
                  "other": "succeeded", "after_other": "succeeded"}
    assert s.tasks["bad"].exit_code == 3
    assert "after_bad" not in rec.lines


async def test_timeout_kills_the_tree_including_a_setsid_grandchild(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          hang:
            command: 'setsid sleep 300 & echo $! > {tmp_path}/gc; sleep 300'
            timeout: 0.5
            kill_grace: 1
    """)
    assert await s.run() == 1
    run = s.tasks["hang"]
    assert run.state == "failed" and "timed out" in run.reason
    gc = int((tmp_path / "gc").read_text())
    await await_for(lambda: not alive(gc), 5, "the setsid grandchild to be gone")


async def test_escaped_grandchild_whose_parent_exited_is_killed_on_abort(tmp_path: Path) -> None:
    # The parent exits at once, so only the periodic descendant scan can find the grandchild.
    s = make(tmp_path, f"""
        tasks:
          t: {{command: 'sh -c "setsid sleep 300 & echo \\$! > {tmp_path}/gc; sleep 1.5"; sleep 300'}}
    """)
    await s.start()
    await await_for(lambda: (tmp_path / "gc").exists(), 10)
    gc = int((tmp_path / "gc").read_text())
    await asyncio.sleep(2.5)  # the inner sh has exited; the grandchild was tracked meanwhile
    await s.abort("t")
    await s.close()
    assert s.tasks["t"].state == "aborted"
    await await_for(lambda: not alive(gc), 5, "the escaped grandchild to be gone")


async def test_term_ignoring_task_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    s = make(tmp_path, """
        tasks:
          stubborn: {command: "trap '' TERM; echo ready; sleep 300 & wait", kill_grace: 0.5}
    """)
    rec = Recorder(s)
    await s.start()
    await await_for(lambda: "ready" in rec.lines.get("stubborn", []), 10)
    pid = s.tasks["stubborn"].pid
    await s.abort("stubborn")
    assert s.tasks["stubborn"].state == "aborted"
    assert not alive(pid)
    await s.close()


async def test_abort_retry_and_restart(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          slow: {{command: 'echo started >> {tmp_path}/slow; sleep 300'}}
          next: {{command: 'echo next >> {tmp_path}/next', dependencies: [slow]}}
    """)
    await s.start()
    await await_for(lambda: s.tasks["slow"].state == "running" and s.tasks["slow"].pid, 10)
    pid = s.tasks["slow"].pid
    await s.abort("slow")
    assert s.tasks["slow"].state == "aborted" and s.tasks["next"].state == "blocked"
    assert not alive(pid)
    await s.wait_idle()
    # retry brings the aborted task and its blocked downstream back
    s.job.tasks["slow"].command = f"echo started >> {tmp_path}/slow"
    assert s.retry("slow")
    assert s.tasks["next"].state == "pending"
    await s.wait_idle()
    assert s.tasks["slow"].state == "succeeded" and s.tasks["next"].state == "succeeded"
    assert s.tasks["slow"].attempts == 2
    # restart runs a succeeded task and everything downstream again
    await s.restart("slow")
    await s.wait_idle()
    assert (tmp_path / "slow").read_text().count("started") == 3
    assert (tmp_path / "next").read_text().count("next") == 2
    await s.close()
    assert s.exit_code() == 0


async def test_restart_aborts_running_downstream_first(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          a: {{command: 'echo a >> {tmp_path}/a'}}
          b: {{command: 'echo b >> {tmp_path}/b; sleep 300', dependencies: [a]}}
    """)
    await s.start()
    await await_for(lambda: s.tasks["b"].state == "running" and s.tasks["b"].pid, 10)
    first_b = s.tasks["b"].pid
    await s.restart("a")
    assert not alive(first_b)
    await await_for(lambda: s.tasks["b"].state == "running" and s.tasks["b"].pid not in (None, first_b), 10)
    assert (tmp_path / "a").read_text() == "a\na\n"
    await s.abort("b")
    await s.close()


async def test_pause_stops_launching_and_resume_continues(tmp_path: Path) -> None:
    s = make(tmp_path, f"""
        tasks:
          a: {{command: 'sleep 0.3'}}
          b: {{command: 'touch {tmp_path}/b', dependencies: [a]}}
    """)
    await s.start()
    s.pause()
    await await_for(lambda: s.tasks["a"].state == "succeeded", 10)
    await asyncio.sleep(0.3)
    assert s.tasks["b"].state == "pending" and not (tmp_path / "b").exists()
    s.resume()
    await s.wait_idle()
    await s.close()
    assert (tmp_path / "b").exists()


async def test_long_lines_and_invalid_utf8_lose_nothing(tmp_path: Path) -> None:
    script = tmp_path / "emit.py"
    script.write_text(
        "import sys\n"
        "sys.stdout.buffer.write(b'A' * 200_000 + b'\\n')\n"
        "sys.stdout.buffer.write(b'bad \\xff\\xfe bytes \\xe2\\x82\\n')\n"
        "sys.stdout.buffer.write(b'no newline at end')\n"
    )
    s = make(tmp_path, f"tasks:\n  t: {{command: 'python3 {script}'}}\n")
    rec = Recorder(s)
    assert await s.run() == 0
    lines = rec.lines["t"]
    assert "".join(x for x in lines if set(x) == {"A"}) == "A" * 200_000
    assert "bad \ufffd\ufffd bytes \ufffd" in lines
    assert lines[-1] == "no newline at end"
    raw = Path(s.tasks["t"].logs[0]).read_bytes()
    assert raw == b"A" * 200_000 + b"\n" + b"bad \xff\xfe bytes \xe2\x82\n" + b"no newline at end"


async def test_output_streams_while_the_task_runs(tmp_path: Path) -> None:
    s = make(tmp_path, "tasks:\n  t: {command: 'echo first; sleep 300'}\n")
    rec = Recorder(s)
    await s.start()
    await await_for(lambda: rec.lines.get("t") == ["first"], 10, "the first line before the task ends")
    assert s.tasks["t"].state == "running"
    await s.abort("t")
    await s.close()


async def test_outputs_params_env_and_cwd(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    s = make(tmp_path, """
        config: {env: {LEVEL: job, SHARED: one}}
        tasks:
          t:
            command: 'echo "rows=42" >> "$JOBFLOW_OUTPUT"; printf "multi<<EOF\\nx\\ny\\nEOF\\n" >> "$JOBFLOW_OUTPUT"; echo "$LEVEL $SHARED $JOBFLOW_PARAM_DAY $JOBFLOW_PARAM_RUN_MODE $(pwd)"'
            cwd: work
            env: {LEVEL: task}
    """, params={"day": "2026-11-22", "run-mode": "full"})
    rec = Recorder(s)
    assert await s.run() == 0
    assert rec.lines["t"] == [f"task one 2026-11-22 full {tmp_path / 'work'}"]
    cp = json.loads(Path(s.checkpoint_path).read_text())
    assert cp["tasks"]["t"]["outputs"] == {"rows": "42", "multi": "x\ny"}


async def test_argv_command_is_not_run_by_a_shell(tmp_path: Path) -> None:
    s = make(tmp_path, "tasks:\n  t: {command: [echo, '$HOME', 'a  b']}\n")
    rec = Recorder(s)
    assert await s.run() == 0
    assert rec.lines["t"] == ["$HOME a  b"]


async def test_missing_cwd_fails_the_attempt_with_a_message(tmp_path: Path) -> None:
    s = make(tmp_path, "tasks:\n  t: {command: 'echo hi', cwd: nothere}\n")
    rec = Recorder(s)
    assert await s.run() == 1
    assert s.tasks["t"].state == "failed"
    assert any("nothere" in line for line in rec.lines["t"])


async def test_only_runs_the_task_and_what_it_needs(tmp_path: Path) -> None:
    s = make(tmp_path, """
        tasks:
          a: {command: 'true'}
          b: {command: 'true', dependencies: [a]}
          c: {command: 'true', dependencies: [b]}
          d: {command: 'true'}
    """, only=["b"])
    assert await s.run() == 0
    assert {n: r.state for n, r in s.tasks.items()} == {"a": "succeeded", "b": "succeeded", "c": "pending", "d": "pending"}


async def test_background_leftovers_are_ended_with_the_task(tmp_path: Path) -> None:
    s = make(tmp_path, f"tasks:\n  t: {{command: 'sleep 300 & echo $! > {tmp_path}/bg'}}\n")
    assert await s.run() == 0
    bg = int((tmp_path / "bg").read_text())
    assert not alive(bg)


async def test_every_subscriber_sees_every_event_and_a_broken_one_is_harmless(tmp_path: Path) -> None:
    s = make(tmp_path, "tasks:\n  a: {command: 'echo hi'}\n  b: {command: 'echo yo', dependencies: [a]}\n")
    one, two = Recorder(s), Recorder(s)

    def broken(_e):
        raise RuntimeError("subscriber bug")

    s.subscribe(broken)
    assert await s.run() == 0
    assert one.states == two.states and len(one.states) == 4
    assert one.lines == two.lines == {"a": ["hi"], "b": ["yo"]}


async def test_checkpoint_is_complete_json_after_every_change(tmp_path: Path) -> None:
    tasks = "\n".join(f"  t{i}: {{command: 'true'}}" for i in range(30))
    s = make(tmp_path, "config: {max_concurrency: 4}\ntasks:\n" + tasks + "\n")
    seen = []

    def check(_e):
        if os.path.exists(s.checkpoint_path):
            seen.append(json.loads(Path(s.checkpoint_path).read_bytes()))  # never half-written

    s.subscribe(check)
    assert await s.run() == 0
    final = json.loads(Path(s.checkpoint_path).read_text())
    assert {"job", "run_id", "started_at", "updated_at", "shared_dict", "tasks"} <= final.keys()
    assert all(t["state"] == "succeeded" for t in final["tasks"].values())
    assert seen and not list(Path(s.checkpoint_path).parent.glob("*.tmp.*"))


async def test_second_runner_on_the_same_job_is_refused(tmp_path: Path) -> None:
    from jobflow_tui.engine import RunError

    s1 = make(tmp_path, "tasks:\n  t: {command: 'sleep 300'}\n")
    await s1.start()
    s2 = Scheduler(s1.job, state_dir=str(tmp_path / "state"))
    with pytest.raises(RunError, match="already being run"):
        await s2.start()
    await s1.shutdown()
    assert s1.tasks["t"].state == "aborted"


def test_concurrent_attempts_each_record_one_pid_and_one_exit(tmp_path: Path) -> None:
    # All attempts of a run append to one journal at once: no line may be lost or mixed.
    n = 300
    write(tmp_path / "job.yaml", "config: {max_concurrency: 32}\ntasks:\n"
          + "".join(f"  t{i}: {{command: 'exit {i % 3}'}}\n" for i in range(n)))
    from .conftest import cli

    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    journal = next((tmp_path / ".jobflow").glob("*/runs/*/attempts.status")).read_text()
    assert journal.startswith("\x1e") and journal.endswith("\n")
    whole = journal[1:].split("\x1e")  # RS starts each record; each is one line
    assert all(r.endswith("\n") and r.count("\n") == 1 for r in whole)
    records = [r[:-1].split(" ") for r in whole]
    assert all(len(r) == 3 and r[1] in ("pid", "exit") and r[2].isdigit() for r in records)
    pids = {r[0]: int(r[2]) for r in records if r[1] == "pid"}
    exits = {r[0]: int(r[2]) for r in records if r[1] == "exit"}
    assert len(records) == 2 * n and len(pids) == len(exits) == n
    assert all(exits[f"t{i}.1"] == i % 3 for i in range(n))


def test_a_torn_record_in_the_journal_spoils_only_itself(tmp_path: Path) -> None:
    # A writer killed mid-write (or a full disk) leaves a record without its end; the next
    # attempt's record, appended right after it, must still be read.
    from jobflow_tui.engine.process import AttemptFiles

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "attempts.status").write_bytes(
        b'\x1ea.1 pid 10\n\x1ea.1 result {"outputs": {"big": "cut sho'
        b"\x1eb.1 pid 11\n\x1eb.1 exit 0\n\x1ea.1 exit 1\n"
    )
    a, b = AttemptFiles(str(run_dir / "a.1")), AttemptFiles(str(run_dir / "b.1"))
    assert (b.read_pid(), b.read_status()) == (11, 0)
    assert (a.read_pid(), a.read_status(), a.read_result()) == (10, 1, None)
    with open(run_dir / "attempts.status", "ab") as f:  # read as it grows, a record at a time
        f.write(b"\x1ec.1 pid 12\n\x1ec.1 ex")
    c = AttemptFiles(str(run_dir / "c.1"))
    assert (c.read_pid(), c.read_status()) == (12, None)
    with open(run_dir / "attempts.status", "ab") as f:
        f.write(b"it 4\n")
    assert c.read_status() == 4


async def test_a_tail_counts_lines_as_told_only_when_its_read_returns(tmp_path: Path) -> None:
    """`emitted` is what a viewer that subscribes now must not read again from the log: while
    a read still waits for more of the file, the lines it holds are not told yet (a viewer
    subscribing then would see them twice)."""
    from jobflow_tui.engine.tail import LogTail

    log = tmp_path / "task.log"
    log.write_bytes(b"one\ntwo\n")
    tail = LogTail(str(log))
    first = await tail.read()
    assert first == b"one\ntwo" and tail.emitted == 8

    class Paused:  # the file as a read sees it while the disk is slow: more comes later
        def __init__(self) -> None:
            self.gate, self.calls = asyncio.Event(), 0

        async def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return b"three\n"
            await self.gate.wait()
            return b""

        async def close(self) -> None:
            pass

    log.write_bytes(b"one\ntwo\nthree\n")
    slow = Paused()
    tail._file = slow
    reading = asyncio.ensure_future(tail.read())
    await await_for(lambda: slow.calls == 2, 5, "the read to wait for more")
    assert tail.emitted == 8  # "three" is taken in, not given out
    slow.gate.set()
    assert await reading == b"three" and tail.emitted == 14
