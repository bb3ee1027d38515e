"""`<state dir>/history.sqlite3`: every run and attempt of every job in the state dir,
for queries (`jobflow-tui history`, past durations in the dashboard).

SQLite in WAL mode with a busy timeout, so several runners (and readers) share it; a
schema version (`PRAGMA user_version`) with migrations. It is an index, never the truth:
each run's trail in its folder is, and `rebuild` remakes the index from them. A runner
writes through `Recorder`, a thread of its own, so a slow disk or a locked database never
stalls the run; a database that cannot be used is said once, and the run goes on.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from .trail import read_trail

FILENAME = "history.sqlite3"
BUSY_MS = 10_000
BATCH_WAIT = 0.2  # seconds a runner's writer gathers records into one transaction
MIGRATIONS = [
    # 1: runs and their attempts
    """
    CREATE TABLE runs (
        job TEXT NOT NULL, run_id TEXT NOT NULL, path TEXT, run_dir TEXT,
        started_at REAL, ended_at REAL, state TEXT NOT NULL, exit_code INTEGER,
        counts TEXT, params TEXT, host TEXT, user TEXT, hash TEXT,
        PRIMARY KEY (job, run_id));
    CREATE INDEX runs_by_start ON runs (job, started_at DESC);
    CREATE TABLE attempts (
        job TEXT NOT NULL, run_id TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL,
        state TEXT NOT NULL, exit_code INTEGER, started_at REAL, finished_at REAL, reason TEXT,
        PRIMARY KEY (job, run_id, task, attempt));
    CREATE INDEX attempts_by_task ON attempts (job, task, state, finished_at);
    """,
]
ENDED = {"succeeded", "failed", "aborted", "retrying"}  # the state an attempt's end leads to


class HistoryError(Exception):
    """The database cannot be used (locked for too long, not a database, a newer schema)."""


@dataclass
class RunRow:
    job: str
    run_id: str
    path: str
    run_dir: str
    started_at: float | None
    ended_at: float | None
    state: str  # running (or ended without a word: a crash), succeeded, failed, stopped
    exit_code: int | None
    counts: dict[str, int]
    params: dict[str, str]

    @property
    def duration(self) -> float | None:
        return None if self.started_at is None or self.ended_at is None else self.ended_at - self.started_at


class History:
    """The index of one state dir. Each method opens what it needs; nothing stays open."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, FILENAME)

    def connect(self) -> sqlite3.Connection:
        deadline = time.monotonic() + BUSY_MS / 1000
        while True:
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
                db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
                # Two runners making the database at once: switching it to WAL can find the
                # other one busy (the switch waits for no timeout): try again for a while.
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower()
                if mode != "wal":
                    db.close()
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    raise HistoryError(f"{self.path}: cannot use write-ahead logging (journal mode {mode})")
                db.execute("PRAGMA synchronous = NORMAL")  # WAL: safe against crashes, one fsync per checkpoint
                self._migrate(db)
                return db
            except sqlite3.OperationalError as e:
                if "locked" in str(e) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise HistoryError(f"{self.path}: {e}") from None
            except sqlite3.Error as e:
                raise HistoryError(f"{self.path}: {e}") from None

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise HistoryError(f"{self.path} was written by a newer jobflow-tui (schema {version})")
        if version == len(MIGRATIONS):
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            for n in range(version, len(MIGRATIONS)):
                for statement in filter(str.strip, MIGRATIONS[n].split(";")):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---- writing -----------------------------------------------------------------

    def apply(self, db: sqlite3.Connection, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Put trail records (with the run folder each belongs to) into the index, in one transaction."""
        db.execute("BEGIN IMMEDIATE")
        try:
            for run_dir, rec in records:
                _apply(db, run_dir, rec)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, job: str, run_ids: list[str]) -> None:
        """Runs whose folders were pruned."""
        with closing(self.connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            for run_id in run_ids:
                db.execute("DELETE FROM runs WHERE job = ? AND run_id = ?", (job, run_id))
                db.execute("DELETE FROM attempts WHERE job = ? AND run_id = ?", (job, run_id))
            db.execute("COMMIT")

    def rebuild(self) -> int:
        """Remake the index from every run folder's trail, in one transaction on the
        database in place (runners that have it open go on writing to it); the number of
        runs found."""
        trails = sorted(glob.glob(os.path.join(glob.escape(self.state_dir), "*", "runs", "*", "events.jsonl")))
        if os.path.exists(self.path):
            try:
                with closing(self.connect()) as db:
                    pass
            except HistoryError:
                # Not a database at all: only then is the file replaced.
                for spoilt in (self.path, f"{self.path}-wal", f"{self.path}-shm"):
                    if os.path.exists(spoilt):
                        os.unlink(spoilt)
        with closing(self.connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM runs")
                db.execute("DELETE FROM attempts")
                for path in trails:
                    run_dir = os.path.dirname(path)
                    for rec in read_trail(path):
                        _apply(db, run_dir, rec)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(trails)

    # ---- reading -----------------------------------------------------------------

    def runs(self, job: str, limit: int | None = 20, state: str | None = None) -> list[RunRow]:
        """Runs of `job`, newest first."""
        sql = "SELECT job, run_id, path, run_dir, started_at, ended_at, state, exit_code, counts, params FROM runs " \
              "WHERE job = ?" + (" AND state = ?" if state else "") + " ORDER BY started_at DESC, run_id DESC"
        args: list[Any] = [job, *([state] if state else [])]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with closing(self.connect()) as db:
            rows = db.execute(sql, args).fetchall()
        return [RunRow(*r[:8], _json(r[8]), _json(r[9])) for r in rows]

    def last_durations(self, job: str, before_run: str | None = None) -> dict[str, float]:
        """Each task's duration in its most recent successful attempt (of runs other than `before_run`)."""
        sql = """SELECT task, finished_at - started_at FROM attempts a
                 WHERE job = ? AND state = 'succeeded' AND run_id != ? AND finished_at = (
                   SELECT max(finished_at) FROM attempts b
                   WHERE b.job = a.job AND b.task = a.task AND b.state = 'succeeded' AND b.run_id != ?)"""
        other = before_run or ""
        with closing(self.connect()) as db:
            return {task: d for task, d in db.execute(sql, (job, other, other)) if d is not None and d >= 0}


class Recorder:
    """A runner's writer: records queue up and a thread puts them in the index, so the run
    never waits for the database. `warn` is told once if the index cannot be written."""

    def __init__(self, history: History, run_dir: str, warn: Callable[[str], None]) -> None:
        self.history, self.run_dir, self.warn = history, run_dir, warn
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # records; a flush's Event; None: the end
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._write, name="history", daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until what was added is written."""
        done = threading.Event()
        self._queue.put(done)  # type: ignore[arg-type]
        self._closing.set()  # no gathering: write now
        done.wait(timeout)
        self._closing.clear()

    def close(self, timeout: float = 5.0) -> None:
        """Write what waits (for at most `timeout` seconds: the run folder keeps it anyway)."""
        self._queue.put(None)
        self._closing.set()
        self._thread.join(timeout)

    def _write(self) -> None:
        db: sqlite3.Connection | None = None
        broken = False
        done = False
        while not done:
            batch = [self._queue.get()]
            if isinstance(batch[0], dict):
                self._closing.wait(BATCH_WAIT)  # one transaction for what comes meanwhile (not at the end)
            while not self._queue.empty():
                batch.append(self._queue.get())
            done = None in batch
            flushed = [r for r in batch if isinstance(r, threading.Event)]
            records = [r for r in batch if isinstance(r, dict)]
            try:
                if records and not broken:
                    db = db or self.history.connect()
                    self.history.apply(db, ((self.run_dir, r) for r in records))
            except (HistoryError, sqlite3.Error, OSError) as e:
                broken = True  # said once; the trail in the run folder has every record
                self.warn(f"the history index is not written ({e}); `jobflow-tui history --rebuild` remakes it "
                          "from the run folders")
            for event in flushed:
                event.set()
        if db is not None:
            db.close()


def _apply(db: sqlite3.Connection, run_dir: str, rec: dict[str, Any]) -> None:
    kind, job, run_id = rec.get("event"), rec.get("job"), rec.get("run_id")
    if not isinstance(job, str) or not isinstance(run_id, str):
        return
    if kind == "run_start":
        db.execute(
            """INSERT INTO runs (job, run_id, path, run_dir, started_at, state, params, host, user, hash)
               VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)
               ON CONFLICT (job, run_id) DO UPDATE SET state = 'running', ended_at = NULL, exit_code = NULL""",
            (job, run_id, rec.get("path"), run_dir, rec.get("started_at", rec.get("time")),
             json.dumps(rec.get("params") or {}), rec.get("host"), rec.get("user"), rec.get("hash")))
    elif kind == "state" and rec.get("previous") == "running" and rec.get("state") in ENDED:
        db.execute("INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (job, run_id, rec.get("task"), rec.get("attempt"),
                    "failed" if rec.get("state") == "retrying" else rec.get("state"), rec.get("exit_code"),
                    rec.get("started_at"), rec.get("time"), rec.get("reason")))
    elif kind == "run_end":
        db.execute("UPDATE runs SET ended_at = ?, state = ?, exit_code = ?, counts = ? WHERE job = ? AND run_id = ?",
                   (rec.get("time"), rec.get("state"), rec.get("exit_code"), json.dumps(rec.get("counts") or {}),
                    job, run_id))


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
