"""The installed `jobflow-tui` in a real terminal (tmux), driven as an operator would:
keys in with send-keys, the screen read back with capture-pane."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from jobflow_tui.engine import StateDir

from .conftest import wait_for, write

EXE = shutil.which("jobflow-tui", path=os.path.dirname(sys.executable)) or shutil.which("jobflow-tui")
pytestmark = pytest.mark.skipif(not (shutil.which("tmux") and EXE), reason="needs tmux and the installed jobflow-tui")


class Tmux:
    """A private tmux server with one 80x24 window."""

    def __init__(self, cwd: Path, command: str, env: dict[str, str] | None = None, size=(80, 24)) -> None:
        self.socket = f"jobflow-test-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd
        extra = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", str(size[0]), "-y", str(size[1]),
                 f"cd {cwd} && env {extra} {command}; echo EXIT=$? > {cwd}/exit-code; sleep 60")
        self.run("set-option", "-g", "set-clipboard", "on")  # so a leaked OSC 52 would land in a buffer

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "main")

    def keys(self, *keys: str) -> None:
        for k in keys:
            self.run("send-keys", "-t", "main", k)
            # A key right after Escape would read as Alt+key, as in any terminal.
            time.sleep(0.4 if k == "Escape" else 0.05)

    def wait(self, *texts: str, timeout: float = 30) -> str:
        """Wait until every one of `texts` is on the screen at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{texts!r} never appeared together; the screen was:\n{self.screen()}")

    def exit_code(self, timeout: float = 30) -> int:
        path = self.cwd / "exit-code"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return int(path.read_text().strip().split("=")[1])
            time.sleep(0.1)
        raise AssertionError(f"the app did not exit; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux_factory():
    sessions: list[Tmux] = []

    def make(*args, **kw) -> Tmux:
        sessions.append(Tmux(*args, **kw))
        return sessions[-1]

    yield make
    for s in sessions:
        s.close()


def test_operator_session_tree_log_abort_retry_quit(tmp_path: Path, tmux_factory) -> None:
    write(tmp_path / "job.yaml", f"""
        config: {{name: e2e, max_concurrency: 4}}
        tasks:
          slow: {{command: 'echo slow is working; sleep 300'}}
          gate: {{command: 'test -f {tmp_path}/ok || {{ echo "gate closed"; exit 3; }}'}}
          after: {{command: 'echo after gate', dependencies: [gate]}}
    """)
    t = tmux_factory(tmp_path, f"{EXE} job.yaml", env={"TERM": "tmux-256color"})
    t.wait("✗ gate failed", "▶ slow running", "⊘ after blocked")
    t.wait("gate closed")  # the cursor went to the failure by itself; its log is shown
    t.keys("Enter")  # into the log pane, and back
    t.keys("Escape", "k")
    t.wait("slow is working")
    t.keys("a")  # abort slow
    t.wait("■ slow aborted")
    (tmp_path / "ok").touch()
    t.keys("j", "r")  # retry gate: it and its blocked downstream run
    t.wait("✓ after succeeded", "✓ gate succeeded")
    t.keys("q")  # nothing runs any more: quits at once
    assert t.exit_code() == 1  # slow was aborted
    assert not _sleepers(tmp_path)


def test_quit_while_running_asks_and_leaves_nothing_running(tmp_path: Path, tmux_factory) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  long: {command: 'echo up; sleep 300'}\n")
    t = tmux_factory(tmp_path, f"{EXE} job.yaml", env={"TERM": "screen", "NO_COLOR": "1"})
    t.wait("▶ long running")
    t.keys("q")
    t.wait("stop the run, or detach")
    t.keys("y")
    assert t.exit_code() == 1
    assert not _sleepers(tmp_path)


def test_pager_key_suspends_and_returns(tmp_path: Path, tmux_factory) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  t: {command: 'echo for the pager'}\n")
    pager = write(tmp_path / "pager.sh", f"#!/bin/sh\ncp \"$1\" {tmp_path}/paged\necho PAGER-RAN\nsleep 1\n")
    pager.chmod(0o755)
    t = tmux_factory(tmp_path, f"{EXE} job.yaml", env={"PAGER": str(pager)})
    t.wait("✓ t succeeded")
    t.keys("o")
    t.wait("PAGER-RAN")
    t.wait("✓ t succeeded")  # back in the dashboard
    assert (tmp_path / "paged").read_text() == "for the pager\n"
    t.keys("q")
    assert t.exit_code() == 0


def test_escape_sequences_in_output_never_reach_the_terminal(tmp_path: Path, tmux_factory) -> None:
    write(tmp_path / "job.yaml", r"""
        tasks:
          evil:
            command: 'printf "safe\033]0;PWNED-TITLE\007 \033]2;PWNED2\033\\ \033]52;c;UFdORUQtQ0xJUA==\007 \033]8;;http://evil.example\033\\link\033]8;;\033\\ \033[2J\033[H\302\2330;0H \033[?1049h \033P+q\033\\ done\n"; sleep 300'
    """)
    t = tmux_factory(tmp_path, f"{EXE} job.yaml")
    screen = t.wait("safe")
    assert "PWNED" not in screen
    line = next(x for x in screen.splitlines() if "safe" in x)
    assert "link" in line and "done" in line
    title = t.run("display-message", "-p", "-t", "main", "#{pane_title}")
    assert "PWNED" not in title
    assert "PWNED" not in t.run("list-buffers")  # OSC 52 did not set the clipboard
    t.keys("q")
    t.wait("stop the run, or detach")
    t.keys("y")
    assert t.exit_code() == 1


@pytest.mark.parametrize("how,code", [("hangup", 129), ("terminate", 143)])
def test_terminal_hangup_or_sigterm_ends_the_run_cleanly(tmp_path: Path, tmux_factory, how: str, code: int) -> None:
    import json
    import signal

    import psutil

    write(tmp_path / "job.yaml", f"config: {{on_hangup: stop}}\ntasks:\n  long: {{command: 'echo $$ > {tmp_path}/pid; sleep 300'}}\n")
    t = tmux_factory(tmp_path, f"{EXE} job.yaml")
    t.wait("▶ long running")
    pid_file = tmp_path / "pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), 20, "the task's pid")
    task_pid = int(pid_file.read_text())
    shell = int(t.run("display-message", "-p", "-t", "main", "#{pane_pid}").strip())
    app = next(p for p in psutil.Process(shell).children() if "jobflow" in " ".join(p.cmdline()))
    if how == "hangup":
        t.close()  # the terminal goes away, as when an SSH session drops
    else:
        app.send_signal(signal.SIGTERM)
        assert t.exit_code() == code
    app.wait(timeout=20)
    assert not psutil.pid_exists(task_pid) or psutil.Process(task_pid).status() == psutil.STATUS_ZOMBIE
    cp = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())
    assert cp["tasks"]["long"]["state"] == "aborted"


