"""``medimg pixels train|predict``: the pixel classifier (random forest on multi-scale filter features in mm)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .classify import _refuse_existing

# the core's defaults (learn.pixels DEFAULT_SIGMAS_MM, DEFAULT_GROUPS, DEFAULT_TREES, auto-context on with
# DEFAULT_CONTEXT, DEFAULT_FIRST_STAGE_TREES; a test keeps them equal), spelled out so that `medimg --help`
# does not import scipy and scikit-learn
_SIGMAS, _GROUPS, _TREES = "1,2,4", "gaussian,gradient,hessian,vesselness,texture,tophat,line", 16
_CONTEXT, _FIRST_TREES = True, 8


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "pixels",
        help="pixel classifier: train from sparse label strokes, segment whole images or volumes",
        description="A random forest on multi-scale filter features (Gaussian, gradient, Laplacian, Hessian "
        "eigenvalues, vesselness, structure tensor, local texture; scales in mm) of every channel, and by "
        "default (auto-context) a second forest on those plus filters of the first one's probabilities. Images: "
        "PNG, TIFF (incl. LZW), GIF, JPEG, NIfTI or DICOM; grey or RGB; 2D or 3D.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="train from images and label images (0 = unlabelled, 1..K = classes)",
        description="Pairs --image and --labels in order. Only labelled pixels are read for training.",
    )
    train.add_argument("--image", type=Path, nargs="+", required=True, metavar="IMG", help="training images")
    train.add_argument("--labels", type=Path, nargs="+", required=True, metavar="LBL", help="label images")
    train.add_argument("--out", type=Path, required=True, metavar="MODEL", help="model bundle to write")
    train.add_argument(
        "--sigmas", default=_SIGMAS, metavar="S1,S2", help=f"filter scales in mm (default {_SIGMAS})"
    )
    train.add_argument(
        "--groups",
        default=None,
        metavar="G1,G2",
        help=f"filter families (default {_GROUPS}; also laplacian, structure)",
    )
    train.add_argument(
        "--normalise",
        choices=("auto", "none", "image"),
        default="auto",
        help="'image': rescale each image's channels by their own percentiles (photographs); "
        "'none' keeps absolute values such as HU; 'auto' (default): 'image' for RGB images or images "
        "without a pixel spacing, else 'none'",
    )
    train.add_argument(
        "--dimensions",
        choices=("2d", "3d"),
        default="2d",
        help="in-plane (default) or 3D features of volumes",
    )
    train.add_argument(
        "--model",
        choices=("forest", "gb"),
        default="forest",
        help="random forest (default) or gradient boosting",
    )
    train.add_argument(
        "--trees",
        type=int,
        default=_TREES,
        metavar="N",
        help=f"trees / boosting iterations (of the final stage with auto-context; default {_TREES})",
    )
    train.add_argument("--max-depth", type=int, default=16, metavar="D", help="tree depth limit (default 16)")
    train.add_argument(
        "--auto-context",
        action=argparse.BooleanOptionalAction,
        default=_CONTEXT,
        help="train a second stage on the features plus smoothed probabilities (and their Hessian) of the "
        "first, cross-fitted out of fold (default: on; --no-auto-context for one stage)",
    )
    train.add_argument(
        "--first-stage-trees",
        type=int,
        default=_FIRST_TREES,
        metavar="N",
        help=f"trees / boosting iterations of the auto-context first stage (default {_FIRST_TREES})",
    )
    train.add_argument("--class-names", default=None, metavar="A,B", help="names of classes 1..K")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.set_defaults(handler=run_train)

    predict = actions.add_parser(
        "predict",
        help="segment an image: labels (pixel value = class) and optional probabilities",
        description="PNG/TIFF/GIF/JPEG in: --out is .png (or .tif) labels; a multi-page TIFF stack in: --out is "
        "a multi-page .tif. NIfTI or DICOM in: --out is NIfTI with the image's geometry. --probabilities: a "
        "float32 .tif (one page per class) or a 4D NIfTI (one volume per class).",
    )
    predict.add_argument("model", type=Path, metavar="MODEL", help="bundle from 'pixels train'")
    predict.add_argument("image", type=Path, metavar="IMAGE", help="image to segment")
    predict.add_argument("--out", type=Path, required=True, metavar="OUT", help="labels image to write")
    predict.add_argument(
        "--probabilities", type=Path, default=None, metavar="PROB", help="probabilities image"
    )
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.set_defaults(handler=run_predict)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def read_any(path: Path):
    """A 2D/3D Volume from a raster, NIfTI or DICOM path (one volume of a 4D image is refused)."""
    from ..io.volumes import read_volume

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    volume = read_volume(path, lazy=False) if path.is_dir() else read_volume(path)
    if volume.array.ndim == 4:
        raise ValueError(f"{path} is a 4D image; the pixel classifier takes 2D or 3D images")
    return volume


def read_labels(path: Path, shape):
    """Integer labels from a file, checked against the image's spatial shape."""
    import numpy as np

    from ..io.raster import is_raster_path, read_image

    volume = read_image(path, palette_indices=True) if is_raster_path(path) else read_any(path)
    if volume.metadata.get("rgb"):
        raise ValueError(f"{path} is a colour image; labels are one integer class per pixel (0 = unlabelled)")
    array = np.asarray(volume.array)
    if array.dtype.kind == "f":
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise ValueError(f"{path} holds non-integer values; it is not a labels image")
        array = rounded.astype(np.int32)
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"labels {path} have shape {array.shape}; the image has {tuple(shape)}")
    return array


