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
        # Two columns, so every key shows at 80x24 without scrolling.
        half = -(-len(self.rows) // 2)
        columns = [self.rows[:half], self.rows[half:]]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Keys", style="bold")
        text.append("   (keys.toml remaps them)\n", style="dim")
        for i in range(half):
            for column in columns:
                if i < len(column):
                    keys, description, bound = column[i]
                    text.append(f" {keys:<9}", style="bold" if bound else "")
                    text.append(f"{description:<26}")
            text.append("\n")
        text.append("Esc or ? closes", style="dim")
        with VerticalScroll(id="help"):
            yield Static(text)
