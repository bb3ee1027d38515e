"""Python tasks run in children forked from one pre-imported worker process.

The worker imports pydantic and the job's task modules once; each attempt is a fork of it
(its own session and process group, output on its log file), so a Python task starts in a
millisecond or two, streams and aborts like a command, and cannot take the runner down.
"""
