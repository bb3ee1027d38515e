"""The job file named on the command line: loaded with every problem located (or exit 2),
and where its state lives."""

from __future__ import annotations

import sys


def load_or_exit(path: str):
    """The JobDef, or exit 2 with every located problem."""
    from .jobdef import JobFileError, load_job

    try:
        job = load_job(path)
    except JobFileError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        n = len(e.problems)
        print(f"jobflow-tui: {n} problem{'s' if n != 1 else ''} in the job file; nothing was run", file=sys.stderr)
        sys.exit(2)
    if any(t.python_class for t in job.tasks.values()):
        from .worker.client import check

        problems = check(job)
        if problems:
            for p in sorted(problems, key=lambda p: (p.file, p.line, p.column)):
                print(p, file=sys.stderr)
            n = len(problems)
            print(f"jobflow-tui: {n} problem{'s' if n != 1 else ''} with the Python tasks; nothing was run", file=sys.stderr)
            sys.exit(2)
    if job.executor != "local":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            print(f"jobflow-tui: {path}: executor {job.executor!r} needs Dask: pip install 'jobflow-tui[dask]'; "
                  "nothing was run", file=sys.stderr)
            sys.exit(2)
    if job.loggers:
        from .loggers import check

        problems = check(job.directory, job.extension_directories, job.extension_packages, job.loggers)
        if problems:
            for p in problems:
                print(p, file=sys.stderr)
            print(f"jobflow-tui: {len(problems)} problem(s) with the loggers; nothing was run", file=sys.stderr)
            sys.exit(2)
    for note in job.notes:
        print(note, file=sys.stderr)
    return job


def state_dir_of(args, job) -> str:
    """The state dir: --state-dir, $JOBFLOW_STATE_DIR, or .jobflow beside the job file."""
    from .engine import default_state_dir

    return args.state_dir or default_state_dir(job.directory)


def job_dir_of(args, job) -> str:
    """The job's own folder in the state dir."""
    from .engine import StateDir

    return StateDir(state_dir_of(args, job), job.name).job_dir
