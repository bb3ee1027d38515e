"""When the terminal goes away, or the dashboard is told to stop: the run handed over to a
detached runner (or, with `config.on_hangup: stop`, its trees ended), its checkpoint
saved, whatever the UI is doing.

These are plain signal handlers and threads, not event-loop ones: when the terminal
vanishes, the UI can block inside its output thread and the loop never runs again, so the
stop must not depend on it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable

from ..control.detached import runner_argv, start_runner
from ..engine.run import Owner


def hand_over(owner: Owner) -> int:
    """Leave the run to a detached runner that takes it over once this process is gone;
    its pid. Blocking, from any thread: the caller exits right after."""
    owner.hand_off()
    argv = runner_argv(owner.job_path, state_dir=owner.state_dir, resume=True)
    return int(start_runner(argv, after=os.getpid(), wait=False)["pid"])


def install(owner: Owner | None, orderly_stop: Callable[[int], None], detach: bool) -> None:
    """SIGTERM first tries `orderly_stop(code)` (terminal restored, from the event loop),
    with a deadline; SIGHUP (no terminal left to restore) and a terminal that hung up
    without one hand the run over at once (`detach`), or stop it. A dashboard that does
    not own its run (`owner` None) just leaves."""
    loop = asyncio.get_running_loop()

    def emergency(code: int, reason: str) -> None:
        if owner is not None:
            owner.emergency_stop(reason)
        os._exit(code)

    def lost(code: int, reason: str) -> None:
        if owner is not None and detach:
            try:
                hand_over(owner)
            except Exception:  # no runner to hand over to: the run stops rather than run unwatched
                emergency(code, reason)
            os._exit(code)
        emergency(code, reason)

    def on_signal(signum: int, _frame) -> None:
        code = 128 + signum
        reason = f"interrupted by {signal.Signals(signum).name}"
        if signum == signal.SIGHUP:
            threading.Thread(target=lost, args=(code, reason), daemon=True).start()
            return
        loop.call_soon_threadsafe(orderly_stop, code)

        def deadline() -> None:
            time.sleep((owner.kill_grace if owner is not None else 0) + 5)
            emergency(code, reason)

        threading.Thread(target=deadline, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    # A terminal can also vanish with no SIGHUP sent to us (it was not our controlling
    # terminal, say): then Textual's input thread spins on the dead tty at full CPU. A hung
    # up tty fails isatty(), so look once a second and stop as for SIGHUP.
    terminals = [fd for fd in (0, 1, 2) if os.isatty(fd)]

    def watch_terminal() -> None:
        while all(os.isatty(fd) for fd in terminals):
            time.sleep(1.0)
        lost(128 + signal.SIGHUP, "the terminal went away")

    if terminals:
        threading.Thread(target=watch_terminal, daemon=True, name="jobflow-terminal").start()


def exit_if_stuck(code: int, grace: float = 5.0) -> None:
    """Leave anyway if the terminal cannot be restored within `grace` seconds."""

    def watchdog() -> None:
        time.sleep(grace)
        os._exit(code)

    threading.Thread(target=watchdog, daemon=True, name="jobflow-exit-watchdog").start()
