"""The Textual dashboard; sits on the engine's public API and events."""

from __future__ import annotations


def run_dashboard(scheduler) -> int:
    """Run the dashboard for `scheduler`; returns the exit code."""
    from .app import run_dashboard as run

    return run(scheduler)
