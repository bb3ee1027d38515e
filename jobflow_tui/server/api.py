"""The HTTP API (described in openapi.yaml): jobs, runs, actions, logs and event streams.

Every handler reaches a run through its owner's control socket (the run API), never by
running anything itself: a run started here is a detached runner, like one started from a
shell, and outlives the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..control.client import ControlError, NoLiveRun
from ..control.detached import runner_argv, start_runner
from .auth import TOKEN_KEY, require_token
from .catalog import AddError, Catalog, ServedJob
from .feed import DIGITS, Feed
from .runs import RunRef, ask, describe, find_run, find_runs, outcome
from .stream import HEARTBEAT_KEY, ended_stream, follow

CATALOG = web.AppKey("catalog", Catalog)
FEEDS = web.AppKey("feeds", dict)
RUNNERS = web.AppKey("runners", list)  # the runners this server started, until they end
_HERE = Path(__file__).resolve().parent
# Installed, the spec ships inside the package; in a checkout it sits at the top.
SPEC = next((p for p in (_HERE.parent / "openapi.yaml", _HERE.parent.parent / "openapi.yaml") if p.exists()),
            _HERE.parent / "openapi.yaml")
MAX_BODY = 1024 * 1024
MAX_PARAM = 100_000  # bytes of a run parameter: it travels as one argument (Linux: at most 128 KiB)
STATES = ("live", "succeeded", "failed", "stopped")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as `{"error": ...}` with its code; nothing of the server's insides."""
    try:
        return await handler(request)
    except ApiError as e:
        return web.json_response({"error": str(e), **e.extra}, status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return web.json_response({"error": e.reason.lower()}, status=e.status, headers=_kept(e.headers))


def _kept(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in ("allow", "www-authenticate")}


def _job(request: web.Request) -> ServedJob:
    job = request.app[CATALOG].job(request.match_info["job"])
    if job is None:
        raise ApiError(404, "no such job")
    return job


def _run(request: web.Request) -> RunRef:
    ref = find_run(request.app[CATALOG], request.match_info["run"])
    if ref is None:
        raise ApiError(404, "no such run")
    return ref


async def _body_json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def spec(request: web.Request) -> web.Response:
    return web.Response(body=SPEC.read_bytes(), content_type="application/yaml")


async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response([{"name": j.name, "path": j.path, "tasks": len(j.job.tasks)}
                              for j in request.app[CATALOG].jobs()])


async def get_job(request: web.Request) -> web.Response:
    j = _job(request)
    tasks = [{"name": t.name, "command": t.command, "task": t.python_class, "dependencies": list(t.dependencies)}
             for t in sorted(j.job.tasks.values(), key=lambda t: t.index)]
    return web.json_response({"name": j.name, "path": j.path, "max_concurrency": j.job.max_concurrency,
                              "tasks": tasks})


async def add_job(request: web.Request) -> web.Response:
    if request.content_type not in ("application/yaml", "application/x-yaml", "text/yaml"):
        raise ApiError(415, "send the job file as application/yaml")
    text = await request.read()
    try:
        job = await asyncio.to_thread(request.app[CATALOG].add, text)
    except AddError as e:
        raise ApiError(e.status, str(e), **({"problems": e.problems} if e.problems else {})) from None
    return web.json_response({"name": job.name, "path": job.path, "tasks": len(job.job.tasks)}, status=201)


async def start_run(request: web.Request) -> web.Response:
    j = _job(request)
    body = await _body_json(request)
    unknown = set(body) - {"params", "only", "resume"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    params, only, resume = body.get("params") or {}, body.get("only") or [], body.get("resume", False)
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", k) and isinstance(v, str) and "\0" not in v
        for k, v in params.items()
    ):
        raise ApiError(400, "'params' maps names (letters, digits, _ . -) to strings (no NUL: they become arguments)")
    if not isinstance(only, list) or not all(isinstance(n, str) for n in only):
        raise ApiError(400, "'only' is a list of task names")
    if not isinstance(resume, bool):
        raise ApiError(400, "'resume' is true or false")
    only = list(dict.fromkeys(only))
    missing = [n for n in only if n not in j.job.tasks]
    long = [k for k, v in params.items() if len(k.encode()) + len(v.encode()) > MAX_PARAM]
    if long:
        raise ApiError(422, f"parameter {long[0]!r} is too long (at most {MAX_PARAM} bytes)")
    if missing:
        raise ApiError(422, f"no task named {', '.join(map(repr, missing))} in job '{j.name}'")
    if any(r.live and r.job.name == j.name for r in find_runs(request.app[CATALOG])):
        raise ApiError(409, f"job '{j.name}' has a live run already")
    argv = runner_argv(j.path, resume=resume, params=sorted(params.items()), only=only)
    runners = request.app[RUNNERS]
    runners[:] = [p for p in runners if p.poll() is None]  # the runners that ended are reaped
    said = await asyncio.to_thread(start_runner, argv, children=runners)
    if "error" in said:
        status = 409 if "already" in said["error"] or "lock" in said["error"] else 422
        raise ApiError(status, str(said["error"]))
    return web.json_response({"run_id": said["run_id"], "pid": said["pid"]}, status=201)


async def list_runs(request: web.Request) -> web.Response:
    job, state, limit = request.query.get("job"), request.query.get("state"), request.query.get("limit", "20")
    if state is not None and state not in STATES:
        raise ApiError(400, f"'state' is one of {', '.join(STATES)}")
    if not DIGITS.fullmatch(limit) or not 1 <= int(limit) <= 1000:
        raise ApiError(400, "'limit' is a number from 1 to 1000")
    refs = [r for r in find_runs(request.app[CATALOG], past=int(limit)) if job is None or r.job.name == job]
    rows = [d for d in await asyncio.gather(*(describe(r) for r in refs)) if d is not None]
    rows = [d for d in rows if state is None or d["state"] == state]
    rows.sort(key=lambda d: (d["live"], str(d.get("started_at") or "")), reverse=True)  # live, then newest first
    return web.json_response(rows[: int(limit)])


async def get_run(request: web.Request) -> web.Response:
    ref = _run(request)
    cp = ref.checkpoint() or {"job": {"name": ref.job.name, "path": ref.job.path}, "run_id": ref.run_id, "tasks": {}}
    cp["live"] = False
    if ref.live:
        try:
            snap = await ask(ref, "snapshot")
        except (NoLiveRun, ControlError):
            pass
        else:  # the checkpoint lags the run by a moment: the owner's word on the states
            cp["live"] = True
            for name, t in snap["tasks"].items():
                entry = cp["tasks"].setdefault(name, {})
                entry.update({k: t[k] for k in ("state", "attempt", "attempts", "exit_code", "reason")})
    if not cp["live"]:
        cp["state"] = outcome(cp)
    return web.json_response(cp)


async def run_action(request: web.Request) -> web.Response:
    ref, action = _run(request), request.match_info["action"]
    if not ref.live:
        raise ApiError(409, "the run is over")
    try:
        result = await ask(ref, action)
    except NoLiveRun:
        raise ApiError(409, "the run is over") from None
    return web.json_response(result)


async def task_action(request: web.Request) -> web.Response:
    ref, task, action = _run(request), request.match_info["task"], request.match_info["action"]
    if task not in ref.job.job.tasks and task not in ref.job.job.subflows:  # a subflow: all its tasks
        raise ApiError(404, "no such task")
    if not ref.live:
        raise ApiError(409, "the run is over: start it again with resume")
    try:
        result = await ask(ref, action, task=task)
    except NoLiveRun:
        raise ApiError(409, "the run is over: start it again with resume") from None
    except ControlError as e:
        raise ApiError(404 if e.unknown else 409, str(e)) from None
    if not result["done"]:
        raise ApiError(409, f"{task}: not {action}ed: it is {result['state']}", **result)
    return web.json_response(result)


async def _task_logs(ref: RunRef, task: str) -> list[str]:
    """The task's attempt logs, oldest first, as absolute paths inside the job's folder."""
    logs: list[str] = []
    if ref.live:
        try:
            snap = await ask(ref, "snapshot")
            logs = list(snap["tasks"][task]["logs"])
        except (NoLiveRun, ControlError, KeyError):
            logs = []
    if not logs:
        cp = ref.checkpoint() or {"tasks": {}}
        logs = list((cp["tasks"].get(task) or {}).get("logs") or [])
    root = os.path.realpath(ref.job_dir)
    found = []
    for p in logs:
        full = os.path.realpath(os.path.join(ref.job_dir, str(p)))
        if full.startswith(root + os.sep):  # a tampered checkpoint does not lead out of the folder
            found.append(full)
    return found


async def get_log(request: web.Request) -> web.StreamResponse:
    ref, task = _run(request), request.match_info["task"]
    if task not in ref.job.job.tasks:
        raise ApiError(404, "no such task")
    raw = request.query.get("attempt")
    logs = await _task_logs(ref, task)
    if raw is not None and (not DIGITS.fullmatch(raw) or int(raw) < 1):
        raise ApiError(400, "'attempt' is a number from 1")
    n = int(raw) if raw is not None else len(logs)
    if n < 1 or n > len(logs):
        raise ApiError(404, "no such attempt")
    path = logs[n - 1]
    if not os.path.isfile(path):
        return web.Response(body=b"", content_type="application/octet-stream")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


IDLE_FEED = 300.0  # seconds a feed nobody follows (of a live run or one just over) is kept for streams that come back


def _prune(feeds: dict[str, Any]) -> None:
    """Let go of the feeds of runs that are over, and of those nobody followed for a while."""
    now = time.monotonic()
    for run_id, f in list(feeds.items()):
        if isinstance(f, Feed) and not f.followed and (f.broken or now - f.idle_since > IDLE_FEED):
            feeds.pop(run_id)
            asyncio.ensure_future(f.close())


async def _feed(request: web.Request, ref: RunRef) -> Feed | None:
    """The feed of a live run, started by its first reader; None if the run is over."""
    feeds: dict[str, Any] = request.app[FEEDS]
    _prune(feeds)
    got = feeds.get(ref.run_id)
    if got is None and not ref.live:
        return None
    if got is None or (isinstance(got, Feed) and got.broken):
        got = asyncio.ensure_future(Feed.follow(ref.job_dir))
        feeds[ref.run_id] = got
    if isinstance(got, asyncio.Future):
        try:
            feed = await asyncio.shield(got)
        except (NoLiveRun, ControlError, OSError, ValueError):
            feeds.pop(ref.run_id, None)
            return None
        feeds[ref.run_id] = feed
        return feed
    return got


async def _prune_every_minute(app: web.Application) -> Any:
    async def loop() -> None:
        while True:
            await asyncio.sleep(60)
            _prune(app[FEEDS])
            app[RUNNERS][:] = [p for p in app[RUNNERS] if p.poll() is None]  # no zombie stays long

    task = asyncio.ensure_future(loop())
    yield
    task.cancel()


async def run_events(request: web.Request) -> web.StreamResponse:
    return await _events(request, None)


async def task_stream(request: web.Request) -> web.StreamResponse:
    return await _events(request, request.match_info["task"])


async def _events(request: web.Request, task: str | None) -> web.StreamResponse:
    ref = _run(request)
    if task is not None and task not in ref.job.job.tasks:
        raise ApiError(404, "no such task")
    feed = await _feed(request, ref)
    if feed is None:
        cp = ref.checkpoint()
        code = 0 if cp is not None and outcome(cp) == "succeeded" else 1
        logs = await _task_logs(ref, task) if task is not None else []
        attempt = int(((cp or {}).get("tasks", {}).get(task) or {}).get("attempt") or len(logs))
        states = {"run_id": ref.run_id, "paused": False,
                  "tasks": {n: {k: t.get(k) for k in ("state", "attempt", "exit_code")}
                            for n, t in (cp or {}).get("tasks", {}).items()}}
        return await ended_stream(request, code, (logs[-1], str(task), attempt, len(logs)) if logs else None,
                                  states)
    return await follow(request, feed, task)


async def _close_feeds(app: web.Application) -> None:
    for feed in list(app[FEEDS].values()):
        if isinstance(feed, Feed):
            await feed.close()
        else:
            feed.cancel()


def make_app(catalog: Catalog, token: str, heartbeat: float | None = None) -> web.Application:
    app = web.Application(middlewares=[json_errors, require_token], client_max_size=MAX_BODY)
    app[CATALOG], app[TOKEN_KEY], app[FEEDS], app[RUNNERS] = catalog, token, {}, []
    if heartbeat is not None:
        app[HEARTBEAT_KEY] = heartbeat
    app.on_shutdown.append(_close_feeds)
    app.cleanup_ctx.append(_prune_every_minute)
    run, task = "/api/runs/{run}", "/api/runs/{run}/tasks/{task}"
    app.add_routes([
        web.get("/openapi.yaml", spec),
        web.get("/api/jobs", list_jobs),
        web.post("/api/jobs", add_job),
        web.get("/api/jobs/{job}", get_job),
        web.post("/api/jobs/{job}/runs", start_run),
        web.get("/api/runs", list_runs),
        web.get(run, get_run),
        web.get(run + "/events", run_events),
        web.post(run + "/{action:stop|pause|unpause}", run_action),
        web.post(task + "/{action:retry|restart|abort}", task_action),
        web.get(task + "/logs", get_log),
        web.get(task + "/logs/stream", task_stream),
    ])
    from .browser import add_browser
    add_browser(app)
    return app
