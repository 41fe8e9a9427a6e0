"""The one check every person and collection name passes before it is stored.

Names come from folder names, CSV rows, the command line and, through the
service, from strangers. Every way a name enters (enroll from a folder, a CSV,
one image with a person; rename; create or ensure a collection) calls
`check_name`, in the Gallery API and again in the store, so no caller can skip
it. Names are looked up as they are given (a name stored before this check
existed can still be shown, renamed or forgotten).
"""

from __future__ import annotations

from vultus.gallery.errors import GalleryError
from vultus.textsafe import has_control, safe_text

MAX_NAME_LENGTH = 200  # characters (code points), after trimming surrounding whitespace


def check_name(name: object, kind: str = "person") -> str:
    """`name` without surrounding whitespace, or GalleryError code "invalid_name"
    (data: kind, reason, length, limit) when it is empty, longer than
    MAX_NAME_LENGTH, or holds a control or format character (an escape
    sequence, a newline, a bidi override) that could rewrite a terminal or a
    table when the name is shown."""
    if not isinstance(name, str):
        raise GalleryError(f"a {kind} name must be text (got {type(name).__name__})", code="invalid_name",
                           kind=kind, reason="not_text", length=0, limit=MAX_NAME_LENGTH)
    text = name.strip()
    if not text:
        raise GalleryError(f"a {kind} name cannot be empty", code="invalid_name", kind=kind, reason="empty",
                           length=len(name), limit=MAX_NAME_LENGTH)
    if len(text) > MAX_NAME_LENGTH:
        raise GalleryError(f"{kind} name too long ({len(text)} characters; at most {MAX_NAME_LENGTH})",
                           code="invalid_name", kind=kind, reason="too_long", length=len(text),
                           limit=MAX_NAME_LENGTH)
    if has_control(text):
        pos = next(i for i, c in enumerate(text) if has_control(c))
        shown = safe_text(text[:60]) + ("..." if len(text) > 60 else "")
        raise GalleryError(f"{kind} name {shown} holds a control or format character ({safe_text(text[pos])} at "
                           f"position {pos}); names may not hold escapes, line breaks or direction overrides",
                           code="invalid_name", kind=kind, reason="control_character", length=len(text),
                           limit=MAX_NAME_LENGTH, position=pos, character=f"U+{ord(text[pos]):04X}")
    return text
