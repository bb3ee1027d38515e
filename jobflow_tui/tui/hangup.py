"""When the terminal goes away, or the dashboard is told to stop: the run's trees ended and
its checkpoint saved, whatever the UI is doing.

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

from ..engine.run import Owner


def install(owner: Owner, orderly_stop: Callable[[int], None]) -> None:
    """SIGTERM first tries `orderly_stop(code)` (terminal restored, from the event loop),
    with a deadline; SIGHUP (no terminal left to restore) and a terminal that hung up
    without one stop at once."""
    loop = asyncio.get_running_loop()

    def emergency(code: int, reason: str) -> None:
        owner.emergency_stop(reason)
        os._exit(code)

    def on_signal(signum: int, _frame) -> None:
        code = 128 + signum
        reason = f"interrupted by {signal.Signals(signum).name}"
        if signum == signal.SIGHUP:
            threading.Thread(target=emergency, args=(code, reason), daemon=True).start()
            return
        loop.call_soon_threadsafe(orderly_stop, code)

        def deadline() -> None:
            time.sleep(owner.kill_grace + 5)
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
        emergency(128 + signal.SIGHUP, "the terminal went away")

    if terminals:
        threading.Thread(target=watch_terminal, daemon=True, name="jobflow-terminal").start()


def exit_if_stuck(code: int, grace: float = 5.0) -> None:
    """Leave anyway if the terminal cannot be restored within `grace` seconds."""

    def watchdog() -> None:
        time.sleep(grace)
        os._exit(code)

    threading.Thread(target=watchdog, daemon=True, name="jobflow-exit-watchdog").start()
