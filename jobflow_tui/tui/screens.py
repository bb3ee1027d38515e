"""Modal screens: a yes/no question and the generated help."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class Confirm(ModalScreen[bool]):
    """A yes/no question: y or Enter says yes, n or Escape says no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.question), id="question")
            yield Label("[y] yes    [n] no", id="choices", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def describe_keys(bindings: list[Binding], keymap: Mapping[str, str]) -> list[tuple[str, str]]:
    """(keys, description) for every binding, with the user's remapping applied."""
    rows = []
    for b in bindings:
        keys = keymap.get(b.id, b.key) if b.id else b.key
        shown = ", ".join(_key_name(k.strip()) for k in keys.split(","))
        rows.append((shown, b.description))
    return rows


def _key_name(key: str) -> str:
    return {
        "slash": "/", "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
        "enter": "Enter", "escape": "Esc",
    }.get(key, key)


class Help(ModalScreen[None]):
    """Every key of the dashboard, generated from its bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, bindings: list[Binding], keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.rows = describe_keys(bindings, keymap)

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys\n\n", style="bold")
        for keys, description in self.rows:
            text.append(f"  {keys:<14}", style="bold")
            text.append(f"{description}\n")
        text.append("  up, down      move (PgUp, PgDn, Home, End)\n")
        text.append("  space         fold a group (shard-01, shard-02…)\n")
        text.append("  ctrl+p        palette: task: retry NAME, …\n")
        text.append("\nEsc or ? closes; up/down scroll.", style="dim")
        with VerticalScroll(id="dialog"):
            yield Static(text)
