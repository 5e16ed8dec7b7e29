"""``medimg batch RECIPE INPUT... --out DIR [--workers N | --scheduler ADDRESS] [--json]``.

Runs a recipe over a cohort on dask.distributed: a local cluster of N worker processes (one thread each) by
default, or an existing cluster.  Per case ``DIR/<case>/`` as ``medimg run`` writes it, the combined
``DIR/features.csv`` with a ``case`` column and ``DIR/batch.json``; complete cases are skipped (resume),
failing cases are recorded and the others go on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "batch",
        help="run a recipe over many NIfTI files / DICOM series folders on dask.distributed",
        description="Run RECIPE on every INPUT (NIfTI file or DICOM series folder) on a dask.distributed "
        "cluster and write DIR/<case>/ per case, DIR/features.csv (all cases, 'case' column first) and "
        "DIR/batch.json. Cases complete for the same recipe are skipped; a failing case is recorded and "
        "the rest go on; exit status 1 when any case failed.",
    )
    parser.add_argument("recipe", type=Path, metavar="RECIPE", help="recipe file (.json, .yaml)")
    parser.add_argument(
        "inputs", type=Path, nargs="+", metavar="INPUT", help="NIfTI files and DICOM series folders"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster, one thread each (default: the CPU count)",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask scheduler (tcp://host:8786) instead of a local cluster",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace case outputs of another recipe")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..pipeline.batch import _ProgressBar, run_batch
    from ..pipeline.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    summary = run_batch(
        recipe,
        args.inputs,
        args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        progress=_ProgressBar(len(args.inputs)),
        on_dashboard=lambda link: print(f"dask dashboard: {link}", file=sys.stderr),
    )
    for record in summary["results"]:
        if record["status"] == "failed":
            print(f"medimg batch: case {record['case']} failed: {record['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['cases']} cases: {summary['done']} done, {summary['skipped']} skipped, "
            f"{summary['failed']} failed in {summary['seconds']:.1f} s -> {summary['out']}"
        )
    return 1 if summary["failed"] else 0
