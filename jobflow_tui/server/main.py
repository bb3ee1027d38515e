"""`jobflow-tui server [--listen HOST:PORT] [--token-file FILE] [JOB.yaml|DIR ...]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import sys

from aiohttp import web

from .api import make_app
from .auth import TokenError, default_token_file, load_token
from .catalog import Catalog

DEFAULT_LISTEN = "127.0.0.1:8765"


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT ([::1]:PORT for IPv6); argparse's error if it is not one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not re.fullmatch("[0-9]{1,5}", port) or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parser(base: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = base(prog="jobflow-tui server",
             description="Serve jobs over HTTP: an API (openapi.yaml), event streams, the dashboard in a browser.")
    p.add_argument("paths", nargs="*", metavar="JOB.yaml|DIR",
                   help="job files, or folders of *.yaml job files (default: the current folder); "
                        "jobs sent over HTTP are stored in the first folder")
    p.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), metavar="HOST:PORT",
                   help=f"where to listen (default {DEFAULT_LISTEN}; port 0: any free port)")
    p.add_argument("--token-file", metavar="FILE",
                   help=f"the token requests must carry (default: {default_token_file()}, made on first start)")
    return p


def serve(args: argparse.Namespace) -> int:
    paths = args.paths or ["."]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"jobflow-tui: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    catalog = Catalog(paths)
    jobs = catalog.jobs()
    broken = [p for p in paths if os.path.isfile(p) and os.path.abspath(p) in catalog.problems]
    for problems in catalog.problems.values():
        for line in problems:
            print(line, file=sys.stderr)
    if broken:
        print(f"jobflow-tui: {', '.join(broken)}: not a valid job file; nothing is served", file=sys.stderr)
        return 2
    try:
        token, made = load_token(args.token_file)
    except TokenError as e:
        print(f"jobflow-tui: {e}", file=sys.stderr)
        return 2
    host, port = args.listen
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        print(f"jobflow-tui: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 2
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    token_file = args.token_file or default_token_file()
    print(f"serving {len(jobs)} job{'s' if len(jobs) != 1 else ''} on http://{shown}:{bound}/", flush=True)
    print(f"token: {token_file}{' (new)' if made else ''}", flush=True)
    print(f"browser: http://{shown}:{bound}/?token=$(cat {token_file})", flush=True)
    return asyncio.run(_run(make_app(catalog, token), sock))


async def _run(app: web.Application, sock: socket.socket) -> int:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=2.0)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # runs go on: they belong to their detached runners
    return 0
