"""The worker process: `python -m jobflow_tui.worker.main`, JSON lines on stdin/stdout.

Requests: {"op": "load", "dirs", "packages", "files"} -> {"classes", "problems"};
{"op": "check", "tasks": [{"name", "class", "params"}]} -> {"results": {name: [errors]}};
{"op": "run", ...} -> {"pid"}. Each forked attempt writes its pid and exit status to the
attempt's status file, as the command wrapper does; a reaper thread fills in the status
when the child could not (os._exit, a signal).
"""

from __future__ import annotations

import difflib
import gc
import json
import logging  # imported here, once: a child importing it pays ~5 ms each time
import os
import signal
import sys
import threading
import traceback
from typing import Any

from pydantic import ValidationError

from .. import pytask

_CHILDREN: dict[int, str] = {}  # pid -> status file, for the reaper
_CHILDREN_LOCK = threading.Lock()
_CHILD_EXITED = threading.Condition(_CHILDREN_LOCK)


def _reaper() -> None:
    """Collect every forked attempt; where user code left without recording how (os._exit,
    a signal, a crash of the interpreter), record its real exit status."""
    while True:
        with _CHILD_EXITED:
            while not _CHILDREN:
                _CHILD_EXITED.wait()
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            continue
        with _CHILDREN_LOCK:
            path = _CHILDREN.pop(pid, None)
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                recorded = any(line.startswith(b"exit ") for line in f.read().splitlines())
            if not recorded:
                with open(path, "a") as f:
                    f.write(f"exit {os.waitstatus_to_exitcode(status)}\n")
        except OSError:
            pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we stop
    # Set up once and inherited: the handler writes to fd 2, which in each child is its log.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_reaper, daemon=True, name="reaper").start()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        req = json.loads(line)
        op = req.get("op")
        if op == "exit":
            break
        try:
            reply = {"load": load, "check": check, "run": run}[op](req)
        except Exception as e:  # report, never die: the runner turns this into a task failure
            reply = {"error": f"{type(e).__name__}: {e}"}
        replies.write(json.dumps(reply, default=str).encode() + b"\n")
        replies.flush()


def load(req: dict) -> dict:
    import contextlib

    # Task modules may print when imported: keep that off the reply channel.
    with contextlib.redirect_stdout(sys.stderr):
        problems = pytask.discover(req.get("dirs", []), req.get("packages", []), req.get("files", []))
    return {"classes": sorted(pytask.registry()), "problems": problems}


def check(req: dict) -> dict:
    known = pytask.registry()
    results: dict[str, list[dict]] = {}
    for t in req["tasks"]:
        cls = known.get(t["class"])
        if cls is None:
            close = difflib.get_close_matches(t["class"], list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            where = f" (found: {', '.join(sorted(known))})" if known and not close else ""
            results[t["name"]] = [{"loc": ["<class>"], "msg": f"unknown task class '{t['class']}'{hint}{where}"}]
            continue
        try:
            cls.model_validate(t["params"])
            results[t["name"]] = []
        except ValidationError as e:
            results[t["name"]] = [
                {"loc": list(err["loc"]), "msg": _message(err)} for err in e.errors(include_url=False)
            ]
    return {"results": results}


def _message(err: dict) -> str:
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "missing":
        return f"parameter '{loc}' is required"
    if err["type"] == "extra_forbidden":
        return f"unknown parameter '{loc}'"
    return f"parameter '{loc}': {err['msg']}"


def run(req: dict) -> dict:
    # Objects alive now move to a generation the collector never scans, so a child's
    # collections do not touch (and copy, page by page) the whole inherited heap.
    gc.freeze()
    with _CHILDREN_LOCK:  # held across fork: the reaper must know the pid before it can exit
        pid = os.fork()
        if pid != 0:
            _CHILDREN[pid] = req["status"]
            _CHILD_EXITED.notify()
    if pid == 0:
        code = 1
        try:
            code = _child(req)
        except BaseException:
            traceback.print_exc()
        finally:
            _finish(req, code)
    return {"pid": pid}


def _finish(req: dict, code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    try:
        with open(req["status"], "a") as f:
            f.write(f"exit {code}\n")
    finally:
        os._exit(code)


def _child(req: dict) -> int:
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    with open(req["status"], "w") as f:
        f.write(f"pid {os.getpid()}\n")
    sys.stdin = open(os.devnull)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    for handler in logging.getLogger().handlers:  # the inherited handler, onto the new stderr
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    # Only what differs: the environment is mostly the worker's own.
    env = req["env"]
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    try:
        os.chdir(req["cwd"])
    except OSError as e:
        print(f"jobflow-tui: cannot enter working folder {req['cwd']}: {e.strerror}", file=sys.stderr)
        return 2
    cls = pytask.registry()[req["class"]]
    task = cls.model_validate(req["params"])
    task._ctx = {
        "shared_dict": req["shared_dict"], "params": req["job_params"], "task": req["task"],
        "attempt": req["attempt"], "upstream": req["upstream"],
    }

    def aborted(signum: int, _frame: Any) -> None:
        # Abort or timeout: the hook gets its say within the grace period, then we go.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for hook in (task.on_abort, task.on_destroy):
            try:
                hook()
            except Exception:
                traceback.print_exc()
        _write_result(req, task, {})
        _finish(req, 128 + signum)

    signal.signal(signal.SIGTERM, aborted)
    ok = False
    outputs: Any = {}
    try:
        task.on_create()
        if req["restart"]:
            task.on_restart()
        value = task.run()
        outputs = _as_outputs(value)
        ok = True
    except Exception:
        traceback.print_exc()
    try:
        task.on_success() if ok else task.on_failure()
    except Exception:
        traceback.print_exc()
        ok = False
    try:
        task.on_destroy()
    except Exception:
        traceback.print_exc()
        ok = False
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _write_result(req, task, outputs if ok else {})
    return 0 if ok else 1


def _as_outputs(value: Any) -> dict:
    """run()'s return value as the task's outputs: a dict, {} for None, else {"value": v}."""
    if value is None:
        return {}
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"run() returned a value that is not JSON-serialisable ({e}); return plain data") from None
    return value if isinstance(value, dict) else {"value": value}


def _write_result(req: dict, task: pytask.Task, outputs: dict) -> None:
    try:
        shared = json.loads(json.dumps(task.shared_dict, default=str))
    except (TypeError, ValueError) as e:
        print(f"jobflow-tui: shared_dict is not JSON-serialisable ({e}); its changes are dropped", file=sys.stderr)
        shared = None
    # One line in the status file (no file of its own: creating files is a real share of a
    # short task's cost), written before the exit line, so the runner always finds both.
    line = json.dumps({"outputs": outputs, "shared_dict": shared}, separators=(",", ":"))
    with open(req["status"], "a") as f:
        f.write(f"result {line}\n")


if __name__ == "__main__":
    main()
