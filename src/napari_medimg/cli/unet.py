"""``medimg unet train|predict``: a U-Net segmenter trained from annotations, applied to new images.

Annotations are label images on the images' grids: 0 = unlabelled (no loss there), 1..K = classes, so a few
painted strokes or slices are enough to start.  Images and labels: PNG/TIFF (incl. LZW)/GIF/JPEG/BMP, NIfTI or
DICOM, grey or RGB, 2D or 3D.  PNG in → PNG labels out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["register"]


def register(subcommands) -> None:
    """Add ``medimg unet`` to the CLI.

    Parameters
    ----------
    subcommands : argparse._SubParsersAction
        The ``medimg`` sub-parser collection.
    """
    parser = subcommands.add_parser(
        "unet",
        help="train a U-Net segmenter from annotations and apply it",
        description="U-Net segmentation (2D or 3D) learned from label images (0 = unlabelled, 1..K = classes).",
    )
    actions = parser.add_subparsers(dest="unet_command", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a U-Net on images and their annotations")
    train.add_argument("--image", type=Path, nargs="+", required=True, help="training images")
    train.add_argument("--labels", type=Path, nargs="+", required=True, help="one label image per image")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--minutes", type=float, help="time budget of the whole run (hard)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--iterations", type=int, default=3000, help="batches at most (default 3000)")
    train.add_argument("--dims", type=int, choices=(2, 3), help="2D or 3D U-Net (default: from the labels)")
    train.add_argument("--width", type=int, default=16, help="channels of the first level (default 16)")
    train.add_argument("--levels", type=int, default=4, help="resolution levels (default 4)")
    train.add_argument("--patch", type=int, nargs="+", help="patch size in voxels, e.g. 96 96 or 32 64 64")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--normalisation", choices=("per_image", "fixed", "local"), default="per_image")
    train.add_argument("--init", type=Path, help="start from this U-Net's weights (retraining)")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    train.add_argument("--threads", type=int, help="CPU threads (default: 2, or 1 on a loaded machine)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    train.set_defaults(handler=_train)

    predict = actions.add_parser("predict", help="segment an image with a trained U-Net")
    predict.add_argument("model", type=Path, help="model folder written by `medimg unet train`")
    predict.add_argument("image", type=Path, help="image file or DICOM folder")
    predict.add_argument("--out", type=Path, required=True, help="labels: .png (2D), .nii.gz or .nii")
    predict.add_argument(
        "--probabilities",
        type=Path,
        help="probability of --target: .nii.gz/.nii, .tif (float) or .png (0-255)",
    )
    predict.add_argument("--target", type=int, help="class 1..K of the probability map (default: the last)")
    predict.add_argument("--overlap", type=float, default=0.5, help="overlap of sliding windows (0..0.9)")
    predict.add_argument("--threads", type=int, help="CPU threads (default: 2, or 1 on a loaded machine)")
    predict.add_argument("--tta", action="store_true", help="average over in-plane flips (4x slower)")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.set_defaults(handler=_predict)


def _spacing(volume) -> list[float]:
    spacing = [float(s) for s in volume.spacing]
    return spacing[:2] if volume.metadata.get("rgb") else spacing


def _train(args) -> int:
    import numpy as np

    from ..io.errors import OverwriteError
    from ..learn.unet import UNetTrainConfig, load_unet, save_unet, train_unet
    from .features import read_volume

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"give one --labels file per --image ({len(args.image)} images, {len(args.labels)} labels)"
        )
    if args.out.exists() and not args.overwrite:
        raise OverwriteError(f"{args.out} exists; pass --overwrite to replace it")
    images, labels, spacings, rgb = [], [], [], None
    for image_path, labels_path in zip(args.image, args.labels, strict=True):
        volume = read_volume(image_path)
        annotation = np.asarray(read_volume(labels_path).array)
        if annotation.ndim == volume.array.ndim and volume.metadata.get("rgb"):
            raise ValueError(f"{labels_path} is a colour image; labels must be integers (0 = unlabelled)")
        if (
            annotation.shape != volume.array.shape[: annotation.ndim]
            or annotation.ndim < volume.array.ndim - 1
        ):
            raise ValueError(
                f"{labels_path} ({annotation.shape}) is not on the grid of {image_path} ({volume.shape})"
            )
        rgb = bool(volume.metadata.get("rgb"))
        images.append(np.asarray(volume.array))
        labels.append(annotation)
        spacings.append(_spacing(volume))
    config = UNetTrainConfig(
        iterations=args.iterations,
        minutes=args.minutes,
        patch=args.patch,
        batch_size=args.batch_size,
        lr=args.lr,
        normalisation=args.normalisation,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        log_every=50,
    )
    initial = load_unet(args.init) if args.init else None

    def on_step(record):
        dice = "n/a" if record["dice"] is None else f"{record['dice']:.3f}"
        print(
            f"step {record['step']:5d}  loss {record['loss']:.4f}  dice {dice}  lr {record['lr']:.2e}  "
            f"{record['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    result = train_unet(
        images,
        labels,
        spacings,
        dims=args.dims,
        width=args.width,
        levels=args.levels,
        config=config,
        initial=None if initial is None else initial.model,
        normalisation=None if initial is None else initial.normalisation,
        class_names=None if initial is None else initial.class_names,
        rgb=rgb,
        on_step=on_step,
    )
    save_unet(result.model, result.meta(), args.out, overwrite=args.overwrite)
    summary = {
        "model": str(args.out),
        "dims": result.model.config.dims,
        "classes": result.class_names,
        "patch": result.patch,
        "iterations": result.iterations,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 1),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "final_dice": result.history[-1]["dice"] if result.history else None,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _write_probability(path: Path, volume, probability, overwrite: bool) -> None:
    import numpy as np

    from ..io.atomic import atomic_path

    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from ..io.nifti import write_nifti

        write_nifti(_grid(volume).with_array(probability), path, overwrite=overwrite)
    elif name.endswith((".tif", ".tiff")):
        import tifffile

        with atomic_path(path, overwrite=overwrite) as temporary:
            tifffile.imwrite(temporary, probability.astype(np.float32))
    elif name.endswith(".png"):
        from PIL import Image

        if probability.ndim != 2:
            raise ValueError("a PNG holds a 2D probability map; use .nii.gz or .tif for volumes")
        with atomic_path(path, overwrite=overwrite) as temporary:
            Image.fromarray(np.round(probability * 255).astype(np.uint8)).save(temporary, format="PNG")
    else:
        raise ValueError(f"--probabilities {path}: use .nii.gz, .nii, .tif or .png")


def _grid(volume):
    """The image's grid without its colour axis."""
    from ..geometry import Volume

    if not volume.metadata.get("rgb"):
        return volume
    return Volume(volume.array[..., 0], volume.spacing[:2], volume.origin, volume.direction, {})


