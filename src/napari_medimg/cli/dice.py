"""``medimg dice A B``: agreement of two masks/label images on the same grid, printed as JSON."""

from __future__ import annotations

import json
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "dice",
        help="Dice, Jaccard, HD95, ASSD (mm) and volumes (mm³) of two NIfTI masks",
        description="Compare segmentation A with reference B (NIfTI, same voxel grid). Non-zero voxels are "
        "foreground; when either image holds several label values each value is also compared. Prints "
        "one JSON object; distances are in mm (null when one mask is empty), volumes in mm³.",
    )
    parser.add_argument("a", type=Path, metavar="A", help="segmentation (NIfTI)")
    parser.add_argument("b", type=Path, metavar="B", help="reference (NIfTI)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from ..geometry import check_same_grid
    from ..io.nifti import read_nifti
    from ..measure.metrics import compare_labels, compare_masks

    a, b = read_nifti(args.a), read_nifti(args.b)
    check_same_grid(a, b, names=("A", "B"))
    array_a, array_b = np.asarray(a.array), np.asarray(b.array)
    values = sorted((set(np.unique(array_a).tolist()) | set(np.unique(array_b).tolist())) - {0})
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "spacing_mm": a.spacing.tolist(),
        **compare_masks(array_a, array_b, a.spacing),
    }
    if len(values) > 1:
        per_label = compare_labels(array_a, array_b, a.spacing, values)
        per_label.pop("foreground")
        result["labels"] = per_label
    print(json.dumps(result, indent=2))
    return 0
