"""A live `jobflow-tui server` for tests, and a client for it that checks every response it
gets against openapi.yaml."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .conftest import alive, terminate

TOKEN = "test-token-0123456789abcdef"


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


class Served:
    """`jobflow-tui server` on a free port, serving `paths`."""

    def __init__(self, tmp: Path, *paths: Path, token: str = TOKEN, extra: tuple[str, ...] = ()) -> None:
        self.token = token
        self.token_file = tmp / "token"
        if not self.token_file.exists():
            self.token_file.write_text(token + "\n")
            self.token_file.chmod(0o600)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobflow_tui", "server", "--listen", "127.0.0.1:0", "--token-file",
             str(self.token_file), *extra, *map(str, paths)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=tmp,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if "serving" not in first:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {first!r} {self.proc.stderr.read()!r}")
        self.base = first.split(" on ")[1].strip().rstrip("/")
        self.host, self.port = urlsplit(self.base).hostname, urlsplit(self.base).port

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                auth: bool = True, check: bool = True, timeout: float = 60) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            h = {"Authorization": f"Bearer {self.token}"} if auth else {}
            conn.request(method, path, body=body, headers={**h, **(headers or {})})
            r = conn.getresponse()
            reply = Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()
        if check:
            from .openapi_check import conforms

            conforms(method, urlsplit(path).path, reply.status, reply.headers.get("content-type", ""), reply.body)
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> Reply:
        body = None if data is None else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        return self.request("POST", path, body=body, headers=headers, **kw)

    def start(self, job: str, **fields: Any) -> str:
        r = self.post(f"/api/jobs/{job}/runs", fields or None)
        assert r.status == 201, r
        return r.json()["run_id"]

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.get(f"/api/runs/{run_id}")
        assert r.status == 200, r
        return r.json()

    def states(self, run_id: str) -> dict[str, str]:
        return {n: t["state"] for n, t in self.run(run_id)["tasks"].items()}

    def stop_runs(self) -> None:
        """Stop every live run this server shows, and wait for their runners to go."""
        for r in self.get("/api/runs?state=live", check=False).json():
            self.post(f"/api/runs/{r['run_id']}/stop", check=False)
            deadline = time.monotonic() + 30
            while r.get("pid") and alive(int(r["pid"])) and time.monotonic() < deadline:
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.stop_runs()
            finally:
                terminate(self.proc)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


class Stream:
    """A Server-Sent Events stream read event by event (a raw HTTP/1.1 connection); what was
    read is checked against openapi.yaml when it is closed."""

    def __init__(self, served: Any, path: str, last_id: str | None = None, timeout: float = 30) -> None:
        """`served`: anything with `port` and `token` (and `host`, else 127.0.0.1)."""
        self.path = path
        self.conn = http.client.HTTPConnection(getattr(served, "host", "127.0.0.1"), served.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {served.token}"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, (self.resp.status, self.resp.read())
        assert self.resp.getheader("Content-Type", "").startswith("text/event-stream")
        self.comments = 0
        self.raw = b""

    def next(self) -> dict[str, Any] | None:
        """The next event ({"id", "event", "data"}); None when the stream ended."""
        event: dict[str, Any] = {}
        while True:
            line = self.resp.readline()
            if not line:
                return None
            self.raw += line
            text = line.decode().rstrip("\n")
            if not text:
                if event:
                    return event
                continue
            if text.startswith(":"):
                self.comments += 1
                continue
            field, _, value = text.partition(": ")
            event[field] = json.loads(value) if field == "data" else value

    def until(self, kind: str) -> list[dict[str, Any]]:
        """The events up to and with the first `kind`; AssertionError if the stream ends first."""
        events = []
        while (event := self.next()) is not None:
            events.append(event)
            if event.get("event") == kind:
                return events
        raise AssertionError(f"{self.path}: the stream ended before a {kind!r}: {events}")

    def close(self) -> None:
        """Check what was read against openapi.yaml, and hang up."""
        from .openapi_check import conforms

        try:
            conforms("GET", urlsplit(self.path).path, self.resp.status, self.resp.getheader("Content-Type", ""),
                     self.raw, dict(self.resp.getheaders()))
        finally:
            self.conn.close()