def test_a_terminal_that_vanishes_without_sighup_ends_the_run_cleanly(tmp_path: Path) -> None:
    """The dashboard on a pseudo-terminal that is not its controlling one (so closing it
    sends no SIGHUP): it must notice, save the run and leave, not spin on the dead tty."""
    import fcntl
    import json
    import pty
    import select
    import struct
    import termios

    import psutil

    write(tmp_path / "job.yaml", f"config: {{on_hangup: stop}}\ntasks:\n  long: {{command: 'echo $$ > {tmp_path}/pid; sleep 300'}}\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    app = subprocess.Popen([EXE, "job.yaml"], cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                           start_new_session=True, env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    try:
        seen, deadline = b"", time.monotonic() + 30
        pid_file = tmp_path / "pid"
        while not (pid_file.exists() and pid_file.read_text().endswith("\n")) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 65536)  # keep the terminal drained, as a real one is
        assert pid_file.exists(), seen[-2000:]
        task_pid = int(pid_file.read_text())  # written whole: the shell creates, then writes
    finally:
        os.close(master)  # the terminal goes away
        try:
            code = app.wait(timeout=20)
        finally:
            if app.poll() is None:  # it did not notice: do not leave it spinning
                app.kill()
                app.wait()
    assert code == 129
    assert not psutil.pid_exists(task_pid) or psutil.Process(task_pid).status() == psutil.STATUS_ZOMBIE
    cp = json.loads((tmp_path / ".jobflow" / "job" / "checkpoint.json").read_text())
    assert cp["tasks"]["long"]["state"] == "aborted"


