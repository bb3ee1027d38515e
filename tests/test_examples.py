"""Every example job in jobdefs/ is valid and runs as documented."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, cli

EXAMPLES = sorted((ROOT / "jobdefs").rglob("*.yaml"))


@pytest.fixture
def jobdefs(tmp_path: Path) -> Path:
    # A copy, so that runs leave nothing in the source tree.
    return Path(shutil.copytree(ROOT / "jobdefs", tmp_path / "jobdefs"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    r = cli("validate", str(path))
    assert r.returncode == 0, r.stderr


def test_demo_fails_at_the_gate_then_resumes_after_approval(jobdefs: Path) -> None:
    r = cli("demo.yaml", cwd=jobdefs)
    assert r.returncode == 1
    assert "extract-orders -> retrying" in r.stdout and "approve -> failed" in r.stdout
    (jobdefs / ".jobflow" / "etl").mkdir(parents=True, exist_ok=True)
    (jobdefs / ".jobflow" / "etl" / "approved").write_text("ops\n")
    r = cli("demo.yaml", "--resume", cwd=jobdefs)
    assert r.returncode == 0, r.stdout
    assert "approve | approved by ops" in r.stdout and "extract-users ->" not in r.stdout


@pytest.mark.parametrize("name,code,expect", [
    ("features/retries.yaml", 0, "flaky | attempt 4"),
    ("features/timeout.yaml", 1, "timed out after 2s"),
    ("features/includes.yaml", 0, "build | building for eu-west/prod"),
    ("features/fanout.yaml", 0, "merge | all shards merged"),
    ("features/outputs.yaml", 0, "argv | an argv list is exec'd without a shell: $HOME stays literal"),
    ("features/noisy.yaml", 0, "hostile | plain red bold link"),
])
def test_feature_example_runs(jobdefs: Path, name: str, code: int, expect: str) -> None:
    r = cli(name, "--headless", cwd=jobdefs)
    assert r.returncode == code, r.stdout[-2000:]
    assert expect in r.stdout


def test_outputs_example_records_outputs(jobdefs: Path) -> None:
    assert cli("features/outputs.yaml", "-p", "day=2026-11-22", cwd=jobdefs).returncode == 0
    r = cli("status", "features/outputs.yaml", "--json", cwd=jobdefs)
    data = json.loads(r.stdout)
    assert data["tasks"]["count"]["outputs"] == {"rows": "42", "summary": "line one\nline two"}
    assert data["params"] == {"day": "2026-11-22"}
