"""The cockpit in a real 80x24 terminal (tmux) with the installed `jobflow-tui` and the
demo job: the failure's whole message readable where it failed, lines copied into tmux's
buffer through OSC 52, the failure report written, every key in the help."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import ROOT, wait_for
from .test_e2e_tmux import EXE, pytestmark, tmux_factory  # noqa: F401  (the fixture and the skip)


def demo(tmp_path: Path, tmux_factory):  # noqa: F811
    shutil.copy(ROOT / "jobdefs" / "demo.yaml", tmp_path / "demo.yaml")
    t = tmux_factory(tmp_path, f"{EXE} demo.yaml", env={"TERM": "tmux-256color"})
    t.wait("✗ approve failed", "⊘ report blocked", timeout=60)
    return t


def log_pane_text(screen: str, first: str) -> str:
    """The log pane's text from the row holding `first` on: its column, row after row."""
    rows = screen.splitlines()
    top = next(i for i, r in enumerate(rows) if first in r)
    column = rows[top].index(first)
    return "".join(r[column:].rstrip().rstrip("│").rstrip() for r in rows[top:])


def test_the_demo_failure_is_readable_whole_at_80x24_with_no_key(tmp_path: Path, tmux_factory) -> None:  # noqa: F811
    t = demo(tmp_path, tmux_factory)
    approved = str(tmp_path / ".jobflow" / "etl" / "approved")
    screen = t.wait("not approved yet")  # the cursor went to the failure; long lines wrap
    text = "".join(log_pane_text(screen, "not approved yet").split())
    assert "".join(f"not approved yet: run echo me > {approved} then retry this task (r)".split()) in text
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "? help" in lines[-1] and "q quit" in lines[-1]  # the footer fits, nothing overlaps
    t.keys("?")
    t.wait("Keys", "quit", "Esc or ? closes")  # every key, no scrolling
    t.keys("Escape")
    t.keys("q")
    assert t.exit_code() == 1


def test_v_y_copies_into_tmux_s_buffer_and_E_writes_the_report(tmp_path: Path, tmux_factory) -> None:  # noqa: F811
    t = demo(tmp_path, tmux_factory)
    t.wait("not approved yet")
    t.keys("v")
    t.wait("marking 1 line")
    t.keys("y")
    wait_for(lambda: "not approved yet: run" in t.run("show-buffer"), 10, "the copied line in tmux's buffer")
    copied = next((tmp_path / ".jobflow" / "nightly-etl" / "runs").glob("*/copied.txt")).read_text()
    assert copied.startswith("not approved yet: run  echo me >") and copied.count("\n") == 1
    t.keys("Escape", "E")
    runs = tmp_path / ".jobflow" / "nightly-etl" / "runs"
    wait_for(lambda: any(runs.glob("*/report-approve.txt")), 10, "the report file")
    report = next(runs.glob("*/report-approve.txt")).read_text()
    assert "state:    failed, exit 1" in report and "not approved yet" in report
    wait_for(lambda: "jobflow-tui report: approve" in t.run("show-buffer"), 10, "the report in tmux's buffer")
    t.keys("q")
    assert t.exit_code() == 1
