"""The HTTP API against a live `jobflow-tui server`: the token, every route, runs started
and steered over HTTP, logs with ranges, and Server-Sent Events that resume exactly."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import alive, wait_for, write
from .served import Served, Stream

JOB = """
    config: {{name: etl}}
    tasks:
      extract: {{command: 'for i in $(seq 1 5); do echo "row $i"; done'}}
      check: {{command: 'test -e {tmp}/ok && echo checked || {{ echo "not yet" >&2; exit 3; }}', dependencies: [extract]}}
      hold: {{command: 'while [ ! -e {tmp}/go ]; do sleep 0.05; done; echo released'}}
"""


@pytest.fixture
def served(tmp_path: Path):
    jobs = tmp_path / "jobs"
    write(jobs / "etl.yaml", JOB.format(tmp=tmp_path))
    s = Served(tmp_path, jobs)
    try:
        yield s
    finally:
        (tmp_path / "go").touch()
        s.close()


def test_every_request_needs_the_token_and_a_401_says_nothing(served: Served, tmp_path: Path) -> None:
    for path in ("/api/jobs", "/api/runs", "/openapi.yaml", "/api/jobs/etl", "/api/nothing-here", "/"):
        r = served.get(path, auth=False, check=False)
        assert r.status == 401 and r.json() == {"error": "unauthorised"}, (path, r)
    for header in ("Bearer wrong-token-0123456789abc", "Basic " + served.token, served.token, "Bearer"):
        r = served.get("/api/jobs", auth=False, headers={"Authorization": header}, check=False)
        assert r.status == 401 and r.json() == {"error": "unauthorised"}, header
    assert served.post("/api/jobs/etl/runs", auth=False, check=False).status == 401
    assert not (tmp_path / "jobs" / ".jobflow").exists()  # nothing ran

    r = served.get("/?token=nope", auth=False, check=False)
    assert r.status == 401 and "set-cookie" not in r.headers
    r = served.get(f"/?token={served.token}", auth=False, check=False)
    assert r.status == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = cookie.split(";")[0]
    assert served.get("/api/jobs", auth=False, headers={"Cookie": jar}).status == 200


def test_jobs_are_listed_shown_and_added_only_inside_the_first_folder(served: Served, tmp_path: Path) -> None:
    assert served.get("/api/jobs").json() == [{"name": "etl", "path": str(tmp_path / "jobs" / "etl.yaml"), "tasks": 3}]
    detail = served.get("/api/jobs/etl").json()
    assert [t["name"] for t in detail["tasks"]] == ["extract", "check", "hold"]
    assert detail["tasks"][1]["dependencies"] == ["extract"]
    assert served.get("/api/jobs/nope").status == 404

    yaml = b"config: {name: report}\ntasks:\n  a: {command: 'echo a'}\n"
    r = served.request("POST", "/api/jobs", body=yaml, headers={"Content-Type": "application/yaml"})
    assert r.status == 201 and r.json()["name"] == "report"
    assert (tmp_path / "jobs" / "report.yaml").read_bytes() == yaml
    assert [j["name"] for j in served.get("/api/jobs").json()] == ["etl", "report"]
    r = served.request("POST", "/api/jobs", body=yaml, headers={"Content-Type": "application/yaml"})
    assert r.status == 409  # the name is taken: nothing is overwritten

    bad = b"config: {name: broken}\ntasks:\n  a: {command: 'echo a', dependencies: [nope]}\n  b: {retries: -1}\n"
    r = served.request("POST", "/api/jobs", body=bad, headers={"Content-Type": "application/yaml"})
    assert r.status == 422
    problems = r.json()["problems"]
    assert problems and all(p.startswith("request:") for p in problems)
    assert any(p.startswith("request:3:") and "nope" in p for p in problems), problems
    assert str(tmp_path) not in r.body.decode()  # the server's folders stay its own

    for name in ("../escaped", "/etc/passwd", "a/b", ".hidden", "nul\\u0000byte"):
        body = f'config: {{name: "{name}"}}\ntasks:\n  a: {{command: "echo a"}}\n'.encode()
        r = served.request("POST", "/api/jobs", body=body, headers={"Content-Type": "application/yaml"})
        assert r.status == 422, (name, r)
    assert sorted(os.listdir(tmp_path / "jobs")) == ["etl.yaml", "report.yaml"]
    assert not (tmp_path / "escaped.yaml").exists()

    r = served.request("POST", "/api/jobs", body=yaml, headers={"Content-Type": "application/json"})
    assert r.status == 415
    r = served.request("POST", "/api/jobs", body=b"#" * (2 * 1024 * 1024), headers={"Content-Type": "application/yaml"})
    assert r.status == 413


def test_a_run_started_retried_and_stopped_over_http(served: Served, tmp_path: Path) -> None:
    run = served.start("etl")
    assert served.post("/api/jobs/etl/runs").status == 409  # one live run per job
    wait_for(lambda: served.states(run)["check"] == "failed", 30, "check to fail")
    runs = served.get("/api/runs").json()
    assert runs[0]["run_id"] == run and runs[0]["live"] is True and runs[0]["kind"] == "detached"
    assert served.get("/api/runs?state=live&job=etl").json()[0]["run_id"] == run
    assert served.get("/api/runs?state=bogus").status == 400

    r = served.post(f"/api/runs/{run}/tasks/hold/retry")
    assert r.status == 409 and r.json()["state"] == "running"  # running: not retried
    assert served.post(f"/api/runs/{run}/tasks/nope/retry").status == 404
    assert served.post(f"/api/runs/{run}/pause").json() == {"paused": True}
    (tmp_path / "ok").touch()
    r = served.post(f"/api/runs/{run}/tasks/check/retry")
    assert r.status == 200 and r.json() == {"task": "check", "done": True, "state": "pending", "before": "failed"}
    assert served.states(run)["check"] == "pending"  # paused: it waits
    assert served.post(f"/api/runs/{run}/unpause").json() == {"paused": False}
    wait_for(lambda: served.states(run)["check"] == "succeeded", 30, "the retry to succeed")
    detail = served.run(run)
    assert detail["live"] is True and detail["tasks"]["check"]["attempts"] == 2

    r = served.get(f"/api/runs/{run}/tasks/check/logs?attempt=1")
    assert r.status == 200 and r.body == b"not yet\n"
    assert served.get(f"/api/runs/{run}/tasks/check/logs").body == b"checked\n"
    assert served.get(f"/api/runs/{run}/tasks/check/logs?attempt=3").status == 404
    assert served.get(f"/api/runs/{run}/tasks/check/logs?attempt=zero").status == 400
    r = served.get(f"/api/runs/{run}/tasks/extract/logs", headers={"Range": "bytes=6-11"})
    assert r.status == 206 and r.body == b"row 2\n" and r.headers["content-range"] == "bytes 6-11/30"
    r = served.get(f"/api/runs/{run}/tasks/extract/logs", headers={"Range": "bytes=100-200"})
    assert r.status == 416

    r = served.post(f"/api/runs/{run}/tasks/hold/abort")
    assert r.status == 200 and r.json()["state"] == "aborted"
    wait_for(lambda: not served.get("/api/runs?state=live").json(), 30, "the run to end")
    over = served.run(run)
    assert over["live"] is False and over["state"] == "stopped"
    assert served.post(f"/api/runs/{run}/stop").status == 409
    assert served.get("/api/runs/no-such-run").status == 404


def test_events_resume_from_last_event_id_without_loss_or_repeat(served: Served, tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "count.yaml", f"""
        config: {{name: count}}
        tasks:
          count: {{command: 'while [ ! -e {tmp_path}/go ]; do sleep 0.05; done; seq 1 3000'}}
          after: {{command: 'echo done', dependencies: [count]}}
    """)
    run = served.start("count")
    stream = Stream(served, f"/api/runs/{run}/events")
    first = stream.next()
    assert first is not None and first["event"] == "snapshot" and first["data"]["tasks"]["count"]["state"] == "running"
    (tmp_path / "go").touch()
    numbers: list[int] = []
    states: list[tuple[str, str]] = []
    ids: list[str] = [first["id"]]
    reconnects = 0
    drops = [500, 1700]
    ended = None
    while ended is None:
        event = stream.next()
        if event is None or (drops and len(numbers) == drops[0]):
            if event is not None:
                drops.pop(0)
            # Drop the connection mid-flood (twice) and come back with the last id seen.
            stream.close()
            reconnects += 1
            stream = Stream(served, f"/api/runs/{run}/events", last_id=ids[-1])
            continue
        ids.append(event["id"])
        if event["event"] == "output" and event["data"]["task"] == "count":
            numbers.append(int(event["data"]["line"]))
        elif event["event"] == "state":
            states.append((event["data"]["task"], event["data"]["state"]))
        elif event["event"] == "end":
            ended = event["data"]["exit_code"]
    stream.close()
    assert reconnects == 2
    assert numbers == list(range(1, 3001))
    assert states == [("count", "succeeded"), ("after", "running"), ("after", "succeeded")]
    assert ended == 0
    assert len(set(ids[:-1])) == len(ids) - 1  # every event its own id (the end repeats the last)

    # An id from nowhere: the stream says it cannot resume, with a fresh picture.
    again = Stream(served, f"/api/runs/{run}/events", last_id="feedbeef.12")
    event = again.next()
    again.close()
    assert event is not None and event["event"] in ("reset", "end")


def test_a_task_stream_reads_the_log_first_then_follows_and_resumes(served: Served, tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "lines.yaml", f"""
        config: {{name: lines}}
        tasks:
          talk: {{command: 'seq 1 400; while [ ! -e {tmp_path}/go ]; do sleep 0.05; done; seq 401 800'}}
    """)
    run = served.start("lines")
    wait_for(lambda: served.get(f"/api/runs/{run}/tasks/talk/logs").body.count(b"\n") == 400, 30, "the first lines")
    stream = Stream(served, f"/api/runs/{run}/tasks/talk/logs/stream")
    got: list[int] = []
    last = None
    while len(got) < 150:  # from the log on disk
        event = stream.next()
        assert event is not None and event["event"] == "output"
        got.append(int(event["data"]["line"]))
        last = event["id"]
    stream.close()
    stream = Stream(served, f"/api/runs/{run}/tasks/talk/logs/stream", last_id=last)
    (tmp_path / "go").touch()
    while True:
        event = stream.next()
        assert event is not None
        if event["event"] == "output":
            got.append(int(event["data"]["line"]))
        if event["event"] == "end":
            break
    stream.close()
    assert got == list(range(1, 801))
    # Over: the stream of a finished run is its log, then its end.
    over = Stream(served, f"/api/runs/{run}/tasks/talk/logs/stream")
    lines = []
    while (event := over.next()) is not None:
        lines.append(event)
    over.close()
    assert [int(e["data"]["line"]) for e in lines[:-1]] == list(range(1, 801)) and lines[-1]["event"] == "end"


def test_a_restarted_server_loses_no_run(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    write(jobs / "etl.yaml", JOB.format(tmp=tmp_path))
    first = Served(tmp_path, jobs)
    try:
        run = first.start("etl")
        pid = first.get("/api/runs").json()[0]["pid"]
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=15) == 0
        assert alive(pid)  # the run belongs to its runner, not to the server
    finally:
        first.close()
    second = Served(tmp_path, jobs)
    try:
        assert second.get("/api/runs").json()[0]["run_id"] == run
        stream = Stream(second, f"/api/runs/{run}/tasks/hold/logs/stream")
        (tmp_path / "go").touch()
        events = []
        while (event := stream.next()) is not None:
            events.append(event)
        stream.close()
        assert events[0]["event"] == "output" and events[0]["data"]["line"] == "released"
        assert events[-1]["event"] == "end" and events[-1]["data"] == {"exit_code": 1}  # check failed
    finally:
        second.close()


def test_the_token_file_is_made_private_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen([sys.executable, "-m", "jobflow_tui", "server", "--listen", "127.0.0.1:0", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert "serving 0 jobs on http://127.0.0.1:" in proc.stdout.readline()
        token_file = tmp_path / "config" / "jobflow-tui" / "token"
        assert f"token: {token_file} (new)" in proc.stdout.readline()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert len(token_file.read_text().strip()) >= 32
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        for f in (proc.stdout, proc.stderr):
            f.close() if f else None
    for args, message in ((["--listen", "nowhere"], "expected HOST:PORT"),
                          ([str(tmp_path / "missing.yaml")], "no such file"),
                          (["--token-file", str(tmp_path / "none")], "cannot read the token file")):
        r = subprocess.run([sys.executable, "-m", "jobflow_tui", "server", *args], capture_output=True, text=True,
                           env=env, timeout=60)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    write(tmp_path / "bad.yaml", "tasks:\n  a: {command: 'x', dependencies: [b]}\n")
    r = subprocess.run([sys.executable, "-m", "jobflow_tui", "server", str(tmp_path / "bad.yaml")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and f"{tmp_path / 'bad.yaml'}:2:" in r.stderr


def test_a_task_stream_resumes_across_a_server_restart_from_the_log(tmp_path: Path) -> None:
    """An output line's id says where it ends in the log: a new server (a new feed) goes on
    from there exactly."""
    jobs = tmp_path / "jobs"
    write(jobs / "two.yaml", f"""
        config: {{name: two}}
        tasks:
          talk: {{command: 'while [ ! -e {tmp_path}/one ]; do sleep 0.05; done; seq 1 300;
                           while [ ! -e {tmp_path}/two ]; do sleep 0.05; done; seq 301 600'}}
    """)
    first = Served(tmp_path, jobs)
    try:
        run = first.start("two")
        stream = Stream(first, f"/api/runs/{run}/tasks/talk/logs/stream")
        (tmp_path / "one").touch()
        got, last = [], None
        while len(got) < 150:
            event = stream.next()
            assert event is not None
            if event["event"] == "output":
                got.append(int(event["data"]["line"]))
                last = event["id"]
        stream.close()
    finally:
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(timeout=15)
        first.close()
    second = Served(tmp_path, jobs)
    try:
        stream = Stream(second, f"/api/runs/{run}/tasks/talk/logs/stream", last_id=last)
        while len(got) < 300:
            event = stream.next()
            assert event is not None and event["event"] == "output", event
            got.append(int(event["data"]["line"]))
        (tmp_path / "two").touch()
        while (event := stream.next()) is not None and event["event"] != "end":
            if event["event"] == "output":
                got.append(int(event["data"]["line"]))
        stream.close()
        assert got == list(range(1, 601))
    finally:
        (tmp_path / "two").touch()
        second.close()
