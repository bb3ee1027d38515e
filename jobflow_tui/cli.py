"""Command line: parse arguments, pick the dashboard or the headless runner, exit codes.

0 every task succeeded; 1 a task failed, was aborted or blocked; 2 invalid job file or
arguments (nothing ran); 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from . import __version__
from .jobfile import load_or_exit, state_dir_of

SUBCOMMANDS = ("validate", "graph", "status", "logs", "history")
LIVE = ("attach", "ps", "stop", "retry", "restart", "abort", "pause", "unpause")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB.yaml", help="the job file")
    p.add_argument(
        "--state-dir", metavar="DIR",
        help="where checkpoints and logs live (default: $JOBFLOW_STATE_DIR or .jobflow beside the job file)",
    )


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY made of letters, digits, _ . -: {text!r}")
    return key, value


def run_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="jobflow-tui",
        description="Run a DAG of jobs with a live terminal dashboard (or headless for cron/CI).",
        epilog="subcommands: validate JOB | graph JOB [--format text|dot|mermaid] | status JOB [--run ID] | "
        "logs JOB TASK [--attempt N] [--follow] [--run ID] | history JOB [--limit N] [--json] [--rebuild] | "
        "attach JOB | ps [--json] | stop JOB | "
        "retry|restart|abort JOB TASK... [--follow] | pause|unpause JOB   (each with a JOB takes --state-dir) | "
        "server [--listen HOST:PORT] [--token-file FILE] [JOB.yaml|DIR ...]",
    )
    p.add_argument("--version", action="version", version=f"jobflow-tui {__version__}")
    _common(p)
    p.add_argument("-r", "--resume", action="store_true", help="keep what succeeded last time, run the rest")
    p.add_argument("--headless", action="store_true", help="no dashboard: plain lines (automatic without a TTY)")
    p.add_argument("--max-concurrency", type=int, metavar="N", help="at most N tasks at once (0: no limit)")
    p.add_argument("-p", "--param", dest="params", action="append", type=_param, default=[],
                   metavar="KEY=VALUE", help="a run parameter: self.params[KEY], $JOBFLOW_PARAM_<KEY>")
    p.add_argument("--only", action="append", default=[], metavar="TASK",
                   help="run TASK and what it depends on (repeatable)")
    p.add_argument("--executor", metavar="WHERE",
                   help="where commands run: local, dask:local (a cluster for the run), dask://HOST:PORT "
                   "(default: config.executor)")
    p.add_argument("--detach", action="store_true",
                   help="run in the background, no terminal needed; prints the run id and how to attach")
    # The detached runner's own options (see control/detached.py), not for people.
    p.add_argument("--runner-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--after", type=int, help=argparse.SUPPRESS)
    p.add_argument("--restart-task", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--start-paused", action="store_true", help=argparse.SUPPRESS)
    return p


def sub_parser(cmd: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"jobflow-tui {cmd}")
    if cmd == "ps":
        p.add_argument("--json", action="store_true", help="a list of objects: job, path, run_id, pid, kind, "
                       "started_at, counts")
        return p
    _common(p)
    if cmd in ("retry", "restart", "abort"):
        p.add_argument("tasks", metavar="TASK", nargs="+")
        p.add_argument("--follow", action="store_true",
                       help="with no live run (a resumed run is started): print its output until it ends")
    if cmd == "graph":
        p.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")
    elif cmd == "status":
        p.add_argument("--json", action="store_true", help="print the checkpoint as JSON")
        p.add_argument("--run", metavar="ID", help="an earlier run (see `history`); default: the last")
    elif cmd == "logs":
        p.add_argument("task", metavar="TASK")
        p.add_argument("--attempt", type=int, metavar="N", help="which attempt (default: the last)")
        p.add_argument("-f", "--follow", action="store_true", help="keep printing while the attempt runs")
        p.add_argument("--run", metavar="ID", help="an earlier run (see `history`); default: the last")
    elif cmd == "history":
        p.add_argument("--limit", type=int, default=20, metavar="N", help="the newest N runs (default 20)")
        p.add_argument("--json", action="store_true", help="a list of objects, newest first")
        p.add_argument("--rebuild", action="store_true", help="remake the history index from the run folders")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        cmd = argv.pop(0)
        args = sub_parser(cmd).parse_args(argv)
        if cmd == "history":
            from .history_verbs import cmd_history

            return cmd_history(args)
        return {"validate": cmd_validate, "graph": cmd_graph, "status": cmd_status, "logs": cmd_logs}[cmd](args)
    if argv and argv[0] in LIVE:
        from . import verbs

        cmd = argv.pop(0)
        args = sub_parser(cmd).parse_args(argv)
        if cmd in ("retry", "restart", "abort"):
            return verbs.cmd_act(args, cmd)
        if cmd in ("pause", "unpause"):
            return verbs.cmd_pause(args, cmd)
        return {"attach": verbs.cmd_attach, "ps": verbs.cmd_ps, "stop": verbs.cmd_stop}[cmd](args)
    if argv and argv[0] == "server":
        from .server.main import parser, serve

        return serve(parser(_Parser).parse_args(argv[1:]))
    args = run_parser().parse_args(argv)
    return cmd_run(args)


def cmd_run(args) -> int:
    job = load_or_exit(args.job)
    unknown = [t for t in args.only if t not in job.tasks and t not in job.subflows]
    if unknown:
        print(f"jobflow-tui: --only: no task named {', '.join(map(repr, unknown))} in {args.job}", file=sys.stderr)
        return 2
    if args.executor is not None:
        from .jobdef.placement import ADDRESS

        if not ADDRESS.match(args.executor):
            print("jobflow-tui: --executor is local, dask:local or dask://HOST:PORT", file=sys.stderr)
            return 2
        job.executor = args.executor
    if args.max_concurrency is not None and args.max_concurrency < 0:
        print("jobflow-tui: --max-concurrency must be 0 (no limit) or more", file=sys.stderr)
        return 2
    if args.detach:
        return _detach(args, job)
    from .engine import Scheduler

    scheduler = Scheduler(
        job, state_dir=state_dir_of(args, job), max_concurrency=args.max_concurrency,
        params=dict(args.params), only=args.only or None, resume=args.resume, subreaper=True,
        handed_over=args.after is not None,
    )
    scheduler.paused = args.start_paused
    if args.runner_fd is not None:
        from .headless import run_detached

        return run_detached(scheduler, args.runner_fd, args.after, args.restart_task)
    from .launch import launch

    return launch(scheduler, headless=args.headless or None)


def _detach(args, job) -> int:
    """Start a detached runner and say how to reach it; exit at once."""
    from .control.detached import runner_argv, start_runner

    said = start_runner(runner_argv(job.path, state_dir=args.state_dir, resume=args.resume, params=args.params,
                                    only=args.only, max_concurrency=args.max_concurrency,
                                    executor=args.executor))
    if "error" in said:
        print(f"jobflow-tui: {said['error']}", file=sys.stderr)
        return 2
    print(f"run {said['run_id']} of job '{job.name}' started in the background (pid {said['pid']})\n"
          f"attach: jobflow-tui attach {args.job}", flush=True)
    return 0


def cmd_validate(args) -> int:
    job = load_or_exit(args.job)
    edges = sum(len(t.dependencies) for t in job.tasks.values())
    limit = job.max_concurrency or "no limit"
    print(f"{args.job}: OK: job '{job.name}', {len(job.tasks)} tasks, {edges} dependencies, max concurrency {limit}")
    width = max(len(n) for n in job.tasks)
    for name in job.order():
        t = job.tasks[name]
        what = f"task {t.python_class}" if t.python_class else (
            t.command if isinstance(t.command, str) else json.dumps(t.command))
        needs = f"  <- {', '.join(t.dependencies)}" if t.dependencies else ""
        print(f"  {name.ljust(width)}  {what.splitlines()[0] if what else ''}{needs}")
    return 0


def cmd_graph(args) -> int:
    from .graph import render

    job = load_or_exit(args.job)
    sys.stdout.write(render(job, args.format))
    return 0


def _read_state(args):
    """The job, its state folder and its last checkpoint; exits 1 or 2 when there is none."""
    from .engine import StateDir
    from .engine.checkpoint import CheckpointError, read_checkpoint

    job = load_or_exit(args.job)
    state = StateDir(state_dir_of(args, job), job.name)
    try:
        data = read_checkpoint(state.checkpoint_path, job.name)
    except CheckpointError as e:
        print(f"jobflow-tui: {e}", file=sys.stderr)
        sys.exit(2)
    if getattr(args, "run", None):
        from .history_verbs import checkpoint_of_run

        data = checkpoint_of_run(state.job_dir, args.run, data)
    if data is None:
        print(f"jobflow-tui: no run of job '{job.name}' recorded in {state.job_dir}", file=sys.stderr)
        sys.exit(1)
    return job, state, data


def cmd_status(args) -> int:
    from .format import format_exit
    from .sanitize import clean_line

    job, state, data = _read_state(args)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    live = state.runner_alive()
    print(f"job {data['job'].get('name')}  run {data.get('run_id')}  started {data.get('started_at')}  "
          f"updated {data.get('updated_at')}  {'runner active' if live else 'no runner active'}")
    rows = [("TASK", "STATE", "ATTEMPTS", "EXIT", "REASON")]
    for name, t in data["tasks"].items():
        attempts = f"{t.get('attempt', t.get('attempts', 0))}/{t.get('max_attempts', '?')}" if t.get("attempts") else "0"
        state = str(t.get("state"))
        if state == "running" and not live:
            state = "running (runner gone)"
        code = t.get("exit_code")
        rows.append((clean_line(name, False), state, attempts, format_exit(code if isinstance(code, int) else None),
                     clean_line(str(t.get("reason") or ""), False)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)).rstrip())
    states = [t.get("state") for t in data["tasks"].values()]
    return 0 if all(s == "succeeded" for s in states) else 1


def cmd_logs(args) -> int:
    from .sanitize import clean_line

    job, state, data = _read_state(args)
    t = data["tasks"].get(args.task)
    if t is None:
        print(f"jobflow-tui: no task named {args.task!r} in job '{job.name}'", file=sys.stderr)
        return 2
    logs = [p for p in t.get("logs") or [] if isinstance(p, str)]
    if not logs:
        print(f"jobflow-tui: task {args.task!r} has not run yet", file=sys.stderr)
        return 1
    n = args.attempt or len(logs)
    if not 1 <= n <= len(logs):
        print(f"jobflow-tui: task {args.task!r} has attempts 1 to {len(logs)}, not {n}", file=sys.stderr)
        return 2
    path = os.path.join(state.job_dir, logs[n - 1])
    from .journal import AttemptFiles

    attempt = AttemptFiles(path[: -len(".log")])
    tty = sys.stdout.isatty()
    from .engine.lines import LineSplitter

    splitter = LineSplitter()
    colour = tty and "NO_COLOR" not in os.environ

    def emit(chunk: bytes, final: bool = False) -> None:
        if not tty:
            sys.stdout.buffer.write(chunk)
            return
        lines = splitter.feed(chunk) + (splitter.flush() if final else [])
        sys.stdout.write("".join(clean_line(line, colour) + "\n" for line in lines))

    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(65536)
                if chunk:
                    emit(chunk)
                    continue
                if not args.follow or attempt.read_status() is not None or not state.runner_alive():
                    break
                sys.stdout.flush()
                time.sleep(0.2)
            emit(f.read(), final=True)
    except FileNotFoundError:
        print(f"jobflow-tui: the log {path} is gone", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    return 0


def entry() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # `jobflow-tui logs ... | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
