"""Every run remembered: its trail of events (`events.jsonl` in its folder, the truth) and
an index of all runs in `<state dir>/history.sqlite3` for queries, remade from the trails
when it is missing or spoilt."""

from .store import History, HistoryError, RunRow
from .trail import TrailWriter, read_trail

__all__ = ["History", "HistoryError", "RunRow", "TrailWriter", "read_trail"]
