"""Loggers in real runs: the runner feeds them, a broken or slow one costs the run nothing
and is reported at its end, and a job whose logger cannot be made runs nothing."""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import cli, write

BAD = '''
import asyncio, time
from jobflow_tui.loggers import Logger, logger

@logger
class Raises(Logger):
    async def update(self, evt):
        raise ValueError("no such table")

@logger
class Sleeps(Logger):
    async def update(self, evt):
        await asyncio.sleep(5)

@logger
class Blocks(Logger):
    async def update(self, evt):
        time.sleep(5)
'''


def test_a_raising_and_two_slow_loggers_cost_the_run_nothing_and_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "loggers" / "bad.py", BAD)
    tasks = "".join(f"  t{i}: {{command: 'seq 1 200', dependencies: [t{i - 1}]}}\n" if i else "  t0: {command: 'seq 1 200'}\n"
                    for i in range(10))
    write(tmp_path / "job.yaml", "loggers:\n  broken: {logger: Raises}\n  slow: {logger: Sleeps}\n"
          f"  stuck: {{logger: Blocks}}\n  file: {{logger: JsonLinesLogger, parameters: {{path: all.jsonl}}}}\ntasks:\n{tasks}")
    start = time.monotonic()
    r = cli("job.yaml", cwd=tmp_path)
    took = time.monotonic() - start
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 5, took  # one event's sleep, had anything waited for it
    assert "logger 'broken'" in r.stderr and "failed: ValueError: no such table" in r.stderr
    assert "logger 'slow'" in r.stderr and "logger 'stuck'" in r.stderr
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert sum('"event":"output"' in x.replace(" ", "") for x in lines) == 2000  # the good one got every line


def test_an_unknown_logger_class_is_a_located_error_and_nothing_runs(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          a: {command: 'touch ran'}
        loggers:
          mine: {logger: SlackLoger}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "job.yaml:4:9:" in r.stderr and "SlackLoger" in r.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / ".jobflow").exists()
