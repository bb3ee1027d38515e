"""Make task output safe to show: task output is data, never terminal control.

Only SGR colour sequences (`ESC [ ... m`) may survive; every other escape sequence
(OSC titles, OSC 52 clipboard, OSC 8 links, cursor movement, clear screen, DCS, C1
controls) is removed. A carriage return keeps only what was drawn last, as a terminal
would show a progress bar.
"""

from __future__ import annotations

import re

# CSI, OSC (terminated by BEL or ST), DCS/SOS/PM/APC strings, other two-byte escapes,
# and the 8-bit C1 forms of the same.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                           # CSI ... final
  | (?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?        # OSC ... BEL/ST
  | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?  # DCS/SOS/PM/APC
  | \x1b[ -/]*[0-~]?                                           # other ESC sequences
    """,
    re.VERBOSE,
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
# C0 controls except TAB and ESC (handled above), DEL, and the C1 range.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f\x80-\x9f]")


def _keep_sgr(m: re.Match[str]) -> str:
    s = m.group(0)
    return s if _SGR.fullmatch(s) else ""


def clean_line(line: str, colour: bool = True) -> str:
    """One output line made safe: SGR kept if `colour`, all other controls dropped."""
    if line.isprintable():
        # The common case, checked in C: no control character at all (C0, C1, DEL, ESC).
        return line
    if "\r" in line:
        # A progress bar redraws with CR: show its last non-empty state.
        parts = [p for p in line.split("\r") if p]
        line = parts[-1] if parts else ""
    line = _ESCAPES.sub(_keep_sgr if colour else "", line)
    return _CONTROLS.sub("", line)


# Every ASCII control character but TAB and LF (ESC and CR included): what makes a line
# need `clean_line`.
_ASCII_CONTROLS = bytes(range(0x09)) + bytes(range(0x0B, 0x20)) + b"\x7f"


def is_plain(data: bytes) -> bool:
    """Whether `data` (lines joined by b"\\n") is ASCII without a control character, so
    safe to show as it is: checked in C, about a millisecond per megabyte."""
    return data.isascii() and len(data.translate(None, _ASCII_CONTROLS)) == len(data)


def clean_block(data: bytes, colour: bool = True) -> bytes:
    """`clean_line` for each line of a raw block, as UTF-8; a plain block comes back as it is."""
    if is_plain(data):
        return data
    text = data.decode("utf-8", "replace")
    return "\n".join(clean_line(line, colour) for line in text.split("\n")).encode()
