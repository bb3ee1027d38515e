"""Two or more builds of jobflow-tui on the shared workloads, beside the baselines, in one
interleaved session (shuffled order per round; medians and paired ratios), using the
shared harness (`../shared/bench/run_baselines.py`) with one tool per build.

    python bench/versions.py --build before=/tmp/jfb/before/bin/jobflow-tui \\
        --build after=/tmp/jfb/after/bin/jobflow-tui [--tools make,doit] [run_baselines options]

Each build runs as `<exe> --headless jobflow.yaml` in each workload folder, as the
harness runs `jobflow`. Make the builds with `python3 -m venv DIR && DIR/bin/pip install
<checkout>` (a non-editable install, byte-compiled, as users get it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("JOBFLOW_BENCH_SHARED", ROOT.parent / "shared" / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--build", action="append", default=[], metavar="NAME=EXE")
    ap.add_argument("--tools", default="make,doit")
    ours, rest = ap.parse_known_args()
    builds = dict(b.split("=", 1) for b in ours.build)
    if not builds:
        print("give at least one --build NAME=EXE", file=sys.stderr)
        return 2
    sys.path.insert(0, str(SHARED))
    import run_baselines as rb  # the shared harness

    build = rb.build

    def build_with_versions(tool: str, wid: str, w: Path, spec: dict, a):
        if tool.startswith("jobflow@"):
            exe = builds[tool.split("@", 1)[1]]
            r = build("jobflow", wid, w, spec, argparse.Namespace(**{**vars(a), "jobflow": f"{shlex.quote(exe)} --headless"}))
            return r
        return build(tool, wid, w, spec, a)

    rb.build = build_with_versions
    tools = ours.tools.split(",") + [f"jobflow@{name}" for name in builds]
    rb.ALL_T = list(dict.fromkeys(rb.ALL_T + tools))
    sys.argv = [str(SHARED / "run_baselines.py"), "--tools", ",".join(tools),
                "--jobflow-log-glob", ".jobflow/**/firehose.*.log", *rest]
    return rb.main()


if __name__ == "__main__":
    raise SystemExit(main())
