"""``medimg demo [--out DIR]``: the demo session, interactive or scripted to a folder.

A command of the napari adapter, not of the core command line: it is registered through the
``napari_medimg.commands`` entry point (``pyproject.toml``), so :mod:`napari_medimg.cli` never imports the
plugin (nor napari or Qt).
"""

from __future__ import annotations

from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="open napari with the CT phantom and the plugin's widgets",
        description="Open napari with the CT phantom, its ground truth and the plugin's widgets docked. "
        "With --out, run the scripted session instead, write a full-window screenshot and every result "
        "into DIR, and exit (works under Xvfb).",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="run scripted and write the results here")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from .demo import run_demo

    written = run_demo(args.out)
    for path in written:
        print(path)
    return 0
