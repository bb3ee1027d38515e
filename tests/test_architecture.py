"""The architecture is enforced, not hoped for: the import contracts in pyproject.toml
hold, and every module keeps to one idea (none over 400 lines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    """cli above tui and headless, those above engine, engine above jobdef; the engine and
    the job model never import a UI; the worker never imports the engine; the two
    reporters never import each other."""
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "jobflow_tui").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
