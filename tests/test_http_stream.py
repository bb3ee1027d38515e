"""Event streams under pressure, on the server's app served in the test's own loop (real HTTP
on a real socket): the heartbeat of a quiet stream, and a reader that stops reading."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

from jobflow_tui.server import feed as feed_module
from jobflow_tui.server import stream as stream_module
from jobflow_tui.server.api import FEEDS, make_app
from jobflow_tui.server.catalog import Catalog

from .conftest import cli, write

TOKEN = "stream-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port the system chose
    return runner, f"http://127.0.0.1:{port}"


async def live_run(session: ClientSession, base: str) -> str:
    async with session.get(f"{base}/api/runs?state=live", headers=AUTH) as r:
        runs = await r.json()
    return runs[0]["run_id"] if runs else ""


async def test_a_quiet_stream_gets_a_heartbeat(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", f"tasks:\n  wait: {{command: 'while [ ! -e {tmp_path}/go ]; do sleep 0.05; done'}}\n")
    assert cli("job.yaml", "--detach", cwd=tmp_path).returncode == 0
    runner, base = await serve(make_app(Catalog([str(tmp_path / "job.yaml")]), TOKEN, heartbeat=0.2))
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as session:
            run = await live_run(session, base)
            async with session.get(f"{base}/api/runs/{run}/events", headers=AUTH) as r:
                seen: list[bytes] = []
                while b": keep-alive\n" not in seen:
                    seen.append(await r.content.readline())
                (tmp_path / "go").touch()
                rest = (await r.content.read()).decode()
        assert "event: snapshot" in b"".join(seen).decode()
        assert "event: state" in rest and rest.rstrip().endswith('data: {"exit_code":0}')
    finally:
        (tmp_path / "go").touch()
        await runner.cleanup()


async def test_a_reader_that_stops_reading_is_dropped_and_holds_nothing(tmp_path: Path, monkeypatch) -> None:
    """A stream that does not read falls behind the feed's bounded buffer and is ended; the
    run and the readers that keep up go on at full speed, and nothing grows past the bound."""
    monkeypatch.setattr(feed_module, "MAX_BUFFER", 8 * 1024 * 1024)
    monkeypatch.setattr(stream_module, "WRITE_TIMEOUT", 1.0)
    write(tmp_path / "job.yaml", f"""
        tasks:
          flood: {{command: 'while [ ! -e {tmp_path}/go ]; do sleep 0.05; done; for i in $(seq 0 99); do seq $((i*2000+1)) $((i*2000+2000)) | sed "s/$/ a line of the flood/"; sleep 0.01; done'}}
    """)
    assert cli("job.yaml", "--detach", cwd=tmp_path).returncode == 0
    app = make_app(Catalog([str(tmp_path / "job.yaml")]), TOKEN)
    runner, base = await serve(app)
    slow = socket.socket()
    try:
        async with ClientSession(timeout=ClientTimeout(total=120)) as session:
            run = await live_run(session, base)
            path = f"/api/runs/{run}/events"
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            slow.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
            async with session.get(base + path, headers=AUTH) as r:
                await r.content.readline()  # the snapshot is on its way: both readers follow
                (tmp_path / "go").touch()
                lines, biggest, tail = 0, 0, b""
                feed = next(iter(app[FEEDS].values()))
                async for chunk in r.content.iter_any():
                    lines += (tail + chunk).count(b"\nevent: output\n")
                    tail = (tail + chunk)[-14:]  # a mark cut in two is counted once
                    biggest = max(biggest, feed.size)
        assert lines == 200000  # the reader that keeps up got every line
        assert 7 * 1024 * 1024 < biggest <= 8 * 1024 * 1024 + 64 * 1024  # full, never past its bound
        slow.settimeout(10)
        received = 0
        try:
            while chunk := slow.recv(65536):  # the server ended the slow stream: it reads to the end
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert 0 < received < 12 * 1024 * 1024  # far from the flood's 200000 events
    finally:
        slow.close()
        (tmp_path / "go").touch()
        await runner.cleanup()
        await asyncio.sleep(0)
