"""1 GiB of task output through jobflow-tui, beside the same command writing into a file.

    python bench/flood_bench.py [--size 1GiB] [--rounds 3] [--timeout 300]
                                [--variants baseline,headless,headless-file,dashboard]
                                [--exe jobflow-tui] [--tmp DIR] [--out bench/results]

The producer is `yes BLOCK 2>/dev/null | head -c SIZE`, BLOCK being ten distinct log lines
of 97-106 bytes (1024 bytes together, so a SIZE that is a multiple of 1 KiB ends on a
whole line).
Per round, in this order, each run timed from its start:

- baseline: `sh -c 'PRODUCER > FILE'`, the file in the temp folder; until sh is reaped.
- headless: `jobflow-tui JOB.yaml --headless --state-dir DIR`, stdout to /dev/null, a job of
  one task running the producer; until the runner is reaped.
- headless-file: the same with the runner's stdout (`flood | line` for every line) into a
  file in the temp folder.
- dashboard: `jobflow-tui JOB.yaml --state-dir DIR` typed into a shell in tmux at 120x40;
  until the task list shows `✓ flood succeeded` (capture-pane every 0.1 s). The moment the
  checkpoint records it (polled every 20 ms) is kept too. Then `q` (and `y` if asked).

Peak RSS is VmHWM from /proc/PID/status of the runner or dashboard process itself (its
tasks excluded), read every 10 ms until the process is gone; for the headless runner, which this script
starts itself, wait4's ru_maxrss is kept beside it. A run is
a failed measurement if it times out, exits non-zero, the task does not end `succeeded`,
the log (baseline: the file) on disk is not exactly SIZE bytes, or a process it started is
still there 5 s after it ended (such processes are killed and named). Every run's files are
deleted and the disk synced (untimed) before the next one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

LINES = [
    "2026-11-22T02:00:01.104Z INFO  extract.orders fetched page 1184/5120: 500 rows in 84.2 ms cursor=9f3a61c0",
    "2026-11-22T02:00:01.188Z DEBUG extract.orders upsert batch=48213 rows=500 inserted=497 updated=3",
    "2026-11-22T02:00:01.190Z INFO  http.client GET /api/v2/orders?page=1185&limit=500 -> 200 (41212 B)",
    "2026-11-22T02:00:01.243Z WARN  extract.orders slow response from orders-db-2 (212 ms > 200 ms), retrying",
    "2026-11-22T02:00:01.251Z INFO  transform normalised 500 rows: 12 currency conversions, 0 nulls dropped",
    "2026-11-22T02:00:01.257Z DEBUG pool connections active=4 idle=12 waiting=0 max=16 created=37 wait_ms=0.4",
    "2026-11-22T02:00:01.302Z INFO  load.warehouse COPY 500 rows into staging.orders_20261122 in 44.9 ms",
    "2026-11-22T02:00:01.309Z DEBUG metrics rows_total=592000 bytes_total=48822016 rate=14203.7/s eta=0:02:36",
    '2026-11-22T02:00:01.311Z ERROR extract.orders row 5920113: invalid created_at "2026-13-01", kept null',
    "2026-11-22T02:00:01.320Z INFO  checkpoint saved cursor=9f3a61c0 page=1185 rows_total=592500 lag_ms=13",
]
BLOCK = "".join(line + "\n" for line in LINES)
assert len(BLOCK.encode()) == 1024

VARIANTS = ("baseline", "headless", "headless-file", "dashboard")
TARGET_RATIO = 1.2  # wall time, x the producer writing into a file
TARGET_RSS_MB = 100  # peak RSS of the runner / the dashboard
JOB = "flood"  # the job's and the task's name
MARK = "JOBFLOW_FLOOD_BENCH"  # in the environment of everything this script starts
UNITS = {"": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20, "mb": 10**6,
         "g": 2**30, "gib": 2**30, "gb": 10**9}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 100M, 500MB, 1048576)")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def producer(size: int) -> str:
    # 2>/dev/null: where SIGPIPE is ignored, yes says "Broken pipe" when head is done, and
    # that line would land in the task's log (stdout and stderr share it).
    return f"yes {shlex.quote(BLOCK[:-1])} 2>/dev/null | head -c {size}"


def vm_hwm(pid: int) -> int | None:
    """VmHWM of `pid` in bytes; None once it has exited (a zombie has no memory map)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakRSS(threading.Thread):
    """Reads VmHWM every 10 ms until the process is gone (or `done` is set)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            hwm = vm_hwm(self.pid)
            if hwm is None:
                return
            self.peak = max(self.peak, hwm)
            self.done.wait(0.01)

    def finish(self) -> float:
        self.done.set()
        self.join(5)
        return mb(self.peak)


def mb(n: float) -> float:
    return round(n / 1e6, 1)


class Child:
    """A process this script starts, reaped by a thread with wait4 (exact end time and
    ru_maxrss), killed on timeout."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, stdout, stderr) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=stderr, start_new_session=True)
        self.rss = PeakRSS(self.proc.pid)
        self.rss.start()
        self.seconds: float | None = None
        self.maxrss = 0
        self._reaper = threading.Thread(target=self._reap, daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.seconds = time.monotonic() - self.t0
        self.maxrss = usage.ru_maxrss * 1024
        self.proc.returncode = os.waitstatus_to_exitcode(status)

    def wait(self, timeout: float) -> bool:
        """True if it ended by itself within `timeout`; otherwise SIGTERM, then SIGKILL."""
        self._reaper.join(timeout)
        if not self._reaper.is_alive():
            return True
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self._reaper.join(grace)
            if not self._reaper.is_alive():
                break
        return False


class Tmux:
    def __init__(self, cwd: Path, env: dict[str, str], size=(120, 40)) -> None:
        self.socket = f"jobflow-flood-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", str(size[0]), "-y", str(size[1]),
                 "-c", str(cwd), "sh")
        time.sleep(0.3)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "b")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "b", *keys)

    def app_pid(self, timeout: float = 30) -> int | None:
        shell = int(self.run("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for child in psutil.Process(shell).children():
                    if "jobflow" in " ".join(child.cmdline()):
                        return child.pid
            except psutil.Error:
                pass
            time.sleep(0.005)
        return None

    def close(self) -> None:
        self.run("kill-server")


def ours(root: Path, token: str) -> list[psutil.Process]:
    """Processes started by this script (directly or not) that are still there."""
    found = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        if p.pid == os.getpid():
            continue
        env = p.info["environ"] or {}
        if env.get(MARK) == token or str(root) in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def reap_leftovers(root: Path, token: str) -> list[str]:
    """Kill what is still there 5 s after a run ended (a closing terminal takes a moment)."""
    _, left = psutil.wait_procs(ours(root, token), timeout=5)
    names = []
    for p in left:
        try:
            names.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    return names


def write_job(work: Path, size: int) -> Path:
    job = work / f"{JOB}.yaml"
    job.write_text(f"config: {{name: {JOB}}}\ntasks:\n  {JOB}: {{command: {json.dumps(producer(size))}}}\n")
    return job


def check_log(state: Path, size: int) -> tuple[str | None, int | None, str | None]:
    """(task state, bytes of its last log, error)"""
    try:
        cp = json.loads((state / JOB / "checkpoint.json").read_text())
        task = cp["tasks"][JOB]
        log = state / JOB / task["logs"][-1]
        got = log.stat().st_size
    except (OSError, ValueError, KeyError, IndexError) as e:
        return None, None, f"no checkpoint or log: {e}"
    if task.get("state") != "succeeded":
        return task.get("state"), got, f"task ended {task.get('state')}"
    if got != size:
        return task["state"], got, f"log has {got} bytes, expected {size}"
    return task["state"], got, None


def run_baseline(work: Path, size: int, env: dict[str, str], timeout: float) -> dict:
    out = work / "baseline.log"
    err = work / "stderr.txt"
    with open(err, "wb") as e:
        c = Child(["/bin/sh", "-c", f"{producer(size)} > {shlex.quote(str(out))}"], env, work,
                  subprocess.DEVNULL, e)
        ended = c.wait(timeout)
    got = out.stat().st_size if out.exists() else 0
    r = {"wall_s": round(c.seconds, 3) if ended else None, "peak_rss_mb": c.rss.finish(), "bytes": got}
    if not ended:
        r["error"] = f"timeout after {timeout:.0f} s"
    elif c.proc.returncode != 0:
        r["error"] = f"exit {c.proc.returncode}: {err.read_text(errors='replace')[-500:]}"
    elif got != size:
        r["error"] = f"file has {got} bytes, expected {size}"
    return r


def run_headless(exe: str, work: Path, size: int, env: dict[str, str], timeout: float, to_file: bool) -> dict:
    job, state = write_job(work, size), work / "state"
    out_path, err = work / "headless-stdout.txt", work / "stderr.txt"
    with open(out_path if to_file else os.devnull, "wb") as out, open(err, "wb") as e:
        c = Child([exe, str(job), "--headless", "--state-dir", str(state)], env, work, out, e)
        ended = c.wait(timeout)
    task_state, got, problem = check_log(state, size)
    r = {"wall_s": round(c.seconds, 3) if ended else None, "peak_rss_mb": c.rss.finish(),
         "maxrss_rusage_mb": mb(c.maxrss), "exit": c.proc.returncode, "task": task_state, "log_bytes": got}
    if to_file:
        r["stdout_bytes"] = out_path.stat().st_size
    if not ended:
        r["error"] = f"timeout after {timeout:.0f} s (then SIGTERM/SIGKILL)"
    elif c.proc.returncode != 0:
        r["error"] = f"exit {c.proc.returncode}: {err.read_text(errors='replace')[-500:]}"
    elif problem:
        r["error"] = problem
    return r


def run_dashboard(exe: str, work: Path, size: int, env: dict[str, str], timeout: float) -> dict:
    job, state = write_job(work, size), work / "state"
    cp_path = state / JOB / "checkpoint.json"
    r: dict = {"wall_s": None, "checkpoint_s": None, "peak_rss_mb": None}
    t = Tmux(work, env)
    rss = None
    try:
        t0 = time.monotonic()
        t.keys(f"{shlex.quote(exe)} {shlex.quote(str(job))} --state-dir {shlex.quote(str(state))}", "Enter")
        app = t.app_pid()
        if app is None:
            r["error"] = f"the dashboard did not start:\n{t.screen()}"
            return r
        rss = PeakRSS(app)
        rss.start()
        deadline = t0 + timeout
        last_mtime, next_screen, screen = 0, 0.0, ""
        while time.monotonic() < deadline and (r["wall_s"] is None or r["checkpoint_s"] is None):
            now = time.monotonic()
            if r["checkpoint_s"] is None:
                try:
                    mtime = cp_path.stat().st_mtime_ns
                    if mtime != last_mtime:
                        last_mtime = mtime
                        task_state = json.loads(cp_path.read_text())["tasks"][JOB].get("state")
                        if task_state == "succeeded":
                            r["checkpoint_s"] = round(now - t0, 3)
                        elif task_state in ("failed", "aborted", "blocked"):
                            r["error"] = f"task ended {task_state}"
                            break
                except (OSError, ValueError, KeyError):
                    pass
            if now >= next_screen and r["wall_s"] is None:
                screen = t.screen()
                if f"✓ {JOB} succeeded" in screen:
                    r["wall_s"] = round(now - t0, 3)
                next_screen = now + 0.1
            if vm_hwm(app) is None:
                r["error"] = f"the dashboard exited before the task was shown succeeded:\n{screen}"
                break
            time.sleep(0.02)
        else:
            if r["wall_s"] is None or r["checkpoint_s"] is None:
                r["error"] = f"timeout after {timeout:.0f} s:\n{t.screen()}"
        # Quit: q, and y if it asks (it does while the task still runs).
        q0 = time.monotonic()
        t.keys("q")
        while vm_hwm(app) is not None and time.monotonic() - q0 < 30:
            if "quit?" in t.screen():
                t.keys("y")
            time.sleep(0.1)
        if vm_hwm(app) is None:
            r["quit_s"] = round(time.monotonic() - q0, 2)
        else:
            r.setdefault("error", "the dashboard did not quit within 30 s of q")
    finally:
        t.close()  # SIGHUP to whatever is still in the terminal
        if rss is not None:
            try:
                psutil.Process(rss.pid).wait(15)
            except psutil.TimeoutExpired:
                psutil.Process(rss.pid).kill()
                r.setdefault("error", "the dashboard outlived its terminal by 15 s")
            except psutil.Error:
                pass
            r["peak_rss_mb"] = rss.finish()
    task_state, got, problem = check_log(state, size)
    r.update(task=task_state, log_bytes=got)
    if problem and "error" not in r:
        r["error"] = problem
    return r


def clean(work: Path) -> None:
    for p in work.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    os.sync()  # the next run must not pay for this one's write-back


def summary(rounds: list[dict], variants: list[str]) -> dict:
    out = {}
    for v in variants:
        runs = [r[v] for r in rounds]
        ok = [r for r in runs if "error" not in r]
        walls = [r["wall_s"] for r in ok]
        ratios = [r[v]["wall_s"] / r["baseline"]["wall_s"] for r in rounds
                  if "error" not in r[v] and "baseline" in r and "error" not in r["baseline"]]
        peaks = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")]
        s = {"ok": len(ok), "runs": len(runs),
             "median_s": round(statistics.median(walls), 3) if walls else None,
             "min_s": min(walls, default=None), "max_s": max(walls, default=None),
             "ratio": round(statistics.median(ratios), 2) if ratios else None,
             "peak_rss_mb": round(statistics.median(peaks), 1) if peaks else None,
             "peak_rss_max_mb": max(peaks, default=None)}
        if v != "baseline":
            s["ratio_met"] = s["ratio"] is not None and s["ratio"] <= TARGET_RATIO and len(ok) == len(runs)
            s["rss_met"] = s["peak_rss_max_mb"] is not None and s["peak_rss_max_mb"] < TARGET_RSS_MB
        if v == "dashboard":
            cps = [r["checkpoint_s"] for r in runs if r.get("checkpoint_s") is not None]
            s["checkpoint_median_s"] = round(statistics.median(cps), 3) if cps else None
        out[v] = s
    return out


def cell(x, fmt="{:.2f}") -> str:
    """A table cell: the number formatted, or "-"."""
    return "-" if x is None else fmt.format(x)


def met(x) -> str:
    """A target's cell: yes, NO, or "-" where it does not apply."""
    return "-" if x is None else ("yes" if x else "NO")


def save(result: dict, out: Path, stem: str) -> Path:
    """Write `result` as `out/STEM-DATE.json`, noting if jobflow_tui/ changed while it ran."""
    if (code := code_state()) != result["code"]:
        result["code_at_end"] = code
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}-{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(result: dict) -> str:
    f = cell
    rows = [("variant", "ok", "median s", "range s", "x baseline", f"<= {TARGET_RATIO}x",
             "peak RSS MB (max)", f"< {TARGET_RSS_MB} MB")]
    for v, s in result["summary"].items():
        rows.append((v, f"{s['ok']}/{s['runs']}", f(s["median_s"]), f"{f(s['min_s'])}-{f(s['max_s'])}",
                     f(s["ratio"]), met(s.get("ratio_met")),
                     f"{f(s['peak_rss_mb'], '{:.1f}')} ({f(s['peak_rss_max_mb'], '{:.1f}')})", met(s.get("rss_met"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if (d := result["summary"].get("dashboard")) and d["checkpoint_median_s"] is not None:
        lines.append(f"dashboard: the checkpoint recorded the task succeeded at median {d['checkpoint_median_s']:.2f} s")
    failures = [f"round {i + 1} {v}: {r[v]['error'].splitlines()[0]}"
                for i, r in enumerate(result["rounds"]) for v in r if "error" in r[v]]
    return "\n".join(lines + (["failed measurements:"] + ["  " + x for x in failures] if failures else []))


def code_state() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--", "jobflow_tui"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" with uncommitted changes in jobflow_tui/" if dirty else "")


def fs_type(path: Path) -> str:
    best = ("", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        mount, kind = line.split()[1:3]
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best[0]):
            best = (mount, kind)
    return best[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=2**30,
                    help="bytes the task writes: 1GiB (default), 100M (= MiB), 500MB (= 10^6), ...")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300, help="seconds any one run may take")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="parent of the temp folder (default: /tmp)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "baseline" not in variants:
        variants.insert(0, "baseline")  # the ratios need it
    variants = [v for v in VARIANTS if v in variants]
    if "dashboard" in variants and not shutil.which("tmux"):
        ap.error("the dashboard variant needs tmux")

    root = Path(tempfile.mkdtemp(prefix="jobflow-flood-", dir=a.tmp))
    # At most: the log plus the runner's `flood | line` copy of it (headless-file), and slack.
    need = int(a.size * (2.2 if "headless-file" in variants else 1.1)) + 2**29
    free = shutil.disk_usage(root).free
    print(subprocess.run(["df", "-h", str(root)], capture_output=True, text=True).stdout.rstrip())
    if free < need:
        shutil.rmtree(root)
        raise SystemExit(f"{free / 2**30:.1f} GiB free in {a.tmp}, {need / 2**30:.1f} GiB needed")

    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLOW_")}
    env[MARK] = token
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
                   f"{platform.platform()}, Python {platform.python_version()}, temp on {fs_type(root)}",
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_state(),
        "exe": a.exe,
        "size_bytes": a.size, "lines": len(LINES) * a.size // 1024,
        "producer": producer(a.size),
        "rounds_asked": a.rounds, "timeout_s": a.timeout,
        "targets": {"ratio_to_baseline": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB},
        "rounds": [],
    }
    print(f"{a.size / 2**20:,.0f} MiB per run, {a.rounds} round(s) of {', '.join(variants)}; temp folder {root}",
          flush=True)
    try:
        for i in range(a.rounds):
            rnd: dict = {}
            for v in variants:
                work = root / v
                work.mkdir()
                os.sync()
                if v == "baseline":
                    r = run_baseline(work, a.size, env, a.timeout)
                elif v == "dashboard":
                    r = run_dashboard(a.exe, work, a.size, env, a.timeout)
                else:
                    r = run_headless(a.exe, work, a.size, env, a.timeout, to_file=v == "headless-file")
                if left := reap_leftovers(root, token):
                    r["left_behind"] = left
                    r.setdefault("error", f"{len(left)} process(es) left behind, killed: {'; '.join(left)}")
                clean(work)
                work.rmdir()
                rnd[v] = r
                shown = {k: x for k, x in r.items() if k != "error"}
                print(f"round {i + 1} {v}: {shown}" + (f"  FAILED: {r['error'][:2000]}" if "error" in r else ""),
                      flush=True)
            result["rounds"].append(rnd)
    finally:
        reap_leftovers(root, token)
        shutil.rmtree(root, ignore_errors=True)
    result["summary"] = summary(result["rounds"], variants)
    path = save(result, Path(a.out), "flood")
    print()
    print(f"{a.size / 2**20:,.0f} MiB of log lines, {len(result['rounds'])} round(s), medians; "
          f"code {result['code']}")
    print(table(result))
    print(f"wrote {path}")
    sys.exit(0 if all("error" not in r[v] for r in result["rounds"] for v in r) else 1)


if __name__ == "__main__":
    main()
