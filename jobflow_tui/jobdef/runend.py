"""What a run does at its ends, from `config`: how many past run folders it keeps
(`retention`) and the commands it runs when it ends (`on_success`, `on_failure`, `on_exit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUN_END_KEYS = ("retention", "on_success", "on_failure", "on_exit")


@dataclass
class Retention:
    """Past run folders to keep: at most `runs` of them, none older than `days` (None: no limit)."""

    runs: int | None = None
    days: float | None = None


@dataclass
class RunEnd:
    retention: Retention = field(default_factory=Retention)
    hooks: dict[str, str | list[str]] = field(default_factory=dict)  # on_success/on_failure/on_exit -> command


def parse_run_end(r: Any, config: dict) -> RunEnd:
    """`config.retention` and the `on_*` commands, every mistake located through `r`."""
    out = RunEnd()
    ret = config.get("retention")
    if ret is not None:
        if not isinstance(ret, dict) or not set(ret) <= {"runs", "days"}:
            r.error(("config", "retention"), "'config.retention' is a mapping with 'runs' (how many run folders "
                    "to keep) and/or 'days' (how old they may get)")
        else:
            runs, days = ret.get("runs"), ret.get("days")
            if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
                r.error(("config", "retention", "runs"), "'runs' must be a whole number of at least 1")
            else:
                out.retention.runs = runs
            if days is not None and (not isinstance(days, (int, float)) or isinstance(days, bool) or days <= 0):
                r.error(("config", "retention", "days"), "'days' must be a number above 0")
            else:
                out.retention.days = days
    for key in ("on_success", "on_failure", "on_exit"):
        cmd = config.get(key)
        if cmd is None:
            continue
        if isinstance(cmd, str) and cmd.strip() and "\0" not in cmd:
            out.hooks[key] = cmd
        elif isinstance(cmd, list) and cmd and all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                                                   and "\0" not in str(a) for a in cmd):
            out.hooks[key] = [str(a) for a in cmd]
        else:
            r.error(("config", key), f"'{key}' must be a command: a string (run by the shell) or a list of arguments")
    return out
