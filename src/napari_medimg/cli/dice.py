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

    from ..io.nifti import read_nifti
    from ..measure.metrics import compare_labels, compare_masks

    a, b = read_nifti(args.a), read_nifti(args.b)
    if a.shape != b.shape:
        raise ValueError(f"A has shape {a.shape} and B {b.shape}; resample one onto the other's grid first")
    if not (
        np.allclose(a.spacing, b.spacing, atol=1e-3)
        and np.allclose(a.origin, b.origin, atol=1e-2)
        and np.allclose(a.direction, b.direction, atol=1e-4)
    ):
        raise ValueError(
            "A and B have the same shape but a different geometry (spacing, origin or direction)"
        )
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
