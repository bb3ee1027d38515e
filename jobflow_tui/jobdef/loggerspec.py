"""`loggers:` as Flowmancer has it: logger names to `{logger: ClassName, parameters: {...}}`.
Only the shape is checked here; the classes are found and their parameters checked before
the run starts (`jobflow_tui.loggers.check`)."""

from __future__ import annotations

import difflib
from typing import Any

from .errors import type_name
from .model import LoggerSpec
from .yamlfile import Path


def logger_specs(r: Any, raw: Any) -> list[LoggerSpec]:
    """`loggers:` as in Flowmancer: names to `{logger: ClassName, parameters: {...}}` (the classes are
    found and their parameters checked when the run starts)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        r.error(("loggers",), f"'loggers' must be a mapping of logger names to {{logger: ClassName}}, not {type_name(raw)}")
        return []
    out: list[LoggerSpec] = []
    for name, spec in raw.items():
        p: Path = ("loggers", name)
        cls = spec.get("logger") if isinstance(spec, dict) else None
        if not isinstance(cls, str) or not cls.strip():
            at = p + ("logger",) if isinstance(spec, dict) and "logger" in spec else p
            r.error(at, f"logger '{name}' needs 'logger: ClassName' (e.g. FileLogger), and 'parameters' if it takes any")
            continue
        for k in spec:
            if k not in ("logger", "parameters"):
                close = difflib.get_close_matches(str(k), ["logger", "parameters"], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                r.error(p + (k, "<key>"), f"unknown logger key '{k}'{hint}")
        params = spec.get("parameters")
        if params is not None and not isinstance(params, dict):
            r.error(p + ("parameters",), f"'parameters' must be a mapping, not {type_name(params)}")
        params = params if isinstance(params, dict) else {}
        # Located at the entry (its first line), which the reader keeps after parsing: the `logger:`
        # value itself would mean parsing the whole file again.
        out.append(LoggerSpec(str(name), cls.strip(), params, r.at(p)))
    return out
