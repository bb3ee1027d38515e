"""Modal screens: a question (yes, no, and perhaps a few more answers) and the generated help."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class Confirm(ModalScreen[bool | str]):
    """A yes/no question: y or Enter says yes, n or Escape says no; `others` are more
    answers, each a key ("d": "detach"), which dismiss with that key."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "yes", no: str = "no", others: dict[str, str] | None = None) -> None:
        super().__init__()
        self.question = question
        self.answers = {"y": yes, **(others or {}), "n": no}

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.question), id="question")
            yield Label("    ".join(f"[{k}] {v}" for k, v in self.answers.items()), id="choices", markup=False)

    def on_key(self, event) -> None:
        if event.key in self.answers and event.key not in ("y", "n"):
            event.stop()
            self.dismiss(event.key)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Help(ModalScreen[None]):
    """Every key of the dashboard, from its one list of actions."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, rows: list[tuple[str, str, bool]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys\n\n", style="bold")
        for keys, description, bound in self.rows:
            text.append(f"  {keys:<14}", style="bold" if bound else "")
            text.append(f"{description}\n")
        text.append("\nEsc or ? closes; up/down scroll.", style="dim")
        with VerticalScroll(id="dialog"):
            yield Static(text)
