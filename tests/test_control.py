"""The control socket: several viewers of one run see the same changes and can act on it;
nobody else can reach it; a hostile or slow client never stops or slows the run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobflow_tui.control import place
from jobflow_tui.control.client import RemoteRun, request

from .conftest import PeakRSS, await_for, wait_for, write


def start_owner(tmp_path: Path, *args: str) -> subprocess.Popen:
    """A headless run of job.yaml, which serves its run on the control socket."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobflow_tui", str(tmp_path / "job.yaml"), "--headless", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def job_dir(tmp_path: Path) -> str:
    return str(tmp_path / ".jobflow" / "job")


def wait_served(tmp_path: Path) -> None:
    wait_for(lambda: os.path.exists(place.socket_path(job_dir(tmp_path))), 20, "the control socket")


def gate(tmp_path: Path, name: str) -> str:
    """A command that waits for the file `name` in the test's folder."""
    return f"while [ ! -e {tmp_path}/{name} ]; do sleep 0.05; done"


async def test_two_viewers_see_the_same_changes_and_act_for_each_other(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          first: {{command: '{gate(tmp_path, "go")}; echo first done; exit 3'}}
          second: {{command: 'echo second done', dependencies: [first]}}
          keep: {{command: '{gate(tmp_path, "end")}'}}
    """)
    owner = start_owner(tmp_path)
    try:
        wait_served(tmp_path)
        a, b = RemoteRun.fetch(job_dir(tmp_path)), RemoteRun.fetch(job_dir(tmp_path))
        seen: dict[str, list] = {"a": [], "b": []}
        a.subscribe(lambda e: seen["a"].append(e))
        b.subscribe(lambda e: seen["b"].append(e))
        await a.start()
        await b.start()
        assert a.tasks["first"].state == b.tasks["first"].state == "running"
        (tmp_path / "go").touch()
        await await_for(lambda: a.tasks["first"].state == b.tasks["first"].state == "failed", 20, "the failure")
        assert b.tasks["second"].state == "blocked"
        # Viewer a retries; both see it run again (the file is still there: it fails again,
        # but only after going through running).
        assert a.retry("first")
        await await_for(lambda: a.tasks["first"].attempts == b.tasks["first"].attempts == 2, 20, "the retry")

        def states(who: str) -> list[tuple[str, str]]:
            return [(e.task, e.state) for e in seen[who] if type(e).__name__ == "StateChanged"]

        await await_for(lambda: states("a") == states("b") and ("first", "failed") in states("a")[-3:], 20, "agreement")
        assert any(e.lines == ["first done"] for e in seen["b"] if type(e).__name__ == "Output")
        await a.close()
        await b.close()
    finally:
        (tmp_path / "end").touch()
        owner.wait(timeout=30)


def test_the_socket_is_only_its_users(tmp_path: Path) -> None:
    """A 0700 folder, a 0600 socket: another user (nobody) cannot connect."""
    write(tmp_path / "job.yaml", f"tasks:\n  wait: {{command: '{gate(tmp_path, 'go')}'}}\n")
    owner = start_owner(tmp_path)
    try:
        wait_served(tmp_path)
        path = place.socket_path(job_dir(tmp_path))
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        assert os.stat(path).st_mode & 0o777 == 0o600
        if os.geteuid() != 0:
            pytest.skip("connecting as another user needs root")
        code = ("import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n    s.connect(sys.argv[1]); s.sendall(b'{\"id\":1,\"op\":\"snapshot\"}\\n'); print(s.recv(100))\n"
                "except OSError as e:\n    print('refused', e.errno)\n")
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable  # one nobody may run
        r = subprocess.run([python, "-c", code, path], capture_output=True, text=True, timeout=20,
                           preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)), cwd="/")
        assert r.stdout.startswith("refused"), r.stdout + r.stderr
    finally:
        (tmp_path / "go").touch()
        owner.wait(timeout=30)


def test_hostile_and_slow_clients_never_stop_or_slow_the_run(tmp_path: Path) -> None:
    """Random bytes, a huge line, half a message, hundreds of connections, and a client that
    subscribes and never reads while a task floods: the run finishes as it would alone, and
    a well-behaved client is still answered."""
    write(tmp_path / "job.yaml", f"""
        tasks:
          flood: {{command: '{gate(tmp_path, "go")}; yes "a line of output to keep the socket busy" | head -n 300000'}}
          after: {{command: 'echo after', dependencies: [flood]}}
    """)
    owner = start_owner(tmp_path)
    path = place.socket_path(job_dir(tmp_path))
    rng = random.Random(3)
    idle = []
    try:
        wait_served(tmp_path)
        slow = socket.socket(socket.AF_UNIX)
        slow.connect(path)
        slow.sendall(b'{"id": 1, "op": "subscribe"}\n')  # and never reads
        (tmp_path / "go").touch()
        for i in range(300):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            try:
                s.connect(path)
                kind = i % 5
                if kind == 0:
                    s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))))
                elif kind == 1:
                    s.sendall(b"{" + b"x" * 200_000 + b"}\n")  # far past the request limit
                elif kind == 2:
                    s.sendall(b'{"id": 1, "op": "retr')  # half a message, then gone
                elif kind == 3:
                    s.sendall(b'{"id": "one", "op": ["stop"]}\n[1,2]\n"op"\n')
                else:
                    idle.append(s)  # connected, silent, kept open
                    continue
            except OSError:
                pass
            s.close()
        about = request(job_dir(tmp_path), "hello", timeout=10)  # still answers
        assert about["pid"] == owner.pid and about["kind"] == "headless"
        assert owner.wait(timeout=120) == 0, owner.stderr.read()
        slow.close()
    finally:
        for s in idle:
            s.close()
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    cp = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())
    assert {n: t["state"] for n, t in cp["tasks"].items()} == {"flood": "succeeded", "after": "succeeded"}
    assert not os.path.exists(path)  # the socket goes with its run


def test_actions_through_the_socket_say_what_became_of_the_task(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          slow: {{command: '{gate(tmp_path, "go")}'}}
          fails: {{command: 'exit 4'}}
          keep: {{command: '{gate(tmp_path, "end")}'}}
    """)
    owner = start_owner(tmp_path)  # `keep` holds the run open until the end
    try:
        wait_served(tmp_path)
        jd = job_dir(tmp_path)
        wait_for(lambda: request(jd, "snapshot")["tasks"]["fails"]["state"] == "failed", 20, "the failure")
        r = request(jd, "retry", task="slow")
        assert r["done"] is False and r["state"] == "running"
        r = request(jd, "abort", task="slow")
        assert r["done"] is True and r["before"] == "running" and r["state"] == "aborted"
        with pytest.raises(Exception, match="no task named"):
            request(jd, "retry", task="nope")
        assert request(jd, "pause")["paused"] is True
        assert request(jd, "unpause")["paused"] is False
        (tmp_path / "end").touch()
        owner.wait(timeout=30)
    finally:
        for gate_file in ("go", "end"):
            (tmp_path / gate_file).touch()
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_deep_state_dir_still_gets_a_socket(tmp_path: Path) -> None:
    """Unix socket paths hold 107 bytes; the socket's name does not grow with the state dir."""
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("f" * 60)
    write(tmp_path / "job.yaml", f"tasks:\n  wait: {{command: '{gate(tmp_path, 'go')}'}}\n")
    owner = start_owner(tmp_path, "--state-dir", str(deep))
    try:
        wait_for(lambda: os.path.exists(place.socket_path(str(deep / "job"))), 20, "the control socket")
        assert request(str(deep / "job"), "hello")["pid"] == owner.pid
    finally:
        (tmp_path / "go").touch()
        owner.wait(timeout=30)


