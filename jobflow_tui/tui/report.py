"""A failure report of one task: what an operator pastes into a ticket. Its command (or
Python class and parameters), exit, attempts, reason, folder, the names of its environment
(never the values: they may be secrets) and the last lines of its log."""

from __future__ import annotations

import json
import shlex
import time

from ..engine.run import Run
from ..format import format_duration, format_exit
from ..sanitize import clean_line
from .buffer import read_tail

REPORT_LINES = 50


def failure_report(run: Run, name: str, lines: int = REPORT_LINES) -> str:
    """The report as plain text (no colour, no control characters)."""
    t = run.tasks[name]
    d = t.definition
    out = [f"jobflow-tui report: {name}", ""]

    def fact(key: str, value: object) -> None:
        out.append(f"{key + ':':<10}{clean_line(str(value), False)}")

    fact("job", f"{run.job_name} ({run.job_path})")
    fact("run", run.run_id)
    fact("task", name)
    state = t.state + (f", exit {format_exit(t.exit_code)}" if t.exit_code is not None else "")
    fact("state", state)
    fact("attempt", f"{t.attempt} of {t.max_attempts} (attempts in this run: {t.attempts})")
    if t.started_at:
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t.started_at))
        fact("started", f"{started}, took {format_duration(t.duration)}")
    if t.reason:
        fact("reason", t.reason)
    command = d.get("command")
    if command is not None:
        fact("command", command if isinstance(command, str) else shlex.join(map(str, command)))
    elif d.get("task"):
        fact("class", d["task"])
        fact("params", json.dumps(d.get("parameters") or {}, sort_keys=True, default=str))
    if d.get("cwd"):
        fact("cwd", d["cwd"])
    if d.get("timeout"):
        fact("timeout", f"{d['timeout']}s")
    fact("env", ", ".join(d.get("env") or []) or "(none of its own)")
    if t.dependencies:
        fact("after", ", ".join(t.dependencies))
    if t.logs:
        fact("log", t.logs[-1])
        tail = read_tail(t.logs[-1], limit=lines).lines
        out += ["", f"--- last {len(tail)} lines of attempt {len(t.logs)} ---"]
        out += [clean_line(x, False) for x in tail]
    else:
        out += ["", "(it has not run: no log)"]
    return "\n".join(out) + "\n"
