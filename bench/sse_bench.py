"""50 Server-Sent Events clients following a task that floods 200,000 lines, beside the same
run with nobody following it.

    python bench/sse_bench.py [--clients 50] [--lines 200000] [--rounds 3] [--timeout 300]
                              [--variants alone,clients-task,clients-events] [--client-procs 1]
                              [--exe jobflow-tui] [--tmp DIR] [--out bench/results]

The job has one task, `flood`: it waits for a gate file, then `seq` prints LINES distinct
numbered lines of 98 bytes (`line 0000001 ...`). Every run starts a detached runner the way
`--detach` and the server do (`jobflow-tui JOB.yaml --headless --runner-fd FD`), but as this
script's own child, so that wait4 gives its exact exit time and ru_maxrss. Then, per variant:

- alone: nobody follows the run (no server, no client).
- clients-task: `jobflow-tui server --listen 127.0.0.1:0 --token-file F DIR` and CLIENTS
  clients, each following `GET /api/runs/{run}/tasks/flood/logs/stream`.
- clients-events: the same, each following `GET /api/runs/{run}/events`.

The clients are aiohttp in one asyncio process (or --client-procs processes), on this same
machine: they compete with the runner, its task and the server for the CPU. When every
client has its response headers (and 0.5 s more), the gate is opened; the run's wall time
is from then until the runner is reaped. Peak RSS is VmHWM from /proc/PID/status of the
runner and of the server, read every 10 ms (and the runner's ru_maxrss beside it).

Each client checks the line numbers of the `output` events it gets: all LINES of them, in
order, none missing, none repeated, and that its stream ended with `end` (exit code 0). A
stream that closes without `end` is resumed with its Last-Event-ID, as a browser's
EventSource would; such reconnections are counted and shown. A client that misses or
repeats a line, or never gets `end`, is a failure of the product: the script says which
and exits 1. So it does if a run fails to measure: a timeout, a runner that exits non-zero,
a task that does not end `succeeded` or a log on disk that is not exactly the expected
bytes, or a process still there 5 s after the run (killed and named). Every process this
script starts is ended on the way out, Ctrl+C included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import select
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flood_bench import JOB, MARK, PeakRSS, cell, check_log, code_state, mb, met, reap_leftovers, save  # noqa: E402

VARIANTS = ("alone", "clients-task", "clients-events")
TARGET_RATIO = 1.10  # wall time and runner peak RSS, x the run nobody follows
# seq's format: one %-directive, the rest 83 bytes of an ordinary log line: 98 bytes a line
# with its newline. %07.0f (not %g) keeps the numbers whole and 7 digits wide.
TEXT = "2026-11-30T02:00:01.104Z INFO  extract.orders fetched page: 500 rows in 84.2 ms c=9f"
FORMAT = "line %07.0f " + TEXT
DIGITS = 7
NUMBER = re.compile(rb'"line":"line (\d{7}) ')
OTHER_EVENT = re.compile(rb"\nevent: (?!output\n)([^\n]*)\ndata: ([^\n]*)")
MAX_RECONNECTS = 20  # per client


def line_bytes(lines: int) -> int:
    """Bytes seq writes for `lines` lines (all the same length below 10,000,000)."""
    return lines * (len(FORMAT % 1) + 1)


def write_job(work: Path, lines: int, gate: Path) -> Path:
    command = f"while [ ! -e {gate} ]; do sleep 0.01; done; seq -f '{FORMAT}' 1 {lines}"
    job = work / f"{JOB}.yaml"
    job.write_text(f"config: {{name: {JOB}}}\ntasks:\n  {JOB}: {{command: {json.dumps(command)}}}\n")
    return job


# --- the clients (a child process: --worker) -------------------------------------------------


class Follower:
    """One SSE client: what it got, checked against 1..lines as it arrives."""

    def __init__(self, lines: int, expected: bytes) -> None:
        self.lines, self.expected = lines, expected
        self.next = 1  # the line number it expects next
        self.got = self.missing = self.repeated = 0
        self.unparsed = 0  # output events whose line is not one of ours
        self.no_id = 0  # events without an id
        self.kinds: dict[str, int] = {}
        self.last_id: str | None = None
        self.ended = False
        self.exit_code = None
        self.reconnects = 0
        self.status: int | None = None
        self.error: str | None = None
        self.bytes = 0
        self.first_line_t: float | None = None
        self.end_t: float | None = None
        self.first_anomaly: str | None = None

    def take(self, block: bytes) -> None:
        """Whole events (`block` ends with a blank line)."""
        block = b"\n" + block
        nums = NUMBER.findall(block)
        outputs = block.count(b"\nevent: output\n")
        self.unparsed += outputs - len(nums)
        self.no_id += block.count(b"\nevent: ") - block.count(b"\nid: ")
        if nums:
            if self.first_line_t is None:
                self.first_line_t = time.monotonic()
            k = self.next - 1
            if b"".join(nums) == self.expected[k * DIGITS:(k + len(nums)) * DIGITS]:
                self.next += len(nums)
                self.got += len(nums)
            else:
                for raw in nums:
                    self._one(int(raw))
        for m in OTHER_EVENT.finditer(block):
            kind = m.group(1).decode(errors="replace")
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if kind == "end":
                self.ended = True
                self.end_t = time.monotonic()
                try:
                    self.exit_code = json.loads(m.group(2)).get("exit_code")
                except ValueError:
                    self.exit_code = "?"
        i = block.rfind(b"\nid: ")
        if i >= 0:
            self.last_id = block[i + 5:block.index(b"\n", i + 1)].decode(errors="replace")

    def _one(self, n: int) -> None:
        self.got += 1
        if n == self.next:
            self.next += 1
            return
        if self.first_anomaly is None:
            self.first_anomaly = f"expected line {self.next}, got {n} (after {self.got - 1} lines)"
        if n < self.next:
            self.repeated += 1
        else:
            self.missing += n - self.next
            self.next = n + 1

    def result(self) -> dict:
        missing = self.missing + max(0, self.lines - (self.next - 1))
        r = {"status": self.status, "lines": self.got, "missing": missing, "repeated": self.repeated,
             "ended": self.ended, "exit_code": self.exit_code, "reconnects": self.reconnects,
             "kinds": self.kinds, "bytes": self.bytes, "first_line_t": self.first_line_t, "end_t": self.end_t}
        for k in ("unparsed", "no_id"):
            if getattr(self, k):
                r[k] = getattr(self, k)
        if self.first_anomaly:
            r["first_anomaly"] = self.first_anomaly
        if self.error:
            r["error"] = self.error
        problems = []
        if self.error:
            problems.append(self.error)
        if missing or self.repeated or self.unparsed:
            problems.append(f"{missing} missing, {self.repeated} repeated, {self.unparsed} unparsed lines"
                            + (f" ({self.first_anomaly})" if self.first_anomaly else ""))
        if not self.ended:
            problems.append("no end")
        elif self.exit_code != 0:
            problems.append(f"end with exit code {self.exit_code}")
        r["complete"] = not problems
        if problems:
            r["problem"] = "; ".join(problems)
        return r


async def follow_one(session, url: str, token: str, f: Follower, connected: asyncio.Event) -> None:
    import aiohttp

    while True:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if f.last_id is not None:
            headers["Last-Event-ID"] = f.last_id
        try:
            async with session.get(url, headers=headers) as resp:
                f.status = resp.status
                connected.set()
                if resp.status != 200:
                    f.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    return
                pending = b""
                async for chunk in resp.content.iter_any():
                    f.bytes += len(chunk)
                    pending += chunk
                    cut = pending.rfind(b"\n\n")
                    if cut >= 0:
                        f.take(pending[:cut + 2])
                        pending = pending[cut + 2:]
                if pending.strip():
                    f.take(pending + b"\n\n")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            connected.set()
            if f.reconnects >= MAX_RECONNECTS:
                f.error = f"{type(e).__name__}: {e}"
                return
        if f.ended:
            return
        if f.reconnects >= MAX_RECONNECTS:
            f.error = f"no end after {MAX_RECONNECTS} reconnections"
            return
        f.reconnects += 1  # closed without `end`: resume like EventSource does
        await asyncio.sleep(0.05)


async def worker_main(url: str, token: str, clients: int, lines: int, timeout: float) -> dict:
    import aiohttp

    expected = b"".join(b"%07d" % i for i in range(1, lines + 1))
    followers = [Follower(lines, expected) for _ in range(clients)]
    connected = [asyncio.Event() for _ in range(clients)]
    conn = aiohttp.TCPConnector(limit=0, force_close=True)
    t = aiohttp.ClientTimeout(total=None, connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=conn, timeout=t, auto_decompress=False) as session:
        tasks = [asyncio.ensure_future(follow_one(session, url, token, f, c))
                 for f, c in zip(followers, connected, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 60)
        print("ready", flush=True)
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for f, task in zip(followers, tasks, strict=True):
            if task in pending:
                f.error = f"still streaming after {timeout:.0f} s"
            elif task.exception() is not None:
                f.error = f"client crashed: {task.exception()!r}"
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"clients": [f.result() for f in followers], "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "maxrss_mb": mb(ru.ru_maxrss * 1024)}


def worker(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    for name in ("url", "token-file"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--timeout", type=float, required=True)
    a = ap.parse_args(argv)
    token = Path(a.token_file).read_text().strip()
    try:
        out = asyncio.run(worker_main(a.url, token, a.clients, a.lines, a.timeout))
    except TimeoutError:
        print(json.dumps({"error": "the clients were not all connected within 60 s"}), flush=True)
        sys.exit(1)
    print(json.dumps(out), flush=True)


# --- the harness ------------------------------------------------------------------------------


class Runner:
    """A detached runner started as this script's child: `--runner-fd` says when its run started."""

    def __init__(self, exe: str, job: Path, env: dict[str, str], cwd: Path) -> None:
        read_end, write_end = os.pipe()
        self.seconds_at: float | None = None  # monotonic time it was reaped
        self.maxrss = 0
        self.cpu_s = 0.0
        self.code: int | None = None
        try:
            self.proc = subprocess.Popen([exe, str(job), "--headless", "--runner-fd", str(write_end)], env=env,
                                         cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=(write_end,))
        finally:
            os.close(write_end)
        self.rss = PeakRSS(self.proc.pid)
        self.rss.start()
        self._reaper = threading.Thread(target=self._reap, daemon=True)
        self._reaper.start()
        data = b""
        deadline = time.monotonic() + 60
        with os.fdopen(read_end, "rb") as f:
            while not data.endswith(b"\n") and time.monotonic() < deadline:
                if select.select([f], [], [], 0.2)[0]:
                    chunk = os.read(f.fileno(), 65536)
                    if not chunk:
                        break
                    data += chunk
        try:
            self.said = json.loads(data) if data else {"error": "the runner said nothing"}
        except ValueError:
            self.said = {"error": f"the runner said {data[:200]!r}"}

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.seconds_at = time.monotonic()
        self.maxrss = usage.ru_maxrss * 1024
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code

    def wait(self, timeout: float) -> bool:
        self._reaper.join(timeout)
        return not self._reaper.is_alive()

    def kill(self) -> None:
        """SIGTERM to its process group (it and its tasks), SIGKILL 10 s later."""
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if not self._reaper.is_alive():
                return
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass
            self._reaper.join(grace)


