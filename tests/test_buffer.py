"""The dashboard's bounded tail of a task's output: however output arrives (blocks of any
size, read at any moment), it counts every line and keeps the newest ones, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobflow_tui.tui.buffer import TailBuffer


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab\u00e9", max_size=40), min_size=1, max_size=600),
    cuts=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=50),
    reads=st.lists(st.booleans(), max_size=50),
    limit=st.sampled_from([5, 50, 1000]),
    max_chars=st.sampled_from([60, 400, 100_000]),
)
def test_every_line_counted_and_the_newest_kept(lines, cuts, reads, limit, max_chars) -> None:
    buf = TailBuffer(limit=limit, max_chars=max_chars)
    i = n = 0
    while i < len(lines):
        block = lines[i : i + cuts[n % len(cuts)]]
        buf.add_block("\n".join(block).encode())
        if reads and reads[n % len(reads)]:
            assert buf.total == i + len(block)  # a read in between changes nothing
        i += len(block)
        n += 1
    assert buf.total == len(lines)
    kept = buf.lines
    assert kept == lines[len(lines) - len(kept):]  # the newest, in order
    assert kept and len(kept) <= limit * 1.25
