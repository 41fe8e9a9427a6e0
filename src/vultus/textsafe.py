"""Make untrusted text safe to show on a terminal or in a table.

Person, collection and file names come from users and from files; a name with
an ANSI escape or a newline could clear the screen, retitle the window or forge
table rows. Names are refused at entry when they hold control characters
(`has_control`); everything shown to people passes through `safe_text`, which
writes each control character as a visible escape (``\\x1b``, ``\\n``).
"""

from __future__ import annotations

import unicodedata


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls incl. ESC, CR, LF, DEL; Cf: format chars such as bidi
    # overrides that can make a name read backwards; Zl/Zp: line/para separators.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def has_control(text: str) -> bool:
    return any(_is_control(c) for c in text)


def safe_text(text: object) -> str:
    """`text` with every control or format character written as a visible escape."""
    s = str(text)
    if not has_control(s):
        return s
    out = []
    for c in s:
        if _is_control(c):
            o = ord(c)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)