class Server:
    """`jobflow-tui server` on a free port, serving the folder of the job."""

    def __init__(self, exe: str, folder: Path, token_file: Path, env: dict[str, str], work: Path) -> None:
        self.out = work / "server-stdout.txt"
        self.err = work / "server-stderr.txt"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([exe, "server", "--listen", "127.0.0.1:0", "--token-file", str(token_file),
                                          str(folder)], env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True)
        self.rss = PeakRSS(self.proc.pid)
        self.rss.start()
        self.url: str | None = None
        self.exited_by_itself: int | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"serving \d+ jobs? on (http://\S+/)", self.out.read_text(errors="replace"))
            if m:
                self.url = m.group(1)
                break
            time.sleep(0.02)
        if self.url is None:
            raise RuntimeError(f"the server did not start: {self.err.read_text(errors='replace')[-500:]}")
        self.rss_at_start = mb(psutil.Process(self.proc.pid).memory_info().rss)

    def cpu_s(self) -> float:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return float("nan")

    def stop(self) -> float:
        """SIGTERM (SIGKILL 10 s later); its peak RSS in MB. `exited_by_itself` says if it
        was gone before (its exit code)."""
        if self.exited_by_itself is None and self.proc.poll() is not None:
            self.exited_by_itself = self.proc.returncode
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
                self.proc.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return self.rss.finish()


