"""``medimg features IMAGE LABELS --out table.csv``: per-object shape, intensity and texture features as CSV.

Default: pyradiomics-compatible columns.  ``--ibsi``: the IBSI 1 processing chain and features, columns named by
the IBSI reference tags, and the settings written beside the table (``table.settings.json``, one atomic unit).
"""

from __future__ import annotations

import re
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
        default=None,
        metavar="W",
        help="fixed bin width in image units for entropy, uniformity and texture (default 25; with --ibsi: "
        "no default, the integer intensities are the grey levels)",
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
    parser.add_argument(
        "--volume",
        type=int,
        default=None,
        metavar="N",
        help="for a 4D IMAGE (fMRI, DWI, ...): measure volume N (0-based; `medimg info` lists the volumes)",
    )
    ibsi = parser.add_argument_group(
        "IBSI mode",
        "IBSI 1 processing chain and features (columns = IBSI reference tags; see docs/features.md)",
    )
    ibsi.add_argument(
        "--ibsi", action="store_true", help="IBSI 1 features instead of pyradiomics-compatible ones"
    )
    ibsi.add_argument(
        "--by-slice", action="store_true", help="compute by slice: in-plane interpolation, 2D/2.5D texture"
    )
    ibsi.add_argument(
        "--resample-mm", type=float, metavar="S", help="interpolate to S mm voxels (in-plane with --by-slice)"
    )
    ibsi.add_argument(
        "--interpolation",
        choices=("linear", "cubic"),
        default="linear",
        help="image interpolation (default linear)",
    )
    ibsi.add_argument(
        "--reseg-range",
        metavar="LOW:HIGH",
        help="re-segmentation range, e.g. -500:400 (either end may be empty)",
    )
    ibsi.add_argument(
        "--reseg-sigma", type=float, metavar="K", help="outlier re-segmentation: keep mean ± K SD"
    )
    ibsi.add_argument(
        "--bin-count", type=int, metavar="N", help="fixed bin number (IBSI mode; instead of --bin-width)"
    )
    ibsi.add_argument(
        "--ivh-bin-width", type=float, metavar="W", help="fixed bin size of the intensity-volume histogram"
    )
    ibsi.add_argument(
        "--ivh-bin-count", type=int, metavar="N", help="fixed bin number of the intensity-volume histogram"
    )
    if hasattr(parser, "_negative_number_matcher"):
        # let "--reseg-range -500:400" read -500:400 as a value (argparse only knows plain negative numbers)
        parser._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]*:[-\d.]*$")
    parser.set_defaults(handler=run)


IBSI_ONLY = (
    "by_slice",
    "resample_mm",
    "reseg_range",
    "reseg_sigma",
    "bin_count",
    "ivh_bin_width",
    "ivh_bin_count",
)


def parse_range(text: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` → (low, high); an empty end is unbounded.

    Parameters
    ----------
    text : str
        The option value.

    Returns
    -------
    tuple of float
        (low, high), ``-inf``/``inf`` for empty ends.

    Raises
    ------
    ValueError
        When the text is not two numbers around a colon.
    """
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        low = float(parts[0]) if parts[0].strip() else float("-inf")
        high = float(parts[1]) if parts[1].strip() else float("inf")
    except ValueError:
        raise ValueError(f"--reseg-range must be LOW:HIGH (e.g. -500:400), got {text!r}") from None
    return low, high


def ibsi_settings_from(args):
    """The :class:`~napari_medimg.measure.ibsi.IBSISettings` of the command-line options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``medimg features`` options.

    Returns
    -------
    IBSISettings
        The settings (without a bin option the grey levels are the integer intensities).
    """
    from ..measure.ibsi import IBSISettings

    if args.bin_width_given and args.bin_count is not None:
        raise ValueError("give --bin-width or --bin-count, not both")
    if args.ivh_bin_width is not None and args.ivh_bin_count is not None:
        raise ValueError("give --ivh-bin-width or --ivh-bin-count, not both")
    return IBSISettings(
        by_slice=args.by_slice,
        resample_mm=args.resample_mm,
        interpolation=args.interpolation,
        reseg_range=None if args.reseg_range is None else parse_range(args.reseg_range),
        reseg_sigma=args.reseg_sigma,
        bin_width=args.bin_width if args.bin_width_given else None,
        bin_count=args.bin_count,
        ivh_bin_width=args.ivh_bin_width,
        ivh_bin_count=args.ivh_bin_count,
    )


def read_volume(path: Path, volume: int | None = None):
    """A 3D Volume from a NIfTI file, a raster image or a DICOM file/folder holding one stack (volume N of 4D)."""
    from ..io import read_volume as read_any
    from ..io import select_volume

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return select_volume(read_any(path, lazy=False), volume)


def run(args) -> int:
    import numpy as np

    from ..io.atomic import atomic_path
    from ..measure import compute_features, parse_groups

    args.bin_width_given = args.bin_width is not None
    if args.ibsi:
        if args.force_2d:
            raise ValueError("--force-2d is for the pyradiomics-compatible mode; with --ibsi use --by-slice")
        settings = ibsi_settings_from(args)
        groups = None if args.groups == GROUP_HELP else args.groups
        from ..measure.ibsi import parse_families

        parse_families(groups)
    else:
        given = [
            f"--{name.replace('_', '-')}" for name in IBSI_ONLY if getattr(args, name) not in (None, False)
        ]
        if given:
            raise ValueError(f"{', '.join(given)} need --ibsi")
        groups = parse_groups(args.groups)
        if args.bin_width is None:
            args.bin_width = 25.0
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    image, labels = read_volume(args.image, args.volume), read_volume(args.labels)
    from ..geometry import check_same_grid

    check_same_grid(image, labels, names=("IMAGE", "LABELS"))  # shape, spacing, origin and direction
    label_array = np.asarray(labels.array)
    if not np.issubdtype(label_array.dtype, np.integer):
        rounded = np.rint(label_array)
        if not np.array_equal(rounded, label_array):
            raise ValueError(f"{args.labels} holds non-integer values; it is not a labels image")
        label_array = rounded.astype(np.int32)
    if args.ibsi:
        return _run_ibsi(args, image, labels.with_array(label_array), settings, groups)
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


def settings_path(out: Path) -> Path:
    """The settings file written beside an IBSI table: ``T.csv`` → ``T.settings.json``.

    Parameters
    ----------
    out : Path
        The table path.

    Returns
    -------
    Path
        The settings path in the same folder.
    """
    name = out.name[: -len(".csv")] if out.name.lower().endswith(".csv") else out.name
    return out.with_name(f"{name}.settings.json")


def _run_ibsi(args, image, labels, settings, groups) -> int:
    import json

    import numpy as np

    from .. import __version__
    from ..io.atomic import atomic_files
    from ..measure.ibsi import compute_ibsi_features, parse_families

    table = compute_ibsi_features(labels, np.asarray(image.array), settings=settings, families=groups)
    record = {
        "mode": "ibsi",
        "image": str(args.image),
        "labels": str(args.labels),
        "families": list(parse_families(groups)),
        "settings": settings.as_dict(),
        "napari_medimg": __version__,
    }
    record["settings"]["reseg_range"] = args.reseg_range  # LOW:HIGH as given (JSON has no infinity)
    target = settings_path(args.out)
    with atomic_files([args.out, target], overwrite=args.overwrite, sources=[args.image, args.labels]) as (
        csv,
        settings_file,
    ):
        table.to_csv(csv, index=False)
        Path(settings_file).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{len(table)} objects x {table.shape[1] - 1} IBSI features -> {args.out} (settings: {target.name})",
        file=sys.stderr,
    )
    return 0
