"""jobflow-tui: run DAGs of jobs with a live terminal dashboard, or headless."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Task", "task", "__version__"]


def __getattr__(name: str) -> Any:
    # Task classes pull in pydantic; load them only when a job uses them.
    if name in ("Task", "task"):
        from . import pytask

        return getattr(pytask, name)
    raise AttributeError(name)
