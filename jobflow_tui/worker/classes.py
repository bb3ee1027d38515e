"""The worker's "load" and "check" requests: import the job's task classes, and validate
each task's parameters against its class, before anything runs."""

from __future__ import annotations

import difflib
import sys

from pydantic import ValidationError

from .. import pytask


def load(req: dict) -> dict:
    import contextlib

    # Task modules may print when imported: keep that off the reply channel.
    with contextlib.redirect_stdout(sys.stderr):
        problems = pytask.discover(req.get("dirs", []), req.get("packages", []), req.get("files", []))
    return {"classes": sorted(pytask.registry()), "problems": problems}


def check(req: dict) -> dict:
    known = pytask.registry()
    results: dict[str, list[dict]] = {}
    for t in req["tasks"]:
        cls = known.get(t["class"])
        if cls is None:
            close = difflib.get_close_matches(t["class"], list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            where = f" (found: {', '.join(sorted(known))})" if known and not close else ""
            results[t["name"]] = [{"loc": ["<class>"], "msg": f"unknown task class '{t['class']}'{hint}{where}"}]
            continue
        try:
            cls.model_validate(t["params"])
            results[t["name"]] = []
        except ValidationError as e:
            results[t["name"]] = [
                {"loc": list(err["loc"]), "msg": _message(err)} for err in e.errors(include_url=False)
            ]
    return {"results": results}


def _message(err: dict) -> str:
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "missing":
        return f"parameter '{loc}' is required"
    if err["type"] == "extra_forbidden":
        return f"unknown parameter '{loc}'"
    return f"parameter '{loc}': {err['msg']}"
