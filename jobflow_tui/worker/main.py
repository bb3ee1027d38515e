"""The worker process: `python -m jobflow_tui.worker.main --done-fd N`, JSON lines on
stdin/stdout.

Requests: {"op": "load", "dirs", "packages", "files"} -> {"classes", "problems"};
{"op": "check", "tasks": [{"name", "class", "params"}]} -> {"results": {name: [errors]}};
{"op": "run", ..., "release": [pids]} -> {"pid"}.

Attempts run in slots: children forked from this pre-imported process, each in a session
of its own. Forking a process that holds pydantic costs milliseconds of page copying, so
a slot whose attempt succeeded and left nothing behind (no thread, no child process, no
changed signal or logging handler, the same sys.path) tells the runner so on the done fd,
and once the runner has released it, runs a later attempt instead of a new fork. Any other
end of an attempt ends its slot. Each attempt records its pid, result and exit status in
the run's journal, as the command wrapper does; a reaper thread records the exit status
when a slot could not (os._exit, a signal).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging  # imported here, once: a child importing it pays ~5 ms each time
import os
import signal
import sys
import threading
import traceback
from typing import Any

from .. import journal, pytask
from .classes import check, load

MAX_ATTEMPTS_PER_SLOT = 100  # then a fresh fork: bounds what slow leaks can pile up

_CHILDREN: dict[int, tuple[str, str]] = {}  # slot pid -> (journal, key) of the attempt it runs
_CHILDREN_LOCK = threading.Lock()
_CHANGED = threading.Condition(_CHILDREN_LOCK)
_GONE: list[int] = []  # slots the reaper collected; the main thread closes their pipes
_SLOTS: dict[int, int] = {}  # slot pid -> our end of its request pipe (main thread only)
_IDLE: list[int] = []  # released slots waiting for an attempt
_DONE_FD = -1  # the runner's pipe: a kept slot writes its attempt's req["done"] there
_SLOT_PID = 0  # in a slot: its pid. A process user code forks from it is not the slot.


def _reaper() -> None:
    """Collect every slot; where user code left without recording how (os._exit, a signal,
    a crash of the interpreter), record the real exit status of the attempt it ran."""
    while True:
        with _CHANGED:
            while not _CHILDREN:
                _CHANGED.wait()
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            continue
        with _CHANGED:
            if pid not in _CHILDREN:
                continue
            path, key = _CHILDREN.pop(pid)
            _GONE.append(pid)
            _CHANGED.notify_all()
        _record_exit(path, key, pid, os.waitstatus_to_exitcode(status))


def _record_exit(journal_path: str, key: str, pid: int, code: int) -> None:
    # Only for an attempt this very process started (its pid record) and did not finish.
    if journal.exit_unrecorded(journal_path, key, pid):
        journal.append(journal_path, key, journal.EXIT, str(code))


def _fresh_signals() -> None:
    """The signal state of a freshly started interpreter, whatever the runner was started
    with (nohup, cron and daemons pass ignored or blocked signals down): nothing blocked,
    SIGPIPE and SIGXFSZ ignored as Python itself does, SIGINT raising KeyboardInterrupt,
    every other signal at its default."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    python_ignores = {signal.SIGPIPE, signal.SIGXFSZ}
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        if sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_IGN if sig in python_ignores else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            pass  # signals the C library keeps for itself (the real-time ones it uses)


def once() -> None:
    """`--once`: one attempt on a machine of its own (a Dask worker). The request (a "run"
    request with "dirs", "packages", "files" to import from) is on stdin; the output goes
    to stdout; pid, result and exit status to the request's journal, as a slot's do."""
    global _SLOT_PID
    req = json.loads(sys.stdin.buffer.read())
    problems = load(req)["problems"]
    if req["class"] not in pytask.registry():
        for where, line, message in problems:
            print(f"{where}:{line}: {message}", file=sys.stderr)
        print(f"jobflow-tui: task class {req['class']!r} is not found on this machine", file=sys.stderr)
        sys.exit(2)
    _SLOT_PID = os.getpid()
    _finish(req, _attempt(req))


def main() -> None:
    global _DONE_FD
    _fresh_signals()
    if sys.argv[1:2] == ["--once"]:
        once()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we stop
    if len(sys.argv) > 2 and sys.argv[1] == "--done-fd":
        _DONE_FD = int(sys.argv[2])
        os.set_inheritable(_DONE_FD, False)  # slots keep it; programs they exec do not
    # Set up once and inherited: the handler writes to fd 2, which in each slot is its log.
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
    _close_slots()


def _close_slots(wait: float = 2.0) -> None:
    """End idle slots (their request pipe closes) and give every slot a moment to go."""
    for fd in _SLOTS.values():
        os.close(fd)
    _SLOTS.clear()
    with _CHANGED:
        _CHANGED.wait_for(lambda: not _CHILDREN, timeout=wait)


