"""The `vultus` command line.

Each command group lives in its own module with an `add_commands(subparsers)`
function; a command is a function taking the parsed args and returning an exit
code. A VultusError becomes one line on stderr and an exit status, both from
`cli/errors.py`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vultus.errors import VultusError

# Modules that contribute commands, in the order `vultus --help` lists them.
COMMAND_MODULES = [
    "vultus.cli.core",
    "vultus.cli.evaluate",
    "vultus.cli.gallery",
    "vultus.cli.analyze",
    "vultus.cli.serve",
    "vultus.cli.liveness",
    "vultus.cli.video",
    "vultus.cli.cluster",
    "vultus.cli.privacy",
    "vultus.cli.bulk",
]


def build_parser() -> argparse.ArgumentParser:
    from vultus import __version__

    parser = argparse.ArgumentParser(prog="vultus", description="Offline face analysis: detect, verify, identify.")
    parser.add_argument("--version", action="version", version=f"vultus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except VultusError as exc:
        from vultus.cli.errors import report

        return report(exc)
    except KeyboardInterrupt:
        print("vultus: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
