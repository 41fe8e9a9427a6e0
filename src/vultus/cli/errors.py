"""How the CLI reports a VultusError: one line on stderr and an exit status.

The library's messages never name flags; the hints that do live here, keyed by
the error's code. One table maps codes to exit statuses (the service has its
own table mapping the same codes to HTTP statuses).
"""

from __future__ import annotations

import sys

from vultus.errors import VultusError

#: Exit status per error code. Every error a user can cause exits 2 (the README's
#: promise); codes not listed here use DEFAULT_EXIT_STATUS.
EXIT_STATUS: dict[str, int] = {}
DEFAULT_EXIT_STATUS = 2

#: A hint with the flag that fixes it, per error code.
HINTS: dict[str, str] = {
    "many_faces": "use --largest to take the biggest",
    "read_only": "reads still work; copy the gallery somewhere writable to change it",
    "no_cluster": "`vultus cluster show` lists the clusters; --collection picks another collection",
    "no_face": "face keys are IMAGE_SHA256:N, as `vultus cluster show --json` lists them",
}


def exit_status(exc: VultusError) -> int:
    return EXIT_STATUS.get(exc.code, DEFAULT_EXIT_STATUS)


def error_line(exc: VultusError) -> str:
    """The one line printed for an error: message, then the CLI's hint if any."""
    from vultus.textsafe import safe_text

    line = f"vultus: error: {safe_text(str(exc))}"
    hint = HINTS.get(exc.code)
    if hint and hint not in line:
        line += f" ({hint})"
    return line


def report(exc: VultusError) -> int:
    """Print the error's line on stderr; return its exit status."""
    print(error_line(exc), file=sys.stderr)
    return exit_status(exc)
