"""The footer: the keys that apply now, fitted to one row. Where Textual's footer would
overlap itself on a narrow terminal, this one drops the least needed keys (help and quit
always stay) and never cuts a label in half."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from .actions import ACTIONS

ALWAYS = ("help", "quit")
RANK = {a.id: i for i, a in enumerate(ACTIONS)}
KEY_SHORT = {"enter": "⏎", "escape": "esc", "slash": "/", "question_mark": "?"}


class KeyBar(Widget):
    """One row of `key label` pairs from the screen's active bindings."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def items(self) -> list[tuple[str, str, str, bool]]:
        """(id, key, label, enabled) of the footer's bindings, in the footer's order."""
        found: dict[str, tuple[str, str, str, bool]] = {}
        for key, active in self.screen.active_bindings.items():
            b = active.binding
            if not b.show or not b.id or b.id in found or b.id not in RANK:
                continue
            found[b.id] = (b.id, KEY_SHORT.get(key, self.app.get_key_display(b)), b.description, active.enabled)
        return sorted(found.values(), key=lambda item: RANK[item[0]])

    def render(self) -> RenderResult:
        items = self.items()
        width = self.size.width

        def length(chosen: list) -> int:
            return sum(len(k) + len(label) + 2 for _, k, label, _ in chosen)

        optional = [i for i in items if i[0] not in ALWAYS]
        while optional and length(items) > width:
            drop = optional.pop()
            items.remove(drop)
        text = Text(no_wrap=True, overflow="crop")
        for _, key, label, enabled in items:
            text.append(f" {key}", style="bold" if enabled else "dim")
            text.append(f" {label}", style="" if enabled else "dim")
        return text
