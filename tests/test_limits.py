"""Large jobs load, hostile ones are refused at once with a located message, and what the
CLI prints grows in proportion to the job. Speed itself is measured in bench/, not here."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import cli, write

# Generous: these jobs take seconds on a loaded two-core machine; the limit only turns a
# hang (or a blow-up) into a failure.
SLOW = 300


def plain_job(n: int, name: str = "big") -> str:
    return f"config: {{name: {name}, max_concurrency: 8}}\ntasks:\n" + "".join(
        f"  t{i:06d}: {{command: 'true'}}\n" for i in range(n)
    )


def chain_job(n: int) -> str:
    lines = ["tasks:", "  t000000: {command: 'true'}"]
    lines += [f"  t{i:06d}: {{command: 'true', dependencies: [t{i - 1:06d}]}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def test_a_job_of_100000_plain_tasks_validates(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", plain_job(100_000))
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "OK: job 'big', 100000 tasks, 0 dependencies, max concurrency 8" in r.stdout
    assert r.stdout.count("\n") == 100_001  # the summary, then one line per task
    # One mistake near the end is still reported at its own line and column.
    text = plain_job(100_000).replace("t099998: {command: 'true'}", "t099998: {command: 'true', retries: 3}")
    write(tmp_path / "job.yaml", text)
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("job.yaml:100001:30: unknown task key 'retries'"), r.stderr[:500]


def test_a_long_chain_and_a_wide_join_validate(tmp_path: Path) -> None:
    n = 30_000
    text = chain_job(n) + "  join:\n    command: 'true'\n    dependencies: [" + ", ".join(
        f"t{i:06d}" for i in range(n)
    ) + "]\n"
    write(tmp_path / "job.yaml", text)
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{n + 1} tasks, {2 * n - 1} dependencies" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("  join ")  # after all it needs


def test_honest_reuse_through_aliases_is_not_refused(tmp_path: Path) -> None:
    # Every task takes its settings from the first one with a merge key: many values
    # reached through aliases, but never more than a few per value written out.
    n = 20_000
    lines = ["tasks:", "  t000000: &defaults {command: 'true', max_attempts: 2, retry_delay: 1, "
             "env: {A: '1', B: '2', C: '3', D: '4'}}"]
    lines += [f"  t{i:06d}: {{<<: *defaults, description: step {i}}}" for i in range(1, n)]
    write(tmp_path / "job.yaml", "\n".join(lines) + "\n")
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{n} tasks" in r.stdout


def bomb() -> str:
    lines = ["tasks:", "  t: {command: echo}", "x-laughs:"]
    lines.append("  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]")
    for i in range(1, 10):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_the_anchor_it_repeats(tmp_path: Path) -> None:
    write(tmp_path / "bomb.yaml", bomb())
    r = cli("validate", "bomb.yaml", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    m = re.match(r"^bomb\.yaml:(\d+):(\d+): (.*)$", first)
    assert m, r.stderr
    # Pointed at one of the anchors that are copied over and over, not at the file's start.
    assert 4 <= int(m.group(1)) <= 13 and "&a" in bomb().splitlines()[int(m.group(1)) - 1], first
    assert "expands to more than" in m.group(3) and "alias" in m.group(3)
    assert "nothing was run" in r.stderr


def test_an_alias_inside_itself_is_refused_as_such(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", "tasks:\n  t: {command: echo}\nx-loop: &loop [a, *loop]\n")
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("job.yaml:3:9: this value contains itself through an alias"), r.stderr


def test_an_absurdly_large_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    line = "  t{:07d}: {{command: 'echo a task of a job far too large to be real'}}\n"
    with open(tmp_path / "job.yaml", "w") as f:
        f.write("tasks:\n")
        for i in range(300_000):  # about 21 MB
            f.write(line.format(i))
    r = cli("validate", "job.yaml", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("job.yaml:1:1: the job file is too large"), r.stderr[:500]


def tasks_listed(out: str, names: list[str]) -> dict[str, int]:
    """How many tree lines name each task (as itself, after its connector)."""
    seen = dict.fromkeys(names, 0)
    for line in out.splitlines()[1:]:
        m = re.search(r"(?:── |→ )(\S+)", line)
        if m and m.group(1) in seen:
            seen[m.group(1)] += 1
    return seen


def test_graph_of_a_long_chain_grows_with_the_tasks_not_their_square(tmp_path: Path) -> None:
    n = 20_000
    write(tmp_path / "job.yaml", chain_job(n))
    names = [f"t{i:06d}" for i in range(n)]
    r = cli("graph", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.encode()) / n < 200
    assert set(tasks_listed(r.stdout, names).values()) == {1}  # every task, once
    for fmt, edge in (("dot", '"{a}" -> "{b}";'), ("mermaid", "t{i} --> t{j}")):
        r = cli("graph", "job.yaml", "--format", fmt, cwd=tmp_path, timeout=SLOW)
        assert r.returncode == 0 and len(r.stdout.encode()) / n < 200
        assert edge.format(a=names[-2], b=names[-1], i=n - 2, j=n - 1) in r.stdout


def test_graph_of_a_deep_branching_job_stays_narrow(tmp_path: Path) -> None:
    # A spine where every step also has a side task: a tree as deep as half the job.
    n = 5_000
    lines = ["tasks:", "  s00000: {command: 'true'}", "  x00000: {command: 'true', dependencies: [s00000]}"]
    for i in range(1, n):
        lines.append(f"  s{i:05d}: {{command: 'true', dependencies: [s{i - 1:05d}]}}")
        lines.append(f"  x{i:05d}: {{command: 'true', dependencies: [s{i:05d}]}}")
    write(tmp_path / "job.yaml", "\n".join(lines) + "\n")
    r = cli("graph", "job.yaml", cwd=tmp_path, timeout=SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert max(len(line) for line in r.stdout.splitlines()) < 80
    names = [f"{k}{i:05d}" for i in range(n) for k in "sx"]
    assert set(tasks_listed(r.stdout, names).values()) == {1}
