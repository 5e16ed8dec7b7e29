"""``medimg segment IN OUT``: preprocess, threshold and clean up a NIfTI volume into a NIfTI mask.

Every step is an operation of the registry (:mod:`napari_medimg.ops`) run by name with its core parameters,
and recorded so; ``medimg ops`` lists them.  Steps run in a fixed order: each ``--preprocess`` (in the order given) → ``--threshold`` → ``--open`` →
``--close`` → ``--fill-holes`` → ``--min-size`` → ``--keep-largest``.  The command prints one JSON object
with the thresholds used, the result's voxel count and volume, and the recorded steps.
"""

from __future__ import annotations

import json
from pathlib import Path

PREPROCESS_HELP = (
    "NAME[:VALUE], repeatable, applied in order: gaussian:SIGMA_MM, median:RADIUS_MM, bilateral:SIGMA_MM, "
    "nl_means[:SEARCH_RADIUS_MM], window:PRESET or window:LEVEL,WIDTH, normalize:z_score|min_max|percentile, "
    "clahe[:KERNEL_MM], gamma:VALUE, unsharp:SIGMA_MM, resample[:SPACING_MM] (isotropic; default the finest)"
)


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "segment",
        help="threshold a NIfTI volume into a mask, with preprocessing and morphology",
        description="Preprocess, threshold and clean up IN (NIfTI) and write the mask (uint8 0/1) to OUT "
        "(NIfTI, same geometry unless resampled). Order: preprocess steps, threshold, open, close, fill "
        "holes, min size, keep largest. Prints a JSON summary. Write a negative range as "
        "--threshold=-200:300.",
    )
    parser.add_argument("input", type=Path, metavar="IN", help="input image (NIfTI, or DICOM file/folder)")
    parser.add_argument("output", type=Path, metavar="OUT", help="output NIfTI mask")
    parser.add_argument(
        "--preprocess", action="append", default=[], metavar="NAME[:VALUE]", help=PREPROCESS_HELP
    )
    parser.add_argument(
        "--threshold",
        default="otsu",
        metavar="METHOD|LOW:HIGH",
        help="otsu, li, yen, triangle, or a range LOW:HIGH in image units (either side may be "
        "empty: 300: means ≥ 300); default otsu",
    )
    parser.add_argument("--fill-holes", action="store_true", help="fill enclosed holes in 3D")
    parser.add_argument("--keep-largest", action="store_true", help="keep only the largest connected object")
    parser.add_argument(
        "--min-size",
        type=float,
        default=None,
        metavar="MM3",
        help="remove objects smaller than MM3 cubic millimetres",
    )
    parser.add_argument(
        "--open", type=float, default=None, metavar="MM", help="opening with a ball of radius MM"
    )
    parser.add_argument(
        "--close", type=float, default=None, metavar="MM", help="closing with a ball of radius MM"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--volume",
        type=int,
        default=None,
        metavar="N",
        help="for a 4D IN (fMRI, DWI, ...): segment volume N (0-based; `medimg info` lists the volumes)",
    )
    parser.set_defaults(handler=run)


#: ``--preprocess NAME`` → (registry operation, fixed parameters, parameter the VALUE sets, its default)
PREPROCESS_STEPS = {
    "gaussian": ("denoise", {"method": "gaussian"}, "sigma_mm", 1.0),
    "median": ("denoise", {"method": "median"}, "radius_mm", 1.0),
    "bilateral": ("denoise", {"method": "bilateral"}, "sigma_mm", 1.0),
    "nl_means": ("denoise", {"method": "nl_means"}, "radius_mm", 3.0),
    "clahe": ("clahe", {}, "kernel_mm", 50.0),
    "gamma": ("gamma", {}, "value", None),
    "unsharp": ("unsharp_mask", {}, "sigma_mm", 1.0),
    "resample": ("resample", {}, "spacing_mm", None),
}


