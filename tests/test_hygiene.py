"""The engine, job loader and headless runner never load the UI toolkit."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["jobflow_tui.engine", "jobflow_tui.jobdef", "jobflow_tui.headless", "jobflow_tui.cli"])
def test_core_imports_without_textual(module: str) -> None:
    code = f"import sys, {module}; bad = [m for m in ('textual', 'rich', 'pydantic') if m in sys.modules]; print(bad)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_headless_run_never_imports_textual(tmp_path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("tasks:\n  a: {command: 'true'}\n")
    code = (
        "import sys, runpy; sys.argv = ['jobflow-tui', sys.argv[1], '--headless']\n"
        "try:\n    runpy.run_module('jobflow_tui', run_name='__main__')\n"
        "except SystemExit as e:\n    print('exit', e.code, [m for m in ('textual', 'rich') if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(job)], capture_output=True, text=True)
    assert r.stdout.splitlines()[-1] == "exit 0 []"
