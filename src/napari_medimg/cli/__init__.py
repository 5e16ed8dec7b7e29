"""The ``medimg`` command line.

Each module of this package whose name does not start with an underscore defines
``register(subcommands)``, adding its subcommand(s) to the argparse sub-parser collection; ``main`` finds
them all.  Modules import heavy dependencies (napari, torch) inside their handlers so that ``medimg --help``
stays fast.  A handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__
from ..io.errors import MedImgReadError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medimg",
        description="napari-medimg on the command line: every widget's work as a scriptable command.",
    )
    parser.add_argument("--version", action="version", version=f"napari-medimg {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module_info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module_info.name}").register(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.handler(args) or 0)
    except (MedImgReadError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"medimg {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
