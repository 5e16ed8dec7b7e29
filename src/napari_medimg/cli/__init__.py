"""The ``medimg`` command line.

Each module of this package whose name does not start with an underscore defines
``register(subcommands)``, adding its subcommand(s) to the argparse sub-parser collection; ``main`` finds
them all.  Commands of the napari adapter (``medimg demo``) are modules of :mod:`napari_medimg.plugin`
registered through the ``napari_medimg.commands`` entry point, so this package never imports napari or Qt.
Modules import heavy dependencies (torch, ...) inside their handlers so that ``medimg --help`` stays fast.
A handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys

from .. import __version__
from ..io.errors import MedImgReadError

__all__ = ["main", "build_parser", "error_message"]


#: entry-point group of commands that other packages of the distribution (the napari adapter) add
COMMAND_ENTRY_POINTS = "napari_medimg.commands"


def _command_modules() -> dict[str, str]:
    """Command name → module of this package that registers it."""
    return {
        m.name: f"{__name__}.{m.name}"
        for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if not m.name.startswith("_")
    }


def _all_command_modules() -> dict[str, str]:
    """This package's command modules and those registered as :data:`COMMAND_ENTRY_POINTS` (read only when
    needed: scanning the installed packages' metadata costs tens of milliseconds)."""
    from importlib.metadata import entry_points

    modules = _command_modules()
    for point in entry_points(group=COMMAND_ENTRY_POINTS):
        modules.setdefault(point.name, point.value)
    return dict(sorted(modules.items()))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``medimg`` parser: every subcommand, or only the command ``only`` (what ``main`` runs)."""
    parser = argparse.ArgumentParser(
        prog="medimg",
        description="napari-medimg on the command line: every widget's work as a scriptable command.",
    )
    parser.add_argument("--version", action="version", version=f"napari-medimg {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = _command_modules()
    if only not in modules:
        modules = _all_command_modules()
    if only in modules:
        modules = {only: modules[only]}
    for module in modules.values():
        importlib.import_module(module).register(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `medimg convert ...` imports and registers only the convert module; `medimg --help`, no command or an
    # unknown one build the whole parser (the listing and the error name every command)
    only = argv[0] if argv and not argv[0].startswith("-") else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"medimg {args.command}: interrupted", file=sys.stderr)
        return 130
    except _EXPECTED + _extra_expected() as error:
        print(f"medimg {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 2


#: failures that bad input or the machine (full disk, read-only folder) cause: one line, exit 2, no traceback
_EXPECTED = (MedImgReadError, OSError, ValueError, RecursionError, MemoryError)


def _extra_expected() -> tuple[type[BaseException], ...]:
    """Error types of optional libraries, when a handler has imported them (safetensors, pandas)."""
    extra = []
    if "safetensors" in sys.modules:
        extra.append(sys.modules["safetensors"].SafetensorError)
    return tuple(extra)


def error_message(error: BaseException) -> str:
    """One line for an error a user can act on.

    Parameters
    ----------
    error : BaseException
        The error.

    Returns
    -------
    str
        ``strerror: filename`` for OS errors (full disk, read-only folder, a folder where a file is
        expected), a plain sentence for deep nesting and memory, the message otherwise.
    """
    if isinstance(error, RecursionError):
        return "the input is nested too deeply to process (folders or JSON); nothing was written"
    if isinstance(error, MemoryError):
        return "not enough memory for this input; nothing was written"
    if isinstance(error, OSError) and error.strerror and not isinstance(error, MedImgReadError):
        where = error.filename if error.filename is not None else ""
        text = f"{error.strerror}: {where}" if where else error.strerror
        if error.errno == errno.ENOSPC:
            text += " (disk full; the previous output, if any, is unchanged)"
        elif error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            text += " (no permission to write there)"
        elif error.errno == errno.EISDIR:
            text += " (a folder is in the way of a file output)"
        return text
    text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line


if __name__ == "__main__":
    sys.exit(main())