class Workers:
    """The client processes (this script with --worker)."""

    def __init__(self, procs: int, clients: int, url: str, token_file: Path, lines: int, timeout: float,
                 env: dict[str, str], work: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.errs: list[Path] = []
        share = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
        for i, n in enumerate(s for s in share if s):
            err = work / f"clients-{i}-stderr.txt"
            self.errs.append(err)
            with open(err, "wb") as e:
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--worker", "--url", url, "--token-file",
                     str(token_file), "--clients", str(n), "--lines", str(lines), "--timeout", str(timeout)],
                    env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=e))

    def ready(self, timeout: float) -> str | None:
        """None once every process said `ready`, else what went wrong."""
        for p, err in zip(self.procs, self.errs, strict=True):
            if not select.select([p.stdout], [], [], timeout)[0]:
                return "the clients did not connect in time"
            line = p.stdout.readline().decode(errors="replace").strip()
            if line != "ready":
                return f"the clients said {line[:300]!r}: {err.read_text(errors='replace')[-500:]}"
        return None

    def results(self, timeout: float) -> tuple[list[dict], list[dict]]:
        """(per client, per process)"""
        clients, procs = [], []
        deadline = time.monotonic() + timeout
        for p, err in zip(self.procs, self.errs, strict=True):
            left = max(0.0, deadline - time.monotonic())
            if not select.select([p.stdout], [], [], left)[0]:
                procs.append({"error": "no result in time"})
                continue
            line = p.stdout.readline()
            try:
                got = json.loads(line)
            except ValueError:
                procs.append({"error": f"no result: {err.read_text(errors='replace')[-500:]}"})
                continue
            if "error" in got:
                procs.append(got)
                continue
            clients += got.pop("clients")
            procs.append(got)
        return clients, procs

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()


