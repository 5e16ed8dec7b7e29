"""``medimg run RECIPE INPUT --out DIR``: run a recipe on one scan and write ``DIR/<case>/``.

INPUT is a NIfTI file or a DICOM series folder; the case name is the file's stem or the folder's name.
``DIR/<case>/`` receives ``labels.nii.gz``, ``features.csv`` / ``predictions.csv`` when the recipe makes them
and ``log.json``, atomically.  A case already complete for the same recipe hash is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "run",
        help="run a recipe (JSON/YAML list of operations) on one NIfTI file or DICOM series folder",
        description="Run RECIPE on INPUT and write DIR/<case>/ (labels.nii.gz, features.csv, "
        "predictions.csv when made, log.json) atomically; <case> is INPUT's file stem or folder name. "
        "A case already complete for the same recipe is skipped; outputs of another recipe are replaced "
        "only with --overwrite.",
    )
    parser.add_argument("recipe", type=Path, metavar="RECIPE", help="recipe file (.json, .yaml)")
    parser.add_argument("input", type=Path, metavar="INPUT", help="NIfTI file or DICOM series folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of another recipe")
    parser.add_argument("--json", action="store_true", help="print the case record as JSON")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..pipeline.batch import run_case
    from ..pipeline.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if not args.input.exists():
        raise FileNotFoundError(f"input {args.input} does not exist")
    record = run_case(recipe, args.input, args.out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(record, indent=2))
    if record["status"] == "failed":
        print(f"medimg run: error: {record['case']}: {record['error']}", file=sys.stderr)
        return 1
    where = Path(args.out) / record["case"]
    verb = "already complete" if record["status"] == "skipped" else f"done in {record['seconds']:.2f} s"
    print(f"{record['case']}: {verb} -> {where} ({', '.join(record['outputs'])})", file=sys.stderr)
    return 0
