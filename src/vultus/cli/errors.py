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
    "path_outside": "pass --allow-outside to enroll images outside the CSV's folder",
    "read_only": "reads still work; copy the gallery somewhere writable to change it",
    "model_mismatch": "pass --embedder {collection_embedder}, or migrate the collection: vultus gallery reembed "
                      "--collection {collection} --embedder {requested_embedder}",
    "no_calibration": "set a measured threshold: vultus gallery threshold --collection {collection} --threshold T "
                      "--fmr F --source WHERE",
    "busy": "another vultus process holds the gallery; try again when it has finished",
    "challenge_forged": "issue a new challenge with `vultus liveness challenge` on this installation",
    "no_cluster": "`vultus cluster show` lists the clusters; --collection picks another collection",
    "no_cluster_face": "face keys are IMAGE_SHA256:N, as `vultus cluster show --json` lists them",
    "ray_unreachable": "check --ray ADDRESS (`ray status` on the cluster), or leave it out to start a local Ray",
}


def exit_status(exc: VultusError) -> int:
    return EXIT_STATUS.get(exc.code, DEFAULT_EXIT_STATUS)


def error_line(exc: VultusError) -> str:
    """The one line printed for an error: message, then the CLI's hint if any."""
    from vultus.textsafe import safe_text

    line = f"vultus: error: {safe_text(str(exc))}"
    hint = _hint(exc)
    if hint and hint not in line:
        line += f" ({hint})"
    return line


def _hint(exc: VultusError) -> str | None:
    """The code's hint, filled in from the error's data; none when the data it
    names is missing (a hint with a placeholder left in would mislead)."""
    from vultus.textsafe import safe_text

    template = HINTS.get(exc.code)
    if template is None:
        return None
    try:
        return template.format_map({k: safe_text(v) for k, v in exc.data.items()})
    except (KeyError, IndexError, ValueError):
        return None


def report(exc: VultusError) -> int:
    """Print the error's line on stderr; return its exit status."""
    print(error_line(exc), file=sys.stderr)
    return exit_status(exc)
