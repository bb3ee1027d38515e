"""Every action of the dashboard, once: its keys, what it does, and whether the footer,
the command palette and the help screen show it. The bindings, the palette and the help
are all made from this list, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    id: str  # the binding's id, which keys.toml remaps
    keys: str  # default keys, comma-separated (Textual's names)
    action: str  # what Textual calls: `action_<name>(args)` on the app
    description: str  # the footer's label and the help's text
    footer: bool = True
    palette: str = ""  # "task" (on a named task) or "job": offered in the palette
    palette_words: str = ""  # how the palette says it (default: the description)
    palette_action: str = ""  # what the palette calls (default: `action`)
    key: bool = True  # False: a key a widget handles itself; listed in the help only


ACTIONS: list[Action] = [
    Action("down", "j", "cursor(1)", "down", footer=False),
    Action("up", "k", "cursor(-1)", "up", footer=False),
    Action("log", "enter", "focus_log", "log", palette="task", palette_words="show log of", palette_action="show"),
    Action("retry", "r", "retry", "retry", palette="task"),
    Action("restart", "R", "restart", "restart", palette="task"),
    Action("abort", "a,x", "abort", "abort", palette="task"),
    Action("abort_all", "A", "abort_all", "abort all", palette="job", palette_words="abort all running tasks"),
    Action("pause", "p", "pause", "pause", palette="job", palette_words="pause / resume launching"),
    Action("follow", "f", "follow", "follow"),
    Action("search", "slash", "search", "search"),
    Action("next_match", "n", "next_match(1)", "next", footer=False),
    Action("previous_match", "N", "next_match(-1)", "previous", footer=False),
    Action("earlier_attempt", "left_square_bracket", "attempt(-1)", "earlier attempt", footer=False),
    Action("later_attempt", "right_square_bracket", "attempt(1)", "later attempt", footer=False),
    Action("pager", "o", "pager", "pager"),
    Action("help", "question_mark", "help", "help", palette="job"),
    Action("detach", "d", "detach", "detach", palette="job", palette_words="detach: leave the run running"),
    Action("quit", "q", "quit_app", "quit"),
    Action("tasks", "escape", "focus_tree", "tasks", footer=False),
    # Keys the task list and the app handle themselves.
    Action("move", "up, down", "", "move (PgUp, PgDn, Home, End)", footer=False, key=False),
    Action("fold", "space", "", "fold a group (shard-01, shard-02…)", footer=False, key=False),
    Action("palette", "ctrl+p", "", "palette: task: retry NAME, …", footer=False, key=False),
]


def bindings() -> list[Binding]:
    """The app's key bindings."""
    return [Binding(a.keys, a.action, a.description, show=a.footer, id=a.id) for a in ACTIONS if a.key]


def palette(scope: str) -> list[tuple[str, str]]:
    """(action name, words) of the actions the palette offers in `scope` ("task" or "job")."""
    return [(a.palette_action or a.action, a.palette_words or a.description) for a in ACTIONS if a.palette == scope]


def help_rows(keymap: Mapping[str, str]) -> list[tuple[str, str, bool]]:
    """(keys, description, bound) of every action, with the operator's remapping applied;
    `bound` is False for keys a widget handles itself."""
    rows = []
    for a in ACTIONS:
        if a.key:
            keys = ", ".join(_key_name(k.strip()) for k in keymap.get(a.id, a.keys).split(","))
        else:
            keys = a.keys
        rows.append((keys, a.description, a.key))
    return rows


def _key_name(key: str) -> str:
    return {
        "slash": "/", "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
        "enter": "Enter", "escape": "Esc",
    }.get(key, key)