def test_slow_viewer_is_dropped_not_waited_for(tmp_path: Path) -> None:
    """A subscriber that never reads has a bounded queue: the flood goes on at full speed and
    the runner's memory stays bounded."""
    write(tmp_path / "job.yaml", f"""
        tasks:
          flood: {{command: '{gate(tmp_path, "go")}; yes "some line of output, some line of output" | head -n 3000000'}}
    """)
    owner = start_owner(tmp_path)
    try:
        wait_served(tmp_path)
        slow = socket.socket(socket.AF_UNIX)
        slow.connect(place.socket_path(job_dir(tmp_path)))
        slow.sendall(b'{"id": 1, "op": "subscribe"}\n')
        peak = PeakRSS(owner.pid)
        (tmp_path / "go").touch()
        assert owner.wait(timeout=120) == 0
        assert 0 < peak.kb() < 150 * 1024, f"peak RSS {peak.kb() / 1024:.0f} MB"
        slow.close()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


async def test_a_viewer_sees_the_run_end(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  wait: {{command: '{gate(tmp_path, 'go')}; exit 5'}}\n")
    owner = start_owner(tmp_path)
    try:
        wait_served(tmp_path)
        viewer = RemoteRun.fetch(job_dir(tmp_path))
        await viewer.start()
        (tmp_path / "go").touch()
        assert viewer.ended is not None
        assert await asyncio.wait_for(viewer.ended, 30) == 1
        assert viewer.tasks["wait"].state == "failed" and viewer.tasks["wait"].exit_code == 5
    finally:
        owner.wait(timeout=30)


def test_a_viewer_killed_never_touches_the_run(tmp_path: Path) -> None:
    """kill -9 of a subscribed viewer in the middle of the run: the run goes on and ends
    as it would have."""
    import signal

    write(tmp_path / "job.yaml", f"""
        tasks:
          ticks: {{command: 'i=0; while [ ! -e {tmp_path}/go ]; do i=$((i+1)); echo tick $i; sleep 0.05; done'}}
          after: {{command: 'echo after', dependencies: [ticks]}}
    """)
    owner = start_owner(tmp_path)
    viewer = None
    try:
        wait_served(tmp_path)
        code = ("import asyncio, sys\n"
                "from jobflow_tui.control.client import RemoteRun\n"
                "async def main():\n"
                "    r = RemoteRun.fetch(sys.argv[1]); r.subscribe(lambda e: print(type(e).__name__, flush=True))\n"
                "    await r.start(); await asyncio.sleep(300)\n"
                "asyncio.run(main())\n")
        viewer = subprocess.Popen([sys.executable, "-c", code, job_dir(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert viewer.stdout is not None
        assert viewer.stdout.readline().strip() == "Output"  # it follows the run live
        viewer.send_signal(signal.SIGKILL)
        viewer.wait()
        (tmp_path / "go").touch()
        assert owner.wait(timeout=60) == 0
    finally:
        if viewer is not None and viewer.poll() is None:
            viewer.kill()
            viewer.wait()
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    cp = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())
    assert {n: t["state"] for n, t in cp["tasks"].items()} == {"ticks": "succeeded", "after": "succeeded"}
