"""Python tasks run in processes forked from one pre-imported worker process.

The worker imports pydantic and the job's task modules once; attempts run in forks of it
(a session and process group of their own, output on the attempt's log file), so a Python
task streams and aborts like a command and cannot take the runner down. A fork whose
attempt succeeded and left nothing behind may run a later attempt (see `main`).
"""