def run(req: dict) -> dict:
    with _CHANGED:
        gone, _GONE[:] = list(_GONE), []
    for pid in gone:
        if pid in _SLOTS:
            os.close(_SLOTS.pop(pid))
    _IDLE[:] = [p for p in (*_IDLE, *req.pop("release", [])) if p in _SLOTS]
    cls = pytask.registry()[req["class"]]
    line = json.dumps(req, separators=(",", ":")).encode() + b"\n"
    while _IDLE and not cls.fresh_process:
        pid = _IDLE.pop()
        with _CHANGED:
            if pid not in _CHILDREN:
                continue
            _CHILDREN[pid] = (req["status"], req["key"])  # before the slot can start (and crash in) it
        try:
            _write_all(_SLOTS[pid], line)
            return {"pid": pid}
        except OSError:  # gone since it was released; the reaper records nothing (no pid line)
            continue
    return {"pid": _fork_slot(req)}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fork_slot(req: dict) -> int:
    # Objects alive now move to a generation the collector never scans, so a slot's
    # collections do not touch (and copy, page by page) the whole inherited heap.
    gc.freeze()
    r, w = os.pipe()
    with _CHANGED:  # held across fork: the reaper must know the pid before it can exit
        pid = os.fork()
        if pid != 0:
            _CHILDREN[pid] = (req["status"], req["key"])
            _CHANGED.notify_all()
    if pid == 0:
        os.close(w)
        for fd in _SLOTS.values():  # other slots' pipes: held here, they would never see EOF
            os.close(fd)
        _slot(r, req)
    os.close(r)
    _SLOTS[pid] = w
    return pid


def _slot(requests_fd: int, req: dict) -> None:
    """A slot's life: run attempts until one cannot be followed by another. Never returns."""
    global _SLOT_PID
    _SLOT_PID = os.getpid()
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
        # Orphans of an attempt become our children, so "no child left" covers them too.
        reaps = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        baseline = _fingerprint()
        requests = os.fdopen(requests_fd, "rb")
        served = 0
        while True:
            code = 1
            try:
                code = _attempt(req)
            except BaseException:
                traceback.print_exc()
            if os.getpid() != _SLOT_PID:
                os._exit(code)  # a fork of user code that returned: never a slot
            served += 1
            keep = (code == 0 and reaps and served < MAX_ATTEMPTS_PER_SLOT
                    and not pytask.registry()[req["class"]].fresh_process
                    and _no_children() and _fingerprint() == baseline)
            if not keep:
                _finish(req, code)
            _flush()
            journal.append(req["status"], req["key"], journal.EXIT, "0")
            try:
                os.write(_DONE_FD, req["done"].encode() + b"\n")
            except OSError:
                os._exit(0)  # the runner is gone: nobody will hand us another attempt
            line = requests.readline()
            if not line:
                os._exit(0)  # the worker closed our pipe: the run is over
            req = json.loads(line)
    except BaseException:
        traceback.print_exc()
    finally:
        _finish(req, code)


def _fingerprint() -> tuple:
    """What an attempt could leave behind to trouble the next one in this process."""
    handlers = [signal.getsignal(s) for s in sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})]
    loggers = [logging.root, *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    return (
        len(os.listdir("/proc/self/task")),  # threads, including ones started outside Python
        tuple(map(id, handlers)),
        tuple((id(lg), lg.level, tuple(map(id, lg.handlers))) for lg in loggers if lg.handlers or lg.level)
        + (logging.root.manager.disable,),
        tuple(sys.path),
    )


def _no_children() -> bool:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _finish(req: dict, code: int) -> None:
    if os.getpid() != _SLOT_PID:
        os._exit(code)  # a fork of user code ending: the attempt's status is not its to write
    _flush()
    try:
        journal.append(req["status"], req["key"], journal.EXIT, str(code))
    finally:
        os._exit(code)


def _attempt(req: dict) -> int:
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    journal.append_pid(req["status"], req["key"], os.getpid())
    # Fresh objects on fds 1 and 2 (now the log), whatever an earlier attempt did to them.
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
    task = cls.model_validate(req["params"]).with_context({
        "shared_dict": req["shared_dict"], "params": req["job_params"], "task": req["task"],
        "attempt": req["attempt"], "upstream": req["upstream"],
    })

    def aborted(signum: int, _frame: Any) -> None:
        # Abort or timeout: the hook gets its say within the grace period, then we go.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != _SLOT_PID:  # a fork of user code: it ends as SIGTERM would end it
            os.kill(os.getpid(), signal.SIGTERM)
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
    if os.getpid() != _SLOT_PID:
        return
    try:
        shared = json.loads(json.dumps(task.shared_dict, default=str))
    except (TypeError, ValueError) as e:
        print(f"jobflow-tui: shared_dict is not JSON-serialisable ({e}); its changes are dropped", file=sys.stderr)
        shared = None
    line = json.dumps({"outputs": outputs, "shared_dict": shared}, separators=(",", ":"))
    journal.append(req["status"], req["key"], journal.RESULT, line)  # before the exit record: found with it


if __name__ == "__main__":
    main()
