"""Dashboard responsiveness, measured in a real terminal (tmux) as an operator feels it.

    python bench/ui_bench.py [--exe jobflow-tui] [--out bench/results]

1. Key latency under a flood: a task prints as fast as it can for several seconds while
   `j`/`k` move the cursor; latency is the time from send-keys until capture-pane shows
   the newly selected task's name in the log title (capture itself costs a few ms).
2. Floods of 200,000 and 2,000,000 lines: lines per second reaching the log file, every
   line present, and the dashboard process's peak RSS (its tasks excluded).
3. First frame of a 10,000-task job: from typing the command in a shell to the first task
   row on screen.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import psutil

FLOOD = "python3 -c \"import sys; w = sys.stdout.write; [w(f'line {{i:07d}} ' + 'x' * 64 + '\\n') for i in range({n})]\""
TIMED_FLOOD = ("python3 -c \"import sys, time; w = sys.stdout.write; t = time.time() + {secs}; i = 0\n"
               "while time.time() < t:\n    [w(f'line {{j:07d}} ' + 'x' * 64 + '\\n') for j in range(i, i + 1000)]; i += 1000\"")


class Tmux:
    def __init__(self, cwd: Path, size=(120, 40)) -> None:
        self.socket = f"jobflow-bench-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", str(size[0]), "-y", str(size[1]),
                 "-c", str(cwd), "sh")
        time.sleep(0.3)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "b")

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "b", text, "Enter")

    def wait(self, text: str, timeout: float = 120) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if text in self.screen():
                return time.monotonic() - t0
            time.sleep(0.005)
        raise RuntimeError(f"{text!r} never appeared:\n{self.screen()}")

    def app_pid(self) -> int:
        shell = int(self.run("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for child in psutil.Process(shell).children():
                if "jobflow" in " ".join(child.cmdline()):
                    return child.pid
            time.sleep(0.01)
        raise RuntimeError("the dashboard did not start")

    def close(self, app: int | None = None) -> None:
        """Close the terminal; the dashboard must then be gone (SIGHUP), or this fails."""
        self.run("kill-server")
        if app is None:
            return
        try:
            psutil.Process(app).wait(timeout=15)
        except psutil.TimeoutExpired:
            psutil.Process(app).kill()
            raise RuntimeError(f"the dashboard (pid {app}) was still running 15 s after its terminal closed") from None
        except psutil.NoSuchProcess:
            pass


class PeakRSS(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)


def quit_app(t: Tmux) -> None:
    t.run("send-keys", "-t", "b", "q")
    time.sleep(0.3)
    if "abort them and quit?" in t.screen():
        t.run("send-keys", "-t", "b", "y")
    time.sleep(0.5)


def key_latency(exe: str, work: Path, secs: float = 12) -> dict:
    idle = "".join(f"  idle{i}: {{command: 'sleep 60'}}\n" for i in range(6))
    (work / "lat.yaml").write_text(f"tasks:\n  flood: {{command: {json.dumps(TIMED_FLOOD.format(secs=secs))}}}\n{idle}")
    t = Tmux(work)
    app = None
    try:
        t.type(f"{exe} lat.yaml")
        app = t.app_pid()
        t.wait("idle5")
        time.sleep(1.0)  # the flood is on
        names = ["flood"] + [f"idle{i}" for i in range(6)]
        pos, samples = 0, []
        deadline = time.monotonic() + secs - 2
        while time.monotonic() < deadline:
            step = 1 if pos < len(names) - 1 and (len(samples) // 6) % 2 == 0 else -1
            if pos + step < 0 or pos + step >= len(names):
                step = -step
            pos += step
            target = f" {names[pos]} attempt"
            t0 = time.monotonic()
            t.run("send-keys", "-t", "b", "j" if step > 0 else "k")
            while target not in t.screen():
                if time.monotonic() - t0 > 5:
                    raise RuntimeError(f"no change for {target!r}:\n{t.screen()}")
            samples.append((time.monotonic() - t0) * 1000)
            time.sleep(0.1)
        quit_app(t)
    finally:
        t.close(app)
    return {"presses": len(samples), "median_ms": round(statistics.median(samples), 1),
            "p90_ms": round(sorted(samples)[int(len(samples) * 0.9)], 1), "max_ms": round(max(samples), 1)}


def flood(exe: str, work: Path, n: int) -> dict:
    name = f"flood{n}"
    (work / f"{name}.yaml").write_text(f"config: {{name: {name}}}\ntasks:\n  flood: {{command: {json.dumps(FLOOD.format(n=n))}}}\n")
    t = Tmux(work)
    app = None
    try:
        t.type(f"{exe} {name}.yaml")
        app = t.app_pid()
        rss = PeakRSS(app)
        rss.start()
        t.wait("✓ flood succeeded", timeout=600)
        rss.stop = True
        quit_app(t)
    finally:
        t.close(app)
    cp = json.loads((work / ".jobflow" / name / "checkpoint.json").read_text())
    task = cp["tasks"]["flood"]
    log = work / ".jobflow" / name / task["logs"][-1]
    lines = sum(1 for _ in open(log, "rb"))

    secs = datetime.fromisoformat(task["finished_at"]).timestamp() - datetime.fromisoformat(task["started_at"]).timestamp()
    raw0 = time.monotonic()
    subprocess.run(f"{FLOOD.format(n=n)} > {work}/raw.log", shell=True, check=True)
    raw = time.monotonic() - raw0
    return {"lines": n, "lines_in_log": lines, "complete": lines == n, "seconds": round(secs, 2),
            "lines_per_s": int(n / secs), "raw_lines_per_s": int(n / raw), "peak_rss_mb": round(rss.peak / 1e6, 1)}


def first_frame(exe: str, work: Path, tasks: int = 10_000) -> dict:
    body = ["config: {name: big, max_concurrency: 4}", "tasks:", "  t00000: {command: 'sleep 60'}"]
    body += [f"  t{i:05d}: {{command: 'true', dependencies: [t00000]}}" for i in range(1, tasks)]
    (work / "big.yaml").write_text("\n".join(body) + "\n")
    t = Tmux(work)
    app = None
    try:
        t0 = time.monotonic()
        t.type(f"{exe} big.yaml")
        t.wait("t00000 running")
        seconds = time.monotonic() - t0
        app = t.app_pid()
        quit_app(t)
    finally:
        t.close(app)
    return {"tasks": tasks, "first_frame_s": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, Python {platform.python_version()}",
            "key_latency_under_flood": key_latency(a.exe, work),
            "flood_200k": flood(a.exe, work, 200_000),
            "flood_2m": flood(a.exe, work, 2_000_000),
        }
        # The floods' logs on disk first: their write-back would otherwise slow the
        # checkpoint write that comes before the first task starts.
        os.sync()
        result["first_frame_10k_tasks"] = first_frame(a.exe, work)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ui-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
