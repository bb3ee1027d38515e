"""The dashboard in a real browser (Debian's chromium, driven by Playwright): a tab attaches
a viewer to the run's detached runner, shows the task tree, and its keys retry a task."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from .conftest import alive, terminate, wait_for, write

CHROMIUM = "/usr/bin/chromium"

# xterm.js paints on a canvas: no text in the DOM. Its screen-reader mode keeps the rows as
# DOM text too; textual.js does not expose its terminal, so catch it as it is stored.
SCREEN_READER = """
Object.defineProperty(Object.prototype, "terminal", {configurable: true, set(term) {
  Object.defineProperty(this, "terminal", {value: term, writable: true, configurable: true, enumerable: true});
  try { term.options.screenReaderMode = true; } catch (e) {}
}});
"""
SCREEN_TEXT = "() => document.querySelector('.xterm-accessibility-tree')?.innerText ?? ''"


class Server:
    """`jobflow-tui server` on a free port; its output goes to files (nobody has to read it)."""

    def __init__(self, tmp: Path, folder: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        token_file = tmp / "token"
        token_file.write_text(self.token + "\n")
        self.out = tmp / "server.out"
        with open(self.out, "wb") as out, open(tmp / "server.err", "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobflow_tui", "server", "--listen", "127.0.0.1:0", "--token-file",
                 str(token_file), str(folder)], stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp)
        try:
            wait_for(lambda: self.out.read_text().endswith("\n") or self.proc.poll() is not None, 20, "the server")
            first = self.out.read_text().splitlines()[0]
            assert first.startswith("serving 2 jobs on http://127.0.0.1:"), first
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.port = int(first.rsplit(":", 1)[1].rstrip("/"))

    def request(self, method: str, path: str, auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers={"Authorization": f"Bearer {self.token}"} if auth else {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str) -> Any:
        status, _, body = self.request(method, path)
        assert status in (200, 201), (status, body)
        return json.loads(body)

    def viewers(self) -> list[psutil.Process]:
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [p for p in kids if alive(p.pid) and "attach" in _cmdline(p)]

    def close(self, run_id: str | None) -> None:
        if run_id is not None and self.proc.poll() is None:
            self.request("POST", f"/api/runs/{run_id}/stop")
        terminate(self.proc)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no {CHROMIUM} (Debian's chromium package) to drive")
def test_the_dashboard_in_a_browser_retries_a_failed_task(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    jobs = tmp_path / "jobs"
    write(jobs / "flow.yaml", f"""
        config: {{name: flow}}
        tasks:
          setup: {{command: 'echo ready'}}
          flaky: {{command: 'test -e {tmp_path}/ok || exit 1', dependencies: [setup]}}
          hold: {{command: 'while [ ! -e {tmp_path}/end ]; do sleep 0.05; done'}}
    """)
    write(jobs / "idle.yaml", "config: {name: idle}\ntasks:\n  a: {command: 'true'}\n")
    server = Server(tmp_path, jobs)
    run_id = None
    try:
        status, headers, _ = server.request("GET", "/", auth=False)
        assert status == 401 and headers["content-type"].startswith("application/json")
        status, _, body = server.request("GET", "/")  # no live run yet: the list of jobs
        assert status == 200 and b"?job=flow" in body and b"no live run" in body

        run_id = server.json("POST", "/api/jobs/flow/runs")["run_id"]
        wait_for(lambda: {n: t.get("state") for n, t in server.json("GET", f"/api/runs/{run_id}")["tasks"].items()}
                 == {"setup": "succeeded", "flaky": "failed", "hold": "running"}, 30, "flaky to fail")
        status, _, body = server.request("GET", "/?job=idle")
        assert status == 404 and b"has no live run" in body
        status, _, body = server.request("GET", "/?job=%3Cb%3Ex")
        assert status == 404 and b"&lt;b&gt;x" in body and b"<b>" not in body

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                context = browser.new_context(viewport={"width": 1200, "height": 700})
                context.add_init_script(SCREEN_READER)
                page = context.new_page()
                # The token becomes a cookie and leaves the address; with one live run, `/` is its dashboard.
                page.goto(f"http://127.0.0.1:{server.port}/?token={server.token}", wait_until="domcontentloaded")
                assert page.url == f"http://127.0.0.1:{server.port}/"
                cookie = next(c for c in context.cookies() if c["name"] == "jobflow_token")
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

                def screen() -> str:
                    return page.evaluate(SCREEN_TEXT)

                wait_for(lambda: all(s in screen() for s in ("setup succeeded", "flaky failed", "hold running")),
                         30, "the task tree in the page")
                assert len(server.viewers()) == 1
                # The tab is a viewer: the run still belongs to its detached runner.
                assert [r["kind"] for r in server.json("GET", "/api/runs?state=live")] == ["detached"]

                def shown() -> str | None:  # the task whose log the dashboard shows: the one selected
                    m = re.search(r"(\S+) attempt \d+/\d+", screen())
                    return m.group(1) if m else None

                assert shown() == "setup"
                page.locator(".xterm-helper-textarea").focus()  # where xterm.js takes the keys
                page.keyboard.press("j")
                wait_for(lambda: shown() == "flaky", 10, "the cursor on flaky")
                (tmp_path / "ok").touch()  # flaky can pass now
                page.keyboard.press("r")
                wait_for(lambda: "flaky succeeded" in screen() and "flaky attempt 2/2" in screen(), 30,
                         "flaky's second attempt to succeed in the page")
                flaky = server.json("GET", f"/api/runs/{run_id}")["tasks"]["flaky"]
                assert flaky["state"] == "succeeded" and flaky["attempts"] == 2, flaky
                assert "Traceback" not in screen()
            finally:
                browser.close()
        wait_for(lambda: not server.viewers(), 15, "the viewer to end with its websocket")
        assert server.json("GET", f"/api/runs/{run_id}")["live"]  # leaving the page leaves the run running
    finally:
        (tmp_path / "end").touch()
        server.close(run_id)
    assert b"Traceback" not in (tmp_path / "server.out").read_bytes() + (tmp_path / "server.err").read_bytes()
