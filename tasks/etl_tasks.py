"""Example Python tasks for jobdefs/python.yaml: typed parameters (an enum and a nested
model included), every lifecycle hook, outputs in both directions, and shared_dict."""

from __future__ import annotations

import logging
from enum import StrEnum

from pydantic import BaseModel

from jobflow_tui import Task, task

log = logging.getLogger("etl")


class Mode(StrEnum):
    FULL = "full"
    DELTA = "delta"


class Database(BaseModel):
    host: str
    port: int = 5432
    name: str = "warehouse"


@task
class CountRows(Task):
    """Checks what the extract command published and counts it."""

    source: str
    min_rows: int = 1
    mode: Mode = Mode.FULL
    db: Database

    def on_create(self) -> None:
        print(f"on_create: counting {self.source} ({self.mode.value}) for {self.db.host}:{self.db.port}/{self.db.name}")

    def run(self) -> dict:
        rows = int(self.pull_output("extract")["rows"])  # a command's outputs, from $JOBFLOW_OUTPUT
        log.info("%s rows in %s", rows, self.source)
        if rows < self.min_rows:
            raise ValueError(f"only {rows} rows, expected at least {self.min_rows}")
        self.shared_dict["rows_seen"] = rows
        return {"rows": rows, "source": self.source}

    def on_success(self) -> None:
        print("on_success: counted")

    def on_destroy(self) -> None:
        print("on_destroy")


@task
class Publish(Task):
    """Fails its first attempt (a flaky target), succeeds on the retry."""

    target: str

    def on_create(self) -> None:
        print(f"on_create: attempt {self.attempt}")

    def on_restart(self) -> None:
        print("on_restart: running again after a failure")

    def run(self) -> dict:
        counted = self.pull_output("count")
        if self.attempt == 1:
            raise ConnectionError(f"{self.target} refused the connection")
        print(f"published {counted['rows']} rows of {counted['source']} to {self.target}")
        self.shared_dict["published_to"] = self.target
        return {"published": counted["rows"]}

    def on_failure(self) -> None:
        print("on_failure: will retry")

    def on_success(self) -> None:
        print("on_success")

    def on_destroy(self) -> None:
        print("on_destroy")

    def on_abort(self) -> None:
        print("on_abort: closing the connection")
