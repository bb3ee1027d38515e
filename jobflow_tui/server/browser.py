"""The dashboard in a browser, on textual-serve's page, scripts and message loop.

Each tab's websocket starts a viewer, `python -m jobflow_tui attach JOB --state-dir DIR`,
attached to the owner of the run it shows (never a scheduler of its own), and ends it when
the websocket goes. Pages and websockets pass the same token middleware as the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from .api import CATALOG
from .catalog import Catalog
from .runs import RunRef, find_runs

log = logging.getLogger(__name__)
GRACE = 3.0  # seconds a viewer has to leave when told to, before it is killed
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",  # keys typed in a frame could drive a run
           "Content-Security-Policy": "frame-ancestors 'none'", "Referrer-Policy": "no-referrer"}


@functools.cache
def _tie_to_parent() -> Callable[[], object] | None:
    """What a viewer runs between fork and exec so that it gets SIGHUP when the server dies
    (even killed): Textual's web driver ignores the end of its input and would live on, and
    SIGHUP is how a viewer leaves when its terminal goes. Linux only; looked up here, in the
    server, as the child may take no lock another thread held."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return functools.partial(ctypes.CDLL(None, use_errno=True).prctl, 1, signal.SIGHUP)  # 1: PR_SET_PDEATHSIG


class Viewer(AppService):
    """One tab's dashboard process."""

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        # textual-serve's own launch, plus the tie to this server's life.
        self._process = process = await asyncio.create_subprocess_shell(
            self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._build_environment(width=width, height=height),
            preexec_fn=_tie_to_parent())
        self._stdin = process.stdin
        return process

    async def run(self) -> None:
        await super().run()
        await self.remote_close()  # the viewer left (or could not attach): the page says the session ended

    async def end(self) -> None:
        """Ask the viewer to leave; kill it if it does not in time. Never SIGTERM: an
        attached dashboard stops the whole run on SIGTERM."""
        process, task = self._process, self._task
        if process is None:
            return
        try:
            if process.returncode is None:
                await asyncio.wait_for(self.send_meta({"type": "quit"}), GRACE)
                await asyncio.wait_for(process.wait(), GRACE)
        except (TimeoutError, OSError):
            pass
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()  # a viewer holds nothing of the run: nothing is lost
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, GRACE)  # its stderr goes to the server's log, never the page


def live_runs(catalog: Catalog) -> dict[str, RunRef]:
    """The live run of each served job that has one (the one in its default state folder first)."""
    found: dict[str, RunRef] = {}
    for ref in sorted((r for r in find_runs(catalog) if r.live), key=lambda r: r.job_dir != r.job.job_dir):
        found.setdefault(ref.job.name, ref)
    return found


def viewer_command(ref: RunRef) -> str:
    # `exec`: the shell textual-serve starts becomes the viewer, so the pid it holds is the viewer's.
    argv = [sys.executable, "-m", "jobflow_tui", "attach", ref.job.path, "--state-dir", os.path.dirname(ref.job_dir)]
    return "exec " + " ".join(shlex.quote(a) for a in argv)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family: monospace'><h1>{html.escape(title)}</h1>{body}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html", headers=HEADERS)


class BrowserView(Server):
    """textual-serve's server, reduced to its parts: the page, the static files, the
    websocket's message loop; the app behind each websocket is the viewer of a run."""

    def __init__(self) -> None:
        super().__init__(command="jobflow-tui attach", title="jobflow-tui")
        self.viewers: set[Viewer] = set()
        self.page = jinja2.Environment(loader=jinja2.FileSystemLoader(self.templates_path),
                                       autoescape=True).get_template("app_index.html")

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/", self.handle_index), web.get("/ws/{job}", self.handle_websocket),
                web.static("/static", self.statics_path)]

    async def handle_index(self, request: web.Request) -> web.Response:  # type: ignore[override]
        catalog, name = request.app[CATALOG], request.query.get("job")
        live = live_runs(catalog)
        if name is None and len(live) != 1:
            rows = "".join(f"<li><a href='/?job={html.escape(quote(j.name, safe=''))}'>{html.escape(j.name)}</a>: "
                           + (f"live run {html.escape(live[j.name].run_id)}" if j.name in live else "no live run")
                           + "</li>" for j in catalog.jobs())
            return _page("jobflow-tui: served jobs", f"<ul>{rows}</ul>" if rows else "<p>No job is served.</p>")
        job = catalog.job(name) if name is not None else next(iter(live.values())).job
        if job is None or job.name not in live:
            title, what = ("No such job", "is not served") if job is None else ("No live run", "has no live run")
            return _page(title, f"<p>Job {html.escape(str(name))} {what}. <a href='/'>Served jobs</a></p>", 404)
        text = self.page.render(font_size=to_int(request.query.get("fontsize", "16"), 16),
                                app_websocket_url=self._ws_url(request, f"/ws/{quote(job.name, safe='')}"),
                                config={"static": {"url": "/static/"}}, application={"name": f"jobflow-tui: {job.name}"})
        return web.Response(text=text, content_type="text/html", headers=HEADERS)

    @staticmethod
    def _ws_url(request: web.Request, path: str) -> str:
        # textual.js appends "?width=..", so the URL is absolute and carries no query. Built
        # from the Host the browser sent: behind a proxy that passes Host on, the same origin.
        # X-Forwarded-Proto only picks ws or wss for that host: a forged one breaks only the
        # forger's own page. X-Forwarded-Host is not trusted: it could point a page elsewhere.
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        secure = proto == "https" if proto in ("http", "https") else request.secure
        return f"{'wss' if secure else 'ws'}://{request.host}{path}"

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # The cookie is SameSite=Strict, but another port of the same host is the same site:
        # a page there could open this websocket with it. Browsers always send Origin.
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            raise web.HTTPForbidden()
        catalog = request.app[CATALOG]
        ref = live_runs(catalog).get(request.match_info["job"])  # a served job's name: never a path from the request
        if ref is None:
            raise web.HTTPNotFound()
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        viewer = Viewer(viewer_command(ref), write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                        close=websocket.close, download_manager=self.download_manager)
        self.viewers.add(viewer)
        try:
            width = max(10, min(to_int(request.query.get("width", "80"), 80), 1000))
            height = max(5, min(to_int(request.query.get("height", "24"), 24), 500))
            await viewer.start(width, height)
            await self._process_messages(websocket, viewer)
        except Exception:  # logged here; the browser only sees its session end
            log.exception("browser session of job %s", ref.job.name)
        finally:
            try:
                await viewer.end()
            finally:
                self.viewers.discard(viewer)
                await websocket.close()
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(*(v.end() for v in list(self.viewers)), return_exceptions=True)


def add_browser(app: web.Application) -> None:
    """The dashboard in a browser: `/`, `/ws/{job}` and `/static/` on the API's app."""
    view = BrowserView()
    app.add_routes(view.routes())
    app.on_shutdown.append(view.on_shutdown)
