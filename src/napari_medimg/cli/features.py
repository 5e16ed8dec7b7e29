"""``medimg features IMAGE LABELS --out table.csv``: per-object shape, intensity and texture features as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

GROUP_HELP = "shape,firstorder,glcm,glrlm,glszm,gldm,ngtdm"


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "features",
        help="per-object feature table (shape in mm, first-order, texture) from an image and a labels image",
        description="Measure every label value of LABELS on IMAGE and write one CSV row per label: a 'label' "
        "column, then feature columns named as pyradiomics names them without the image-type prefix "
        "(shape_Sphericity, firstorder_Mean, glcm_Contrast, ...). Shape is in mm, mm², mm³; centroid and "
        "bounding box in patient LPS mm. IMAGE and LABELS are NIfTI files or DICOM files/folders holding "
        "one series, on the same voxel grid.",
    )
    parser.add_argument(
        "image", type=Path, metavar="IMAGE", help="intensity image (NIfTI, or DICOM file/folder)"
    )
    parser.add_argument(
        "labels", type=Path, metavar="LABELS", help="labels image, 0 = background (NIfTI or DICOM)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="table.csv", help="CSV file to write")
    parser.add_argument(
        "--groups",
        default=GROUP_HELP,
        metavar="G1,G2",
        help=f"comma-separated feature groups (default: all of {GROUP_HELP})",
    )
    parser.add_argument(
        "--bin-width",
        type=float,
        default=25.0,
        metavar="W",
        help="fixed bin width in image units for entropy, uniformity and texture (default 25)",
    )
    parser.add_argument(
        "--force-2d",
        action="store_true",
        help="in-plane texture (4 directions) and 2D shape even for multi-slice volumes",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="objects measured in parallel (default: up to 4 threads)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=run)


def read_volume(path: Path):
    """A Volume from a NIfTI file or a DICOM file/folder holding exactly one series."""
    from ..io.dicom import read_dicom
    from ..io.nifti import read_nifti

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return read_nifti(path)
    volumes = read_dicom(path, lazy=False)
    if len(volumes) != 1:
        raise ValueError(f"{path} holds {len(volumes)} DICOM series; point to a folder with exactly one")
    return volumes[0]


def run(args) -> int:
    import numpy as np

    from ..io.atomic import atomic_path
    from ..measure import compute_features, parse_groups

    groups = parse_groups(args.groups)
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    image, labels = read_volume(args.image), read_volume(args.labels)
    if image.shape != labels.shape:
        raise ValueError(
            f"IMAGE has shape {image.shape} and LABELS {labels.shape}; they must share one voxel grid"
        )
    if not np.allclose(image.spacing, labels.spacing, rtol=1e-3):
        raise ValueError(
            f"IMAGE spacing {image.spacing.tolist()} mm differs from LABELS {labels.spacing.tolist()} mm"
        )
    label_array = np.asarray(labels.array)
    if not np.issubdtype(label_array.dtype, np.integer):
        rounded = np.rint(label_array)
        if not np.array_equal(rounded, label_array):
            raise ValueError(f"{args.labels} holds non-integer values; it is not a labels image")
        label_array = rounded.astype(np.int32)
    table = compute_features(
        labels.with_array(label_array),
        np.asarray(image.array),
        groups=groups,
        bin_width=args.bin_width,
        force_2d=True if args.force_2d else None,
        workers=args.workers,
    )
    with atomic_path(args.out, overwrite=args.overwrite) as temporary:
        table.to_csv(temporary, index=False)
    print(f"{len(table)} objects x {table.shape[1] - 1} features -> {args.out}", file=sys.stderr)
    return 0
