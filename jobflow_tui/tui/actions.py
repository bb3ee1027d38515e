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
    description: str  # the help's text (short: the help fits 80x24 in two columns)
    footer: str = ""  # the footer's label ("": not in the footer); it gives way to narrow screens
    palette: str = ""  # "task" (on a named task) or "job": offered in the palette
    palette_words: str = ""  # how the palette says it (default: the description)
    palette_action: str = ""  # what the palette calls (default: `action`)
    key: bool = True  # False: a key a widget handles itself; listed in the help only


# In the footer's order; when it is too narrow, the last ones give way first (help and quit
# always stay).
ACTIONS: list[Action] = [
    Action("down", "j", "cursor(1)", "next task"),
    Action("up", "k", "cursor(-1)", "previous task"),
    Action("log", "enter", "focus_log", "into the log pane", "log", palette="task", palette_words="show log of",
           palette_action="show"),
    Action("retry", "r", "retry", "retry a failed task", "retry", palette="task", palette_words="retry"),
    Action("restart", "R", "restart", "restart it and after", "restart", palette="task", palette_words="restart"),
    Action("abort", "a,x", "abort", "abort the task", "abort", palette="task", palette_words="abort"),
    Action("next_failure", "e", "next_failure", "next failed task", "fail"),
    Action("follow", "f", "follow", "follow the log end", "follow"),
    Action("wrap", "w", "wrap", "wrap long lines", "wrap"),
    Action("zoom", "z", "zoom", "log pane full screen", "zoom"),
    Action("graph", "g", "graph", "the DAG as a graph", "graph", palette="job", palette_words="show the graph"),
    Action("merged", "L", "merged", "all tasks' logs, merged", "all", palette="job",
           palette_words="show every task's log merged"),
    Action("search", "slash", "search", "search the log", "find"),
    Action("next_match", "n", "next_match(1)", "next match"),
    Action("previous_match", "N", "next_match(-1)", "previous match"),
    Action("mark", "v", "mark", "mark lines (up/down)", "mark"),
    Action("copy", "y", "copy", "copy marked lines", "copy"),
    Action("report", "E", "report", "failure report, copied", "report", palette="task",
           palette_words="failure report of"),
    Action("earlier_attempt", "left_square_bracket", "attempt(-1)", "earlier attempt"),
    Action("later_attempt", "right_square_bracket", "attempt(1)", "later attempt"),
    Action("history", "H", "past_runs", "past runs, read-only", palette="job", palette_words="past runs"),
    Action("pager", "o", "pager", "log in $PAGER", "pager"),
    Action("pause", "p", "pause", "pause launching", "pause", palette="job", palette_words="pause / resume launching"),
    Action("abort_all", "A", "abort_all", "abort all running", "abort all", palette="job",
           palette_words="abort all running tasks"),
    Action("detach", "d", "detach", "detach, run goes on", "detach", palette="job",
           palette_words="detach: leave the run running"),
    Action("help", "question_mark", "help", "this help", "help", palette="job", palette_words="help"),
    Action("quit", "q", "quit_app", "quit", "quit"),
    Action("tasks", "escape", "focus_tree", "back to the tasks"),
    # Keys the task list and the app handle themselves.
    Action("move", "↑↓ PgUp…", "", "move, scroll", key=False),
    Action("fold", "space", "", "fold a group/subflow", key=False),
    Action("palette", "ctrl+p", "", "palette: task: retry …", key=False),
]


def bindings() -> list[Binding]:
    """The app's key bindings."""
    return [Binding(a.keys, a.action, a.footer or a.description, show=bool(a.footer), id=a.id)
            for a in ACTIONS if a.key]


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
