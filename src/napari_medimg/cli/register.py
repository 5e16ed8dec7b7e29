"""``medimg register FIXED MOVING --out OUT.nii.gz [--transform rigid|affine|none] [--json]``.

Registers MOVING to FIXED (SimpleITK, Mattes mutual information, multi-resolution), writes MOVING resampled onto
FIXED's grid to OUT, and prints ``matrix`` (4x4, LPS mm, a point of FIXED's world → the same anatomy's point in
MOVING's world: ITK's fixed-to-moving convention), ``rotation_deg``, ``translation_mm`` and ``metric``.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subcommands) -> None:
    """Add the ``register`` subcommand."""
    parser = subcommands.add_parser(
        "register",
        help="register MOVING to FIXED and resample it onto FIXED's grid",
        description="Rigid or affine registration (SimpleITK, Mattes mutual information, multi-resolution) "
        "of MOVING to FIXED (NIfTI files or DICOM folders/files); OUT is MOVING resampled onto FIXED's grid. "
        "matrix maps a point of FIXED's world (LPS mm) to the same anatomy's point in MOVING's world.",
    )
    parser.add_argument("fixed", type=Path, metavar="FIXED", help="reference image (NIfTI or DICOM)")
    parser.add_argument("moving", type=Path, metavar="MOVING", help="image to align (NIfTI or DICOM)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT.nii.gz", help="resampled MOVING")
    parser.add_argument(
        "--transform", choices=("rigid", "affine", "none"), default="rigid", help="default rigid"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(handler=run)


def _read(path: Path):
    from ..io.volumes import read_volume

    volume = read_volume(path, lazy=False)
    if volume.array.ndim != 3:
        raise ValueError(f"{path} is not a 3D volume (shape {tuple(volume.array.shape)}); register needs 3D")
    return volume


def run(args) -> int:
    """Run ``medimg register``."""
    from .. import ops
    from ..io.nifti import write_nifti

    out = Path(args.out)
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"--out must be a .nii or .nii.gz file, got {out.name}")
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; use --overwrite to replace it")
    fixed, moving = _read(args.fixed), _read(args.moving)
    result = ops.run("register", fixed, moving, transform=args.transform)
    summary = result.metadata["registration"]
    write_nifti(result, out, overwrite=args.overwrite, sources=[args.fixed, args.moving])
    summary = {**summary, "out": str(out)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['transform']}: rotation {summary['rotation_deg']:.3f}°, translation "
            + ", ".join(f"{t:.2f}" for t in summary["translation_mm"])
            + f" mm, metric {summary['metric']}; wrote {out}"
        )
    return 0