def _sleepers(tmp_path: Path) -> list[int]:
    """This test's `sleep 300` processes that are still alive."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "sleep 300" in " ".join(p.info["cmdline"] or []) and p.environ().get("JOBFLOW_TEST_TMP") == str(tmp_path):
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p.pid)
        except psutil.Error:
            pass
    return found


def _comparable(cp: dict) -> dict:
    """What an undisturbed run and a handed-over one must agree on."""
    return {n: (t["state"], t["attempts"], t["attempt"], t["exit_code"]) for n, t in cp["tasks"].items()}


HANDED_OVER = """
tasks:
  long: {command: 'echo started >> starts; while [ ! -e go ]; do sleep 0.05; done; echo $$ >> ends'}
  flaky: {command: 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; test $n -ge 1', max_attempts: 3, retry_delay: 3}
  py: {task: WaitsForGo}
  after: {command: 'echo after', dependencies: [long, flaky, py]}
"""
WAITS_FOR_GO = """
import os, time
from jobflow_tui import Task, task

@task
class WaitsForGo(Task):
    def run(self):
        with open("py-starts", "a") as f:
            f.write("started\\n")
        while not os.path.exists("go"):
            time.sleep(0.05)
        return {"pid": os.getpid()}
"""


def test_hangup_hands_the_run_over_and_it_ends_as_if_undisturbed(tmp_path: Path, tmux_factory) -> None:
    """The SSH session drops (tmux sends SIGHUP): a detached runner takes the run over,
    adopting the running task, keeping the retry waiting out its delay; nothing runs
    twice, and the final checkpoint is that of a run nobody disturbed."""
    import json

    quiet = tmp_path / "quiet"
    write(quiet / "job.yaml", HANDED_OVER)
    write(quiet / "tasks" / "waits.py", WAITS_FOR_GO)
    write(tmp_path / "tasks" / "waits.py", WAITS_FOR_GO)
    (quiet / "go").touch()
    assert subprocess.run([EXE, "job.yaml", "--headless"], cwd=quiet, capture_output=True).returncode == 0
    undisturbed = json.loads((quiet / ".jobflow" / "job" / "checkpoint.json").read_text())

    write(tmp_path / "job.yaml", HANDED_OVER)
    t = tmux_factory(tmp_path, f"{EXE} job.yaml")
    t.wait("▶ long running", "↻ flaky retrying", "▶ py running")
    t.close()  # the terminal goes away: SIGHUP
    (tmp_path / "go").touch()
    cp_path = tmp_path / ".jobflow" / "job" / "checkpoint.json"
    wait_for(lambda: json.loads(cp_path.read_text())["tasks"]["after"]["state"] == "succeeded", 60,
             "the run to end under its detached runner")
    cp = json.loads(cp_path.read_text())
    assert _comparable(cp) == _comparable(undisturbed)
    assert (tmp_path / "starts").read_text() == "started\n"
    assert len((tmp_path / "ends").read_text().split()) == 1  # `$$` recorded once: never run twice
    assert (tmp_path / "count").read_text().strip() == "2"
    assert (tmp_path / "py-starts").read_text() == "started\n"  # the Python task too: adopted, not run again
    wait_for(lambda: not list((tmp_path / ".jobflow" / "job").glob("lock")) or not _runner_alive(tmp_path), 30,
             "the detached runner to leave")


def _runner_alive(tmp_path: Path) -> bool:
    return StateDir(str(tmp_path / ".jobflow"), "job").runner_alive()


def test_d_detaches_and_the_run_goes_on(tmp_path: Path, tmux_factory) -> None:
    import json

    write(tmp_path / "job.yaml", "tasks:\n  wait: {command: 'while [ ! -e go ]; do sleep 0.05; done; echo done'}\n")
    t = tmux_factory(tmp_path, f"{EXE} job.yaml")
    t.wait("▶ wait running")
    ps = json.loads(subprocess.run([EXE, "ps", "--json"], capture_output=True, text=True, timeout=30).stdout)
    ours = [r for r in ps if r["path"] == str(tmp_path / "job.yaml")]
    assert len(ours) == 1 and ours[0]["kind"] == "dashboard" and ours[0]["counts"] == {"running": 1}
    t.keys("q")
    t.wait("[y] stop the run", "[d] detach")
    t.keys("d")
    assert t.exit_code() == 0
    assert "detached" in t.screen() and "jobflow-tui attach" in t.screen()
    (tmp_path / "go").touch()
    cp_path = tmp_path / ".jobflow" / "job" / "checkpoint.json"
    wait_for(lambda: json.loads(cp_path.read_text())["tasks"]["wait"]["state"] == "succeeded", 60, "the run to end")
    wait_for(lambda: not _runner_alive(tmp_path), 30, "the detached runner to leave")


def test_attached_dashboards_show_live_output_and_act_for_each_other(tmp_path: Path, tmux_factory) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          ticks: {command: 'i=0; while [ ! -e go ]; do i=$((i+1)); echo tick $i; sleep 0.2; done'}
          gate: {command: 'test -e open'}
    """)
    r = subprocess.run([EXE, "job.yaml", "--detach"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    one = tmux_factory(tmp_path, f"{EXE} attach job.yaml", size=(100, 30))
    two = tmux_factory(tmp_path, f"{EXE} attach job.yaml", size=(100, 30))
    for t in (one, two):
        t.wait("▶ ticks running", "✗ gate failed")
        t.wait("tick 3")  # live output of the task under the cursor
    (tmp_path / "open").touch()
    one.keys("j", "r")  # retry the failed gate from the first viewer...
    two.wait("✓ gate succeeded")  # ...the second sees it run again and succeed
    one.keys("q")
    one.wait("[y] leave it running")
    one.keys("y")
    assert one.exit_code() == 0
    (tmp_path / "go").touch()
    two.wait("✓ ticks succeeded")
    two.wait("the run ended")
    two.keys("q")
    wait_for(lambda: not _runner_alive(tmp_path), 30, "the detached runner to leave")


def test_sigterm_to_an_attached_dashboard_leaves_the_run_running(tmp_path: Path, tmux_factory) -> None:
    """A viewer told to end (a service manager stopping it, say) is not the run's owner: it
    leaves, and the run goes on."""
    write(tmp_path / "job.yaml", "tasks:\n  wait: {command: 'while [ ! -e go ]; do sleep 0.1; done; echo went'}\n")
    r = subprocess.run([EXE, "job.yaml", "--detach"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    t = tmux_factory(tmp_path, f"{EXE} attach job.yaml", size=(100, 30))
    t.wait("▶ wait running")
    viewers = [p for p in psutil.process_iter(["cmdline", "cwd"])
               if p.info["cwd"] == str(tmp_path) and "attach" in (p.info["cmdline"] or [])]
    assert len(viewers) == 1
    viewers[0].send_signal(signal.SIGTERM)
    assert t.exit_code() == 128 + signal.SIGTERM
    assert _runner_alive(tmp_path)
    (tmp_path / "go").touch()
    wait_for(lambda: not _runner_alive(tmp_path), 30, "the run to end")
    status = subprocess.run([EXE, "status", "job.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "succeeded" in status.stdout