def log_path(work: Path) -> Path | None:
    try:
        cp = json.loads((work / ".jobflow" / JOB / "checkpoint.json").read_text())
        return work / ".jobflow" / JOB / cp["tasks"][JOB]["logs"][-1]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def run_one(variant: str, a: argparse.Namespace, work: Path, env: dict[str, str],
            token_file: Path, live: dict) -> dict:
    gate = work / "gate"
    job = write_job(work, a.lines, gate)
    size = line_bytes(a.lines)
    r: dict = {"wall_s": None}
    runner = Runner(a.exe, job, env, work)
    live["runner"] = runner
    if "error" in runner.said:
        runner.kill()
        r["error"] = f"the runner did not start: {runner.said['error']}"
        return r
    run_id = runner.said["run_id"]
    server = workers = None
    try:
        if variant != "alone":
            server = live["server"] = Server(a.exe, work, token_file, env, work)
            r["server_rss_at_start_mb"] = server.rss_at_start
            path = (f"api/runs/{run_id}/events" if variant == "clients-events"
                    else f"api/runs/{run_id}/tasks/{JOB}/logs/stream")
            r["stream"] = "/" + path
            workers = live["workers"] = Workers(a.client_procs, a.clients, server.url + path, token_file, a.lines,
                                                a.timeout, env, work)
            if problem := workers.ready(90):
                r["error"] = problem
                return r
        time.sleep(a.settle)
        log = None
        deadline = time.monotonic() + 10
        while log is None and time.monotonic() < deadline:  # the task is running: its log is named
            log = log_path(work)
            if log is None:
                time.sleep(0.02)
        server_cpu0 = server.cpu_s() if server else None
        t_gate = time.monotonic()
        gate.touch()
        log_full_t = None
        end = t_gate + a.timeout
        while time.monotonic() < end and not runner.wait(0.01):
            if log_full_t is None and log is not None:
                try:
                    if log.stat().st_size >= size:
                        log_full_t = time.monotonic()
                except OSError:
                    pass
        if runner.seconds_at is None:
            r["error"] = f"timeout after {a.timeout:.0f} s (then SIGTERM/SIGKILL)"
            runner.kill()
        else:
            r["wall_s"] = round(runner.seconds_at - t_gate, 3)
        if log_full_t is not None:
            r["log_complete_s"] = round(log_full_t - t_gate, 3)
        r.update(runner_exit=runner.code, runner_peak_rss_mb=runner.rss.finish(),
                 runner_maxrss_rusage_mb=mb(runner.maxrss), runner_cpu_s=round(runner.cpu_s, 2))
        if workers is not None:
            clients, procs = workers.results(a.timeout + 30)
            r["client_procs"] = procs
            r["clients"] = clients
            ends = [c["end_t"] for c in clients if c.get("end_t")]
            if ends:
                r["last_client_end_s"] = round(max(ends) - t_gate, 3)
            r["clients_complete"] = sum(1 for c in clients if c.get("complete"))
            r["clients_total"] = a.clients
            r["reconnects"] = sum(c.get("reconnects", 0) for c in clients)
            r["lines_missing"] = sum(c.get("missing", 0) for c in clients)
            r["lines_repeated"] = sum(c.get("repeated", 0) for c in clients)
            r["clients_cpu_s"] = round(sum(p.get("cpu_s", 0) for p in procs), 2)
        if server is not None:
            r["server_cpu_s"] = round(server.cpu_s() - server_cpu0, 2)
            r["server_peak_rss_mb"] = server.stop()
            if server.exited_by_itself is not None:
                r["server_exited_by_itself"] = server.exited_by_itself
            if err := server.err.read_text(errors="replace").strip():
                r["server_stderr"] = err[-3000:]
    finally:
        if workers is not None:
            workers.kill()
        if server is not None:
            server.stop()
        runner.kill()
        live.clear()
    task_state, got, problem = check_log(work / ".jobflow", size)
    r.update(task=task_state, log_bytes=got)
    if "error" not in r:
        if runner.code != 0:
            r["error"] = f"runner exit {runner.code}"
        elif problem:
            r["error"] = problem
        elif workers is not None and (
            r.get("clients_complete") != a.clients or any("error" in p for p in r.get("client_procs", []))
        ):
            bad = [f"client {i + 1}: {c.get('problem')}" for i, c in enumerate(r["clients"]) if not c.get("complete")]
            bad += [f"client process: {p['error']}" for p in r["client_procs"] if "error" in p]
            r["error"] = (f"{a.clients - r['clients_complete']} of {a.clients} clients incomplete: "
                          + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
            r["product_failure"] = True
    return r


def summary(rounds: list[dict], variants: list[str]) -> dict:
    def med(xs):
        return round(statistics.median(xs), 3) if xs else None

    out = {}
    for v in variants:
        runs = [r[v] for r in rounds if v in r]
        ok = [x for x in runs if x.get("wall_s") is not None and "error" not in x]
        timed = [x for x in runs if x.get("wall_s") is not None]
        walls = [x["wall_s"] for x in timed]
        rss = [x["runner_peak_rss_mb"] for x in runs if x.get("runner_peak_rss_mb")]
        s = {"ok": len(ok), "runs": len(runs), "wall_median_s": med(walls), "wall_min_s": min(walls, default=None),
             "wall_max_s": max(walls, default=None), "runner_rss_median_mb": med(rss),
             "runner_rss_min_mb": min(rss, default=None), "runner_rss_max_mb": max(rss, default=None),
             "runner_cpu_median_s": med([x["runner_cpu_s"] for x in runs if "runner_cpu_s" in x])}
        if v != "alone":
            pairs = [(r[v], r["alone"]) for r in rounds if v in r and "alone" in r
                     and r[v].get("wall_s") and r["alone"].get("wall_s")]
            s["wall_ratio"] = med([x["wall_s"] / y["wall_s"] for x, y in pairs])
            s["rss_ratio"] = med([x["runner_peak_rss_mb"] / y["runner_peak_rss_mb"] for x, y in pairs
                                  if x.get("runner_peak_rss_mb") and y.get("runner_peak_rss_mb")])
            s["wall_met"] = s["wall_ratio"] is not None and s["wall_ratio"] <= TARGET_RATIO
            s["rss_met"] = s["rss_ratio"] is not None and s["rss_ratio"] <= TARGET_RATIO
            s["server_rss_median_mb"] = med([x["server_peak_rss_mb"] for x in runs if x.get("server_peak_rss_mb")])
            s["server_rss_max_mb"] = max((x["server_peak_rss_mb"] for x in runs if x.get("server_peak_rss_mb")),
                                         default=None)
            s["server_cpu_median_s"] = med([x["server_cpu_s"] for x in runs if "server_cpu_s" in x])
            s["clients_cpu_median_s"] = med([x["clients_cpu_s"] for x in runs if "clients_cpu_s" in x])
            s["last_client_end_median_s"] = med([x["last_client_end_s"] for x in runs if "last_client_end_s" in x])
            s["clients_complete"] = sum(x.get("clients_complete", 0) for x in runs)
            s["clients_total"] = sum(x.get("clients_total", 0) for x in runs)
            s["reconnects"] = sum(x.get("reconnects", 0) for x in runs)
            s["lines_missing"] = sum(x.get("lines_missing", 0) for x in runs)
            s["lines_repeated"] = sum(x.get("lines_repeated", 0) for x in runs)
        out[v] = s
    return out


def table(result: dict) -> str:
    f = cell
    rows = [("variant", "ok", "wall s (range)", "x alone", f"<= {TARGET_RATIO}x", "runner RSS MB (range)", "x alone",
             f"<= {TARGET_RATIO}x", "runner CPU s", "server RSS MB", "last client end s", "clients complete",
             "reconnects")]
    for v, s in result["summary"].items():
        rows.append((
            v, f"{s['ok']}/{s['runs']}", f"{f(s['wall_median_s'])} ({f(s['wall_min_s'])}-{f(s['wall_max_s'])})",
            f(s.get("wall_ratio")), met(s.get("wall_met")),
            f"{f(s['runner_rss_median_mb'], '{:.1f}')} ({f(s['runner_rss_min_mb'], '{:.1f}')}-"
            f"{f(s['runner_rss_max_mb'], '{:.1f}')})",
            f(s.get("rss_ratio")), met(s.get("rss_met")), f(s["runner_cpu_median_s"]),
            f(s.get("server_rss_median_mb"), "{:.1f}"), f(s.get("last_client_end_median_s")),
            f"{s['clients_complete']}/{s['clients_total']}" if "clients_total" in s else "-",
            str(s.get("reconnects", "-")),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    failures = [f"round {i + 1} {v}: {r[v]['error'].splitlines()[0]}"
                for i, r in enumerate(result["rounds"]) for v in r if "error" in r[v]]
    return "\n".join(lines + (["failed:"] + ["  " + x for x in failures] if failures else []))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50, help="SSE clients per run (default 50)")
    ap.add_argument("--lines", type=int, default=200_000, help="lines the task prints (default 200,000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300, help="seconds any one run may take")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
    ap.add_argument("--client-procs", type=int, default=1, help="processes the clients are shared among (default 1)")
    ap.add_argument("--settle", type=float, default=0.5, help="seconds between the clients connected and the gate")
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="parent of the temp folder (default: /tmp)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, runner.log, server stderr)")
    a = ap.parse_args()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "alone" not in variants:
        variants.insert(0, "alone")  # the ratios need it
    variants = [v for v in VARIANTS if v in variants]
    if not 1 <= a.lines < 10**DIGITS:
        ap.error(f"--lines: 1 to {10**DIGITS - 1}")
    if a.client_procs < 1 or a.clients < 1:
        ap.error("--clients and --client-procs: at least 1")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    root = Path(tempfile.mkdtemp(prefix="jobflow-sse-", dir=a.tmp))
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLOW_")}
    env[MARK] = token
    env["JOBFLOW_RUNTIME_DIR"] = str(root / "sockets")  # its own control sockets, apart from other runs
    token_file = root / "token"
    token_file.write_text(uuid.uuid4().hex + "\n")
    token_file.chmod(0o600)
    note = (f"the {a.clients} clients run in {a.client_procs} process(es) on this same machine "
            f"({os.cpu_count()} cores): they compete with the runner, its task and the server for the CPU")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "model": cpu_model(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30),
                    "platform": platform.platform(), "python": platform.python_version()},
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_state(),
        "exe": a.exe,
        "lines": a.lines, "line_bytes": len(FORMAT % 1) + 1, "log_bytes": line_bytes(a.lines),
        "command": f"seq -f '{FORMAT}' 1 {a.lines} (after the gate)",
        "clients": a.clients, "client_procs": a.client_procs, "note": note,
        "rounds_asked": a.rounds, "timeout_s": a.timeout, "settle_s": a.settle,
        "target_ratio": TARGET_RATIO,
        "rounds": [],
    }
    print(f"{a.lines:,} lines of {result['line_bytes']} bytes, {a.clients} clients, {a.rounds} round(s) of "
          f"{', '.join(variants)}; temp folder {root}\nnote: {note}", flush=True)
    live: dict = {}
    interrupted = False
    try:
        for i in range(a.rounds):
            rnd: dict = {}
            for v in variants:
                work = root / v
                work.mkdir()
                os.sync()
                try:
                    r = run_one(v, a, work, env, token_file, live)
                except RuntimeError as e:
                    r = {"wall_s": None, "error": str(e)}
                if left := reap_leftovers(root, token):
                    r["left_behind"] = left
                    r.setdefault("error", f"{len(left)} process(es) left behind, killed: {'; '.join(left)}")
                if a.keep:
                    work.rename(root / f"{v}-{i + 1}")
                else:
                    shutil.rmtree(work, ignore_errors=True)
                rnd[v] = r
                shown = {k: x for k, x in r.items() if k not in ("error", "clients", "client_procs", "server_stderr")}
                print(f"round {i + 1} {v}: {shown}" + (f"\n  FAILED: {r['error'][:2000]}" if "error" in r else ""),
                      flush=True)
            result["rounds"].append(rnd)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: ending every process started", file=sys.stderr, flush=True)
    finally:
        if w := live.get("workers"):
            w.kill()
        if s := live.get("server"):
            s.stop()
        if rn := live.get("runner"):
            rn.kill()
        reap_leftovers(root, token)
        if a.keep:
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if interrupted:
        sys.exit(130)
    result["summary"] = summary(result["rounds"], variants)
    path = save(result, Path(a.out), "sse")
    print()
    print(f"{a.lines:,} lines, {a.clients} clients, {len(result['rounds'])} round(s), medians; code {result['code']}; "
          f"load at start {result['load_at_start'][0]}")
    print(table(result))
    print(f"note: {note}")
    print(f"wrote {path}")
    product = [f"round {i + 1} {v}" for i, r in enumerate(result["rounds"]) for v in r if r[v].get("product_failure")]
    if product:
        print(f"PRODUCT FAILURE: clients missed, repeated or never ended lines in {', '.join(product)}")
    sys.exit(0 if all("error" not in r[v] for r in result["rounds"] for v in r) else 1)


if __name__ == "__main__":
    main()