def run_train(args) -> int:
    import json

    from ..learn.pixels import (
        DEFAULT_CONTEXT,
        DEFAULT_GROUPS,
        FeatureSettings,
        image_layout,
        save_pixel_classifier,
        train_pixel_classifier,
    )

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"{len(args.image)} --image but {len(args.labels)} --labels: give one labels per image"
        )
    _refuse_existing(args.out, args.overwrite)
    try:
        sigmas = tuple(float(value) for value in args.sigmas.split(",") if value.strip())
    except ValueError:
        raise ValueError(f"--sigmas {args.sigmas!r}: comma-separated numbers (mm) expected") from None
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip()) if args.groups else DEFAULT_GROUPS
    settings = FeatureSettings(sigmas_mm=sigmas, groups=groups, normalise=args.normalise)
    images, labels = [], []
    for image_path, labels_path in zip(args.image, args.labels, strict=True):
        volume = read_any(image_path)
        images.append(volume)
        labels.append(read_labels(labels_path, image_layout(volume)[0]))
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    classifier = train_pixel_classifier(
        images,
        labels,
        settings=settings,
        dimensions=args.dimensions,
        model=args.model,
        n_estimators=args.trees,
        max_depth=args.max_depth,
        context=DEFAULT_CONTEXT if args.auto_context else None,
        first_stage_trees=args.first_stage_trees,
        class_names=names,
        seed=args.seed,
    )
    save_pixel_classifier(classifier, args.out, overwrite=args.overwrite)
    summary = {
        "classes": dict(zip(map(str, classifier.classes), classifier.class_names, strict=True)),
        "model": args.model,
        "oob_acc": classifier.metrics.get("oob_acc"),
        "holdout_acc": classifier.metrics.get("holdout_acc"),
        "auto_context": classifier.context is not None,
        "labelled_pixels": classifier.metrics["labelled_pixels"],
        "features": len(classifier.feature_names),
        "out": str(args.out),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".png"):
        return "png"
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    return "other"


class _NiftiGrid:
    """The NIfTI grid of a prediction: the image's own, or for a colour DICOM photograph ``(y, x, 3)`` (no
    patient geometry) one plane of its pixel size, ``(1, y, x)``."""

    def __init__(self, volume):
        from ..geometry import CANONICAL_DIRECTION

        self.rgb = bool(volume.metadata.get("rgb"))
        if self.rgb:
            dy, dx = (float(v) for v in volume.spatial_spacing)
            self.geometry = ((1.0, dy, dx), (0.0, 0.0, 0.0), CANONICAL_DIRECTION)
        else:
            self.geometry = (volume.spacing, volume.origin, volume.direction)

    def __call__(self, plane):
        return plane[None] if self.rgb else plane


def run_predict(args) -> int:
    import numpy as np

    from ..io.nifti import write_nifti
    from ..io.raster import is_raster_path, write_labels_png, write_labels_tiff
    from ..learn.pixels import image_layout, load_pixel_classifier, predict_pixels

    classifier = load_pixel_classifier(args.model)
    raster_in = is_raster_path(args.image)
    volume = read_any(args.image)
    stack_in = raster_in and len(image_layout(volume)[0]) == 3  # a multi-page TIFF
    out_kind = _kind_of(args.out)
    if stack_in and out_kind != "tiff":
        raise ValueError(
            f"a stack of {volume.shape[0]} pages gives a multi-page TIFF of labels: --out must end in .tif, "
            f"not {args.out.name}"
        )
    if raster_in and not stack_in and out_kind not in ("png", "tiff"):
        raise ValueError(
            f"a {args.image.suffix} image gives PNG labels: --out must end in .png (or .tif), not {args.out.name}"
        )
    if not raster_in and out_kind != "nifti":
        raise ValueError(
            f"a NIfTI/DICOM image gives NIfTI labels: --out must end in .nii or .nii.gz, not {args.out.name}"
        )
    if args.probabilities is not None:
        prob_kind = _kind_of(args.probabilities)
        wanted = "tiff" if raster_in else "nifti"
        if prob_kind != wanted:
            raise ValueError(f"--probabilities must be a {'.tif' if raster_in else '.nii/.nii.gz'} file")
        _refuse_existing(args.probabilities, args.overwrite)
    _refuse_existing(args.out, args.overwrite)
    prediction = predict_pixels(classifier, volume, probabilities=args.probabilities is not None)
    sources = [args.image]
    if raster_in:
        spacing = None if volume.metadata.get("spacing_assumed") else tuple(volume.spatial_spacing)[-2:]
        write = write_labels_tiff if out_kind == "tiff" else write_labels_png
        write(args.out, prediction.labels, spacing=spacing, overwrite=args.overwrite)
    else:
        grid = _NiftiGrid(volume)
        labels = volume.__class__(grid(prediction.labels), *grid.geometry, {"kind": "labels"})
        write_nifti(labels, args.out, overwrite=args.overwrite, sources=sources)
    if args.probabilities is not None:
        probabilities = prediction.probabilities
        if raster_in:
            import tifffile

            from ..io.atomic import atomic_path

            with atomic_path(args.probabilities, overwrite=args.overwrite) as temporary:
                tifffile.imwrite(temporary, np.moveaxis(probabilities, -1, 0), photometric="minisblack")
        else:
            stack = volume.__class__(
                np.stack([grid(plane) for plane in np.moveaxis(probabilities, -1, 0)]), *grid.geometry, {}
            )
            write_nifti(stack, args.probabilities, overwrite=args.overwrite, sources=sources)
    counts = {
        name: int((prediction.labels == value).sum())
        for value, name in zip(classifier.classes, classifier.class_names, strict=True)
    }
    print(
        f"{args.out}: " + ", ".join(f"{name} {count} px" for name, count in counts.items()), file=sys.stderr
    )
    return 0
