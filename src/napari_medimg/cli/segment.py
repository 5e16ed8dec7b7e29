"""``medimg segment IN OUT``: preprocess, threshold and clean up a NIfTI volume into a NIfTI mask.

Steps run in a fixed order: each ``--preprocess`` (in the order given) → ``--threshold`` → ``--open`` →
``--close`` → ``--fill-holes`` → ``--min-size`` → ``--keep-largest``.  The command prints one JSON object
with the thresholds used, the result's voxel count and volume, and the recorded steps.
"""

from __future__ import annotations

import json
from pathlib import Path

PREPROCESS_HELP = (
    "NAME[:VALUE], repeatable, applied in order: gaussian:SIGMA_MM, median:RADIUS_MM, bilateral:SIGMA_MM, "
    "nl-means[:SEARCH_RADIUS_MM], window:PRESET or window:LEVEL,WIDTH, normalize:z-score|min-max|percentile, "
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
    parser.add_argument("input", type=Path, metavar="IN", help="input NIfTI image")
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
    parser.set_defaults(handler=run)


def _preprocess(volume, spec: str):
    from ..processing import preprocess as pp

    name, _, value = spec.partition(":")
    name = name.strip().lower()
    try:
        if name in ("gaussian", "median", "bilateral", "nl-means"):
            default = {"gaussian": 1.0, "median": 1.0, "bilateral": 1.0, "nl-means": 3.0}[name]
            size = float(value) if value else default
            return pp.denoise(volume, name, sigma_mm=size, radius_mm=size), {"method": name, "size_mm": size}
        if name == "window":
            if "," in value:
                level, width = (float(v) for v in value.split(","))
                return pp.window_level(volume, level, width), {"level": level, "width": width}
            return pp.window_level(volume, preset=value), {"preset": value}
        if name == "normalize":
            method = value or "z-score"
            return pp.normalize(volume, method), {"method": method}
        if name == "clahe":
            kernel = float(value) if value else 50.0
            return pp.clahe(volume, kernel), {"kernel_mm": kernel}
        if name == "gamma":
            return pp.gamma(volume, float(value)), {"value": float(value)}
        if name == "unsharp":
            sigma = float(value) if value else 1.0
            return pp.unsharp_mask(volume, sigma), {"sigma_mm": sigma}
        if name == "resample":
            spacing = float(value) if value else None
            return pp.resample(volume, spacing), {"spacing_mm": spacing}
    except ValueError as error:
        raise ValueError(f"--preprocess {spec}: {error}") from None
    raise ValueError(f"--preprocess {spec}: unknown step {name!r}; see medimg segment --help")


def _range(array, spec: str) -> tuple[str, float, float]:
    from ..processing.threshold import AUTOMATIC_METHODS, threshold_range

    if spec in AUTOMATIC_METHODS:
        low, high = threshold_range(array, spec)
        return spec, low, high
    if ":" not in spec:
        raise ValueError(f"--threshold {spec!r}: give one of {sorted(AUTOMATIC_METHODS)} or LOW:HIGH")
    low_text, high_text = spec.split(":", 1)
    try:
        low = float(low_text) if low_text.strip() else float(array.min())
        high = float(high_text) if high_text.strip() else float(array.max())
    except ValueError:
        raise ValueError(f"--threshold {spec!r}: LOW and HIGH must be numbers") from None
    return "manual", low, high


def run(args) -> int:
    import numpy as np

    from ..io.nifti import read_nifti, write_nifti
    from ..measure.metrics import volume_mm3
    from ..pipeline.steps import StepLog
    from ..processing import morphology as mo
    from ..processing.threshold import threshold_mask

    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    log = StepLog()
    volume = read_nifti(args.input)
    log.record("read_nifti", {}, [str(args.input)])
    for spec in args.preprocess:
        volume, params = _preprocess(volume, spec)
        log.record(spec.partition(":")[0].lower(), params)
    image = np.asarray(volume.array)
    method, low, high = _range(image, args.threshold)
    mask = threshold_mask(image, low, high)
    log.record("threshold", {"method": method, "low": low, "high": high})
    spacing = volume.spacing
    if args.open:
        mask = mo.binary_morphology(mask, "open", args.open, spacing)
        log.record("morphology", {"operation": "open", "radius_mm": args.open})
    if args.close:
        mask = mo.binary_morphology(mask, "close", args.close, spacing)
        log.record("morphology", {"operation": "close", "radius_mm": args.close})
    if args.fill_holes:
        mask = mo.fill_holes(mask)
        log.record("fill_holes", {"per_slice": False})
    if args.min_size is not None:
        mask = mo.remove_small(mask, args.min_size, spacing)
        log.record("islands", {"operation": "remove_small", "min_size_mm3": args.min_size})
    if args.keep_largest:
        mask = mo.keep_largest(mask)
        log.record("islands", {"operation": "keep_largest"})
    result = volume.with_array(np.asarray(mask, np.uint8), series_description="segmentation")
    write_nifti(result, args.output, overwrite=args.overwrite)
    log.record("write_nifti", {}, output=str(args.output))
    summary = {
        "input": str(args.input),
        "output": str(args.output),
        "threshold_method": method,
        "low": low,
        "high": high,
        "voxels": int(np.count_nonzero(mask)),
        "volume_mm3": volume_mm3(mask, spacing),
        "spacing_mm": spacing.tolist(),
        "steps": json.loads(log.to_json())["steps"],
    }
    print(json.dumps(summary, indent=2))
    return 0