def _predict(args) -> int:
    import numpy as np

    from ..io.errors import OverwriteError
    from ..io.raster import write_labels_png
    from ..learn.unet import load_unet, segment
    from .features import read_volume

    outputs = [args.out] + ([args.probabilities] if args.probabilities else [])
    for path in outputs:
        if path.exists() and not args.overwrite:
            raise OverwriteError(f"{path} exists; pass --overwrite to replace it")
    name = args.out.name.lower()
    if not name.endswith((".png", ".nii", ".nii.gz")):
        raise ValueError(f"--out {args.out}: use .png (2D), .nii.gz or .nii")
    model = load_unet(args.model)
    volume = read_volume(args.image)
    result = segment(
        model,
        np.asarray(volume.array),
        rgb=bool(volume.metadata.get("rgb")),
        target=args.target,
        overlap=args.overlap,
        threads=args.threads,
        tta=args.tta,
    )
    if name.endswith(".png"):
        if result.labels.ndim != 2:
            raise ValueError("a PNG holds 2D labels; use .nii.gz for volumes")
        write_labels_png(args.out, result.labels, spacing=tuple(_spacing(volume)), overwrite=args.overwrite)
    else:
        from ..io.nifti import write_nifti

        write_nifti(_grid(volume).with_array(result.labels), args.out, overwrite=args.overwrite)
    if args.probabilities:
        _write_probability(args.probabilities, volume, result.probability, args.overwrite)
    counts = np.bincount(result.labels.ravel(), minlength=len(result.class_names) + 1)[1:]
    print(
        json.dumps(
            {
                "labels": str(args.out),
                "probabilities": str(args.probabilities) if args.probabilities else None,
                "probability_of": result.target_name,
                "voxels": {n: int(c) for n, c in zip(result.class_names, counts, strict=True)},
            },
            indent=2,
        )
    )
    return 0