def preprocess_step(spec: str) -> tuple[str, dict]:
    """The registry operation and core parameters of one ``--preprocess NAME[:VALUE]`` spec.

    Parameters
    ----------
    spec : str
        ``NAME[:VALUE]`` as documented in :data:`PREPROCESS_HELP` (``-`` and ``_`` are the same in names).

    Returns
    -------
    tuple
        ``(operation name, parameters)`` for :func:`napari_medimg.ops.run`.

    Raises
    ------
    ValueError
        For an unknown step or a value that is not a number where one is needed.
    """
    name, _, value = spec.partition(":")
    name = name.strip().lower().replace("-", "_")
    value = value.strip()
    try:
        if name == "window":
            if "," in value:
                level, width = (float(v) for v in value.split(","))
                return "window_level", {"level": level, "width": width}
            return "window_level", {"preset": value}
        if name == "normalize":
            return "normalize", {"method": (value or "z_score").replace("-", "_")}
        if name in PREPROCESS_STEPS:
            operation, fixed, parameter, default = PREPROCESS_STEPS[name]
            if not value and default is None and name != "resample":
                raise ValueError(f"{name} needs a value")
            return operation, {**fixed, parameter: float(value) if value else default}
    except ValueError as error:
        raise ValueError(f"--preprocess {spec}: {error}") from None
    raise ValueError(f"--preprocess {spec}: unknown step {name!r}; see medimg segment --help")


def threshold_step(spec: str) -> dict:
    """The ``threshold`` operation's parameters of a ``--threshold METHOD|LOW:HIGH`` spec.

    Parameters
    ----------
    spec : str
        An automatic method name, or ``LOW:HIGH`` with either side possibly empty.

    Returns
    -------
    dict
        ``method``, ``low`` and ``high`` (None for an open side or an automatic bound).

    Raises
    ------
    ValueError
        For an unknown method or bounds that are not numbers.
    """
    from ..processing.threshold import AUTOMATIC_METHODS

    if spec in AUTOMATIC_METHODS:
        return {"method": spec, "low": None, "high": None}
    if ":" not in spec:
        raise ValueError(f"--threshold {spec!r}: give one of {sorted(AUTOMATIC_METHODS)} or LOW:HIGH")
    low_text, high_text = spec.split(":", 1)
    try:
        low = float(low_text) if low_text.strip() else None
        high = float(high_text) if high_text.strip() else None
    except ValueError:
        raise ValueError(f"--threshold {spec!r}: LOW and HIGH must be numbers") from None
    return {"method": "manual", "low": low, "high": high}


def run(args) -> int:
    import numpy as np

    from .. import ops
    from ..io.nifti import write_nifti
    from ..measure.metrics import volume_mm3
    from ..pipeline.steps import StepLog

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    plan = [preprocess_step(spec) for spec in args.preprocess]
    plan.append(("threshold", threshold_step(args.threshold)))
    if args.open:
        plan.append(("morphology", {"operation": "open", "radius_mm": args.open}))
    if args.close:
        plan.append(("morphology", {"operation": "close", "radius_mm": args.close}))
    if args.fill_holes:
        plan.append(("fill_holes", {"per_slice": False}))
    if args.min_size is not None:
        plan.append(("islands", {"operation": "remove_small", "min_size_mm3": args.min_size}))
    if args.keep_largest:
        plan.append(("islands", {"operation": "keep_largest"}))
    for operation, params in plan:
        ops.get(operation).validate(params)  # refuse bad parameters before reading anything
    log = StepLog()
    from ..io import read_volume, select_volume

    volume = select_volume(read_volume(args.input, lazy=False), args.volume)
    log.record("read_nifti", {}, [str(args.input)])
    threshold = {}
    for operation, params in plan:
        try:
            volume = ops.run(operation, volume, **params)
        except ValueError as error:
            raise ValueError(f"{operation}: {error}") from None
        if operation == "threshold":
            threshold = volume.metadata["threshold"]
        log.record(operation, params)
    mask = np.asarray(volume.array, np.uint8)
    result = volume.with_array(mask, series_description="segmentation")
    write_nifti(result, args.output, overwrite=args.overwrite)
    log.record("write_nifti", {}, output=str(args.output))
    summary = {
        "input": str(args.input),
        "output": str(args.output),
        "threshold_method": threshold["method"],
        "low": threshold["low"],
        "high": threshold["high"],
        "voxels": int(np.count_nonzero(mask)),
        "volume_mm3": volume_mm3(mask, volume.spacing),
        "spacing_mm": volume.spacing.tolist(),
        "steps": json.loads(log.to_json())["steps"],
    }
    print(json.dumps(summary, indent=2))
    return 0
