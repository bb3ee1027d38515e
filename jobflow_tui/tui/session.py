"""How a dashboard holds its run: as its owner (it starts the run, serves it on the
control socket, stops it or hands it over to a detached runner), or as a viewer attached
to the process that owns it. The screen is the same either way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..control.client import NoLiveRun, RemoteRun
from ..control.server import ControlServer
from ..engine.run import Owner, Run
from . import hangup
from .buffer import read_tail
from .screens import Confirm

if TYPE_CHECKING:
    from .app import Dashboard


class Session:
    def __init__(self, app: Dashboard, run: Run, owner: Owner | None, attached: bool, on_hangup: str) -> None:
        self.app = app
        self.run = run
        self.owner = owner
        self.attached = attached
        self.on_hangup = on_hangup
        self.server: ControlServer | None = None
        self.handed_to: int | None = None  # the detached runner the run was handed over to

    def begin(self, terminal: bool) -> None:
        """On mount: start the run (owner) or follow it (attached); on a real `terminal`,
        take care of losing it."""
        app = self.app
        if self.owner is not None:
            app.run_worker(self._start(), group="engine", exit_on_error=False)
        elif self.attached:
            app.run_worker(self._follow(), group="engine", exit_on_error=False)
        if terminal and self.owner is not None:
            hangup.install(self.owner, lambda code: app.run_worker(self.stop(code), group="stop"),
                           detach=self.on_hangup == "detach")
        elif self.attached:  # a viewer told to end (SIGTERM, a service stopping) just leaves
            hangup.install(None, app.exit, detach=False)

    async def _start(self) -> None:
        assert self.owner is not None
        try:
            await self.owner.start()
        except Exception as e:  # RunError and the like: say it and leave, nothing ran
            self.app.exit(2, message=f"jobflow-tui: {e}")
            return
        self.server = ControlServer(self.run, self.owner.job_dir, "dashboard",
                                    lambda: self.app.run_worker(self.stop(None), group="stop"))
        try:
            await self.server.start()
        except (OSError, ValueError) as e:
            self.server = None
            self.app.notify(f"the run cannot be reached from other processes: {e}", severity="warning")
        for note in self.run.notes:
            self.app.notify(note, timeout=8)

    async def _follow(self) -> None:
        assert isinstance(self.run, RemoteRun)
        self.run.on_subscribed = self._seed
        try:
            await self.run.start()
        except (OSError, NoLiveRun) as e:
            self.app.notify(f"cannot follow the run: {e}", severity="error", timeout=10)
            return
        assert self.run.ended is not None
        code = await self.run.ended
        if code is None:
            self.app.notify("the run's owner is gone; `--resume` adopts what still runs", severity="error",
                            timeout=30)
        else:
            self.app.notify(f"the run ended (exit code {code})", timeout=30)

    def _seed(self) -> None:
        """What running tasks printed before this viewer came: their logs read up to where
        the owner's events take over (no line missed, none twice)."""
        for name, t in self.run.tasks.items():
            upto = self.run.emitted(name)
            if upto and t.logs and not self.app.buffers[name].total:
                self.app.buffers[name].extend(read_tail(t.logs[-1], upto=upto).lines)
        if self.app.shown is not None:
            self.app.show(self.app.shown)

    async def quit(self) -> None:
        """q: leave. An owner with tasks at work asks whether to stop the run or leave it
        running; an attached viewer leaves it running unless told to stop it."""
        active = self.run.active()
        if self.attached:
            at_work = f" ({len(active)} task(s) at work)" if active else ""
            answer = await self.app.push_screen_wait(Confirm(
                f"Leave run {self.run.run_id} running{at_work}?", yes="leave it running", no="cancel",
                others={"s": "stop the run"}))
            if answer is True:
                self.app.exit(0)
            elif answer == "s":
                await self.stop(None)
            return
        if active:
            answer = await self.app.push_screen_wait(Confirm(
                f"{len(active)} task(s) running: stop the run, or detach and leave it running?",
                yes="stop the run", no="cancel", others={"d": "detach"}))
            if answer == "d":
                self.detach()
            if answer is not True:
                return
        await self.stop(None)

    def detach(self) -> None:
        """d: leave the run running without this dashboard."""
        if self.owner is None:
            self.app.exit(0)  # a viewer: the run goes on in its owner
            return
        self.handed_to = hangup.hand_over(self.owner)
        self.app.exit(0)

    async def stop(self, code: int | None) -> None:
        """End the run (trees ended, checkpoint written) and leave with its exit code."""
        if self.owner is not None:
            await self.owner.shutdown("aborted: dashboard quit" if code is None else "interrupted")
            if self.server is not None:
                await self.server.close(self.run.exit_code())
        elif isinstance(self.run, RemoteRun):
            try:
                await self.run.stop()
            except NoLiveRun:
                pass
        result = code if code is not None else self.run.exit_code()
        if not self.app.is_headless:
            hangup.exit_if_stuck(result)
        self.app.exit(result)
