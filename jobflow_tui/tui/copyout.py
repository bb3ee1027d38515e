"""Copying text out of the dashboard: to the terminal's clipboard with OSC 52 (it works
over SSH, and tmux passes it on with `set-clipboard on`), and always to a file too, since
many terminals ignore OSC 52 and say nothing."""

from __future__ import annotations

import os

from textual.app import App

from ..engine.checkpoint import write_atomic

OSC52_LIMIT = 512 * 1024  # bytes of text; terminals and tmux refuse much larger sequences


def copy_out(app: App, text: str, folder: str, filename: str) -> tuple[str | None, str]:
    """Send `text` to the clipboard (if not too big) and save it as `folder/filename`.
    Returns (the file's path or None, a sentence for the operator)."""
    sent = len(text.encode()) <= OSC52_LIMIT
    if sent:
        app.copy_to_clipboard(text)
    path: str | None = os.path.join(folder, filename)
    try:
        if not folder:
            raise FileNotFoundError(2, "the run has no folder yet")
        os.makedirs(folder, exist_ok=True)
        write_atomic(path, text.encode())
    except OSError as e:
        path = None
        saved = f"could not save it in {folder}: {e.strerror}"
    else:
        saved = f"saved in {path}"
    where = "copied to the terminal's clipboard" if sent else "too big for the terminal's clipboard"
    return path, f"{where}; {saved}"
