"""Operator key remapping: a small TOML file maps binding ids to keys.

    # ~/.config/jobflow-tui/keys.toml   (or the file named by $JOBFLOW_TUI_KEYS)
    [keys]
    retry = "ctrl+r"
    abort = "x,delete"
"""

from __future__ import annotations

import os
import tomllib


def keymap_path() -> str:
    env = os.environ.get("JOBFLOW_TUI_KEYS")
    if env:
        return env
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "jobflow-tui", "keys.toml")


def load_keymap(path: str | None = None) -> tuple[dict[str, str], str | None]:
    """The remapping and, if the file is unusable, why (the defaults then apply)."""
    path = path or keymap_path()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}, None
    except (OSError, tomllib.TOMLDecodeError) as e:
        return {}, f"{path}: {e}; using the default keys"
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(isinstance(v, str) and v for v in keys.values()):
        return {}, f"{path}: [keys] must map binding names to key strings; using the default keys"
    return dict(keys), None
