"""A full disk under the state folder: clear one-line messages, the checkpoint kept and
caught up, no temp files left, a run that cannot start refused with exit 2. Real tmpfs
mounts (root only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cli, wait_for, write

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB file system for the state folder."""
    mnt = tmp_path / "state"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:
        os.truncate(filler, os.path.getsize(filler))  # what the failed write left
    except OSError:
        pass
    return filler


def checkpoint(disk: Path) -> dict:
    return json.loads((disk / "job" / "checkpoint.json").read_text())


def test_a_task_that_fills_the_disk_fails_with_the_reason(tmp_path: Path, small_disk: Path) -> None:
    write(tmp_path / "job.yaml", """
        tasks:
          flood: {command: 'head -c 5000000 /dev/zero | tr "\\\\0" x'}
          after: {command: 'echo never', dependencies: [flood]}
    """)
    r = cli("job.yaml", "--state-dir", str(small_disk), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    cp = checkpoint(small_disk)  # written to the end, although the disk is full
    assert cp["tasks"]["flood"]["state"] == "failed"
    assert "full" in cp["tasks"]["flood"]["reason"] and str(small_disk) in cp["tasks"]["flood"]["reason"]
    assert cp["tasks"]["after"]["state"] == "blocked"
    assert "full" in r.stdout  # the state line says why
    assert not list((small_disk / "job").glob("checkpoint.json.tmp*"))


def test_a_full_disk_mid_run_is_reported_once_and_the_checkpoint_catches_up(tmp_path: Path, small_disk: Path) -> None:
    """The checkpoint cannot be written for a while (it has grown past what was kept in
    reserve); once space returns it is written again, and the run ends as usual."""
    big = "x" * 300_000
    write(tmp_path / "job.yaml", f"""
        tasks:
          publish:
            command: 'echo "blob={big}" >> "$JOBFLOW_OUTPUT"; touch {tmp_path}/published; while [ ! -e {tmp_path}/go ]; do sleep 0.02; done'
          later: {{command: 'while [ ! -e {tmp_path}/freed ]; do sleep 0.02; done'}}
    """)
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        runner = subprocess.Popen(
            [sys.executable, "-m", "jobflow_tui", "job.yaml", "--headless", "--state-dir", str(small_disk)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True,
        )
    try:
        wait_for(lambda: (tmp_path / "published").exists(), 20, "the output to be published")
        wait_for(lambda: checkpoint(small_disk)["tasks"]["later"]["state"] == "running", 20, "both to run")
        filler = fill(small_disk)
        (tmp_path / "go").touch()
        wait_for(lambda: "cannot write the checkpoint" in errors.read_text(), 20, "the write to fail")
        # `publish` succeeded, but its outputs do not fit: the checkpoint on disk stays the last good one.
        assert checkpoint(small_disk)["tasks"]["publish"]["state"] == "running"
        filler.unlink()
        (tmp_path / "freed").touch()
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    err = errors.read_text()
    assert runner.returncode == 0, out + err
    assert "Traceback" not in err and "never retrieved" not in err
    problems = [line for line in err.splitlines() if "checkpoint" in line and "cannot write" in line]
    assert len(problems) == 1, err  # reported once, not once per try
    assert str(small_disk / "job") in problems[0]
    cp = checkpoint(small_disk)
    assert {n: t["state"] for n, t in cp["tasks"].items()} == {"publish": "succeeded", "later": "succeeded"}
    assert cp["tasks"]["publish"]["outputs"]["blob"] == big
    assert not list((small_disk / "job").glob("checkpoint.json.tmp*"))


def test_no_space_at_all_refuses_the_run_with_exit_2(tmp_path: Path, small_disk: Path) -> None:
    write(tmp_path / "job.yaml", f"""
        tasks:
          a: {{command: 'touch {tmp_path}/ran'}}
    """)
    fill(small_disk)
    r = cli("job.yaml", "--state-dir", str(small_disk), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(small_disk) in lines[0] and "No space left" in lines[0], r.stderr
    assert not (tmp_path / "ran").exists()
