"""``medimg cnn train|evaluate|predict``: train a CNN classifier, evaluate it on a split, apply it to images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "cnn",
        help="train, evaluate and apply CNN image classifiers",
        description="PyTorch CNN classifiers for 2D and 3D images.",
    )
    actions = parser.add_subparsers(dest="cnn_command", metavar="ACTION", required=True)

    from ..learn.cnn.recipe import AUGMENTATIONS
    from ..learn.cnn.recipe import DEFAULT_RECIPE as R

    train = actions.add_parser(
        "train",
        help="train a classifier on a MedMNIST-style .npz, a labels CSV or image files with their classes",
        description="Train a CNN classifier. Defaults are the recipe chosen by cross-validation "
        "(napari_medimg.learn.cnn.recipe.DEFAULT_RECIPE); --folds K trains a K-fold ensemble on train + val.",
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="npz with train_images/train_labels/val_images/val_labels")
    source.add_argument("--csv", type=Path, help="CSV with columns path,label[,split] (paths relative to it)")
    source.add_argument(
        "--images",
        type=Path,
        nargs="+",
        metavar="IMG",
        help="image files (PNG/TIFF/JPEG/NIfTI/DICOM, grey or RGB, 2D or 3D), with one class each in --labels",
    )
    train.add_argument(
        "--labels", nargs="+", metavar="CLASS", help="the class of each --images file, in the same order"
    )
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument(
        "--dims", type=int, choices=(2, 3), help="2D or 3D images (guessed from shapes if omitted)"
    )
    train.add_argument(
        "--size", type=int, nargs="+", help="input size for --csv/--images, e.g. 64 64 or 32 32 32"
    )
    train.add_argument(
        "--minutes", type=float, help="time budget of the whole run (all folds); the best model is kept"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="k-fold cross-validation on train + val (2..20), saved as one ensemble of the K fold models",
    )
    train.add_argument("--epochs", type=int, default=R["epochs"])
    train.add_argument("--batch-size", type=int, default=R["batch_size"])
    train.add_argument("--lr", type=float, default=R["lr"])
    train.add_argument(
        "--width",
        type=int,
        help=f"channels of the first stage (default {R['width_2d']} for 2D, {R['width_3d']} for 3D)",
    )
    train.add_argument("--depths", type=int, nargs="+", default=R["depths"], help="residual blocks per stage")
    train.add_argument("--dropout", type=float, default=R["dropout"])
    train.add_argument(
        "--stem-stride",
        type=int,
        choices=(1, 2),
        help="stride of the first convolution (default 1 for 2D, 2 for 3D)",
    )
    train.add_argument(
        "--stem-pool",
        action=argparse.BooleanOptionalAction,
        help="max-pool after the first convolution (default off for 2D, on for 3D)",
    )
    train.add_argument("--balance", choices=("weights", "sampler", "none"), default=R["balance"])
    train.add_argument(
        "--augmentation",
        choices=sorted(AUGMENTATIONS),
        default=R["augmentation"],
        help="flips only, light or strong affine + intensity augmentation",
    )
    train.add_argument("--patience", type=int, default=15, help="epochs without a better validation AUC")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    train.add_argument("--threads", type=int, default=2, help="CPU threads")
    train.add_argument("--overwrite", action="store_true", help="replace an existing model in --out")
    train.set_defaults(handler=_train)

    evaluate = actions.add_parser("evaluate", help="metrics of a model on one split of an .npz")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", choices=("train", "val", "test"), default="val")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--roc", type=Path, help="also write the ROC curve to this PNG")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --roc file")
    evaluate.set_defaults(handler=_evaluate)

    predict = actions.add_parser("predict", help="classify an image (per image, slice or object)")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("input", type=Path, help="NIfTI, DICOM or PNG/JPEG/TIFF image")
    predict.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: predictions.csv, and for volumes probability/saliency/classes NIfTI",
    )
    predict.add_argument("--labels", type=Path, help="labels image (NIfTI): classify each object")
    predict.add_argument(
        "--volume",
        type=int,
        default=None,
        metavar="N",
        help="for a 4D input (fMRI, DWI, ...): classify volume N (0-based; `medimg info` lists the volumes)",
    )
    predict.add_argument("--overwrite", action="store_true")
    predict.set_defaults(handler=_predict)


def _print_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    auc = "n/a" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
    print(
        f"n={metrics['n']}  acc={metrics['acc']:.4f}  balanced_acc={metrics['balanced_acc']:.4f}  "
        f"precision={metrics['precision']:.4f}  recall={metrics['recall']:.4f}  f1={metrics['f1']:.4f}  auc={auc}"
    )
    print("confusion matrix (rows true, columns predicted):", metrics["confusion_matrix"])
    if metrics.get("auc_ci") or metrics.get("acc_ci"):
        parts = [f"{k[:-3]} {v[0]:.4f}-{v[1]:.4f}" for k, v in metrics.items() if k.endswith("_ci") and v]
        print("bootstrap 95 % intervals: " + ", ".join(parts))


def _train_sets(args) -> dict:
    """The train/val sets of ``medimg cnn train`` from --data, --csv or --images/--labels."""
    from ..learn.cnn.data import load_folder, load_images, load_npz

    if args.labels is not None and args.images is None:
        raise ValueError("--labels names the classes of --images files")
    if args.data is not None:
        return load_npz(args.data, dims=args.dims)
    if not args.size:
        raise ValueError(f"{'--csv' if args.csv else '--images'} needs --size (e.g. --size 64 64)")
    if args.csv is not None:
        return load_folder(args.csv, args.size, dims=args.dims, seed=args.seed)
    if args.labels is None or len(args.labels) != len(args.images):
        raise ValueError(
            f"--labels needs one class per --images file ({len(args.images)} images, "
            f"{0 if args.labels is None else len(args.labels)} labels)"
        )
    return load_images(args.images, args.labels, args.size, dims=args.dims, seed=args.seed)


def _train(args) -> int:
    from ..io.atomic import check_folder_replaceable
    from ..learn.cnn.cv import train_model
    from ..learn.cnn.data import normalise
    from ..learn.cnn.files import save_model
    from ..learn.cnn.metrics import plot_roc
    from ..learn.cnn.models import ModelConfig
    from ..learn.cnn.recipe import recipe_configs
    from ..learn.cnn.train import TrainConfig, predict_proba

    check_folder_replaceable(args.out, args.overwrite)  # refused now, not after the training
    if args.folds is not None and not 2 <= args.folds <= 20:
        raise ValueError(f"--folds must be 2..20, got {args.folds}")
    sets = _train_sets(args)
    dims = sets["train"].dims
    recipe = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "balance": args.balance,
        "depths": args.depths,
        "dropout": args.dropout,
        "augmentation": args.augmentation,
    }
    if args.width:
        recipe["width_2d" if dims == 2 else "width_3d"] = args.width
    model_settings, train_settings = recipe_configs(
        dims,
        recipe,
        patience=args.patience,
        minutes=args.minutes,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    if args.stem_stride:
        model_settings["stem_stride"] = args.stem_stride
    if args.stem_pool is not None:
        model_settings["stem_pool"] = args.stem_pool
    config = TrainConfig(**train_settings)
    model_config = ModelConfig(**model_settings)

    def on_epoch(record):
        auc = "n/a" if record["val_auc"] is None else f"{record['val_auc']:.4f}"
        fold = f"fold {record['fold'] + 1}/{args.folds}  " if "fold" in record else ""
        print(
            f"{fold}epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  val_loss {record['val_loss']:.4f}  "
            f"val_auc {auc}  val_acc {record['val_acc']:.4f}  best {record['best_epoch']}  "
            f"{record['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    result = train_model(sets, model_config, config, folds=args.folds, on_epoch=on_epoch)
    model, meta, metrics = result.model, result.meta(), result.metrics
    if args.folds is not None:
        labels, probabilities = result.cv.labels, result.cv.probabilities
        title = f"out-of-fold ROC ({args.folds} folds)"
        summary = (
            f"ensemble of {args.folds} fold models (best epochs {result.best_epoch}), "
            f"{result.seconds:.1f} s of training"
        )
    else:
        labels = sets["val"].labels
        probabilities = predict_proba(
            result.model,
            normalise(sets["val"].images, result.normalisation),
            tta_axes=config.flip_axes if config.tta else None,
        )
        title = "validation ROC"
        summary = (
            f"best epoch {result.best_epoch} of {len(result.history)} ({result.stopped}), "
            f"{result.seconds:.1f} s, {result.samples_per_second:.0f} samples/s"
        )

    def roc(path):
        plot_roc(labels, probabilities, path, list(meta["class_names"]), title=title)

    # the model folder is one unit: weights, config.json and roc_val.png appear together (atomic swap)
    save_model(model, meta, args.out, overwrite=args.overwrite, extras={"roc_val.png": roc})
    print(f"{summary}; model in {args.out}", file=sys.stderr)
    _print_metrics({k: v for k, v in metrics.items() if k != "class_names"}, as_json=True)
    return 0


def _evaluate(args) -> int:
    from ..io.atomic import atomic_path
    from ..learn.cnn.data import load_npz
    from ..learn.cnn.files import load_model
    from ..learn.cnn.metrics import bootstrap_intervals, classification_metrics, plot_roc
    from ..learn.cnn.predict import predict_arrays

    if args.roc is not None and args.roc.exists() and not args.overwrite:
        raise FileExistsError(f"{args.roc} exists; pass --overwrite to replace it")
    model = load_model(args.model)
    sets = load_npz(args.data, dims=model.config.dims)
    if args.split not in sets:
        raise ValueError(f"{args.data} has no {args.split} split (found {sorted(sets)})")
    data = sets[args.split]
    if data.input_size != model.input_size:
        raise ValueError(f"the model takes {model.input_size} inputs; {args.data} holds {data.input_size}")
    images = data.images if data.channels > 1 else data.images[:, 0]
    if data.channels > 1:
        images = images.transpose(0, *range(2, images.ndim), 1)
    probabilities, _ = predict_arrays(model, images, saliency=False)
    threshold = model.meta.get("threshold")
    metrics = classification_metrics(data.labels, probabilities, model.class_names, threshold=threshold)
    metrics.update(bootstrap_intervals(data.labels, probabilities, threshold=threshold))
    metrics["threshold"] = threshold
    if args.roc:
        with atomic_path(args.roc, overwrite=args.overwrite, sources=[args.model, args.data]) as temporary:
            plot_roc(data.labels, probabilities, temporary, model.class_names, title=f"{args.split} ROC")
    _print_metrics(metrics, args.json)
    return 0


def _predict(args) -> int:
    import numpy as np

    from ..io import read_volume, select_volume
    from ..io.atomic import atomic_directory, check_folder_replaceable
    from ..io.nifti import read_nifti, write_nifti
    from ..learn.cnn.data import IMAGE_SUFFIXES, read_image
    from ..learn.cnn.files import load_model
    from ..learn.cnn.predict import predict

    check_folder_replaceable(args.out, args.overwrite)
    model = load_model(args.model)
    volume = None
    if args.input.suffix.lower() not in IMAGE_SUFFIXES:  # NIfTI or DICOM (file or folder); 4D: --volume
        volume = select_volume(read_volume(args.input, lazy=False), args.volume)
    elif args.volume is not None:
        raise ValueError(f"--volume is for a 4D NIfTI or DICOM input, not {args.input.name}")
    image = np.asarray(volume.array) if volume is not None else read_image(args.input)[0]
    labels = None
    if args.labels is not None:
        labels_volume = read_nifti(args.labels)
        if volume is not None:
            from ..geometry import check_same_grid

            check_same_grid(volume, labels_volume, names=("the image", "--labels"))
        labels = np.asarray(labels_volume.array)
        if labels.dtype.kind == "f":
            labels = labels.round().astype(np.int32)
    spacing = volume.spacing if volume is not None else None
    result = predict(model, image, labels=labels, spacing=spacing)
    sources = [p for p in (args.input, args.labels, args.model) if p is not None]
    # one unit: predictions.csv and the maps of one input, swapped in together (never mixed with another run's)
    written = [args.out / "predictions.csv"]
    with atomic_directory(
        args.out, overwrite=args.overwrite, sources=sources, kind="CNN predictions"
    ) as folder:
        result.table.to_csv(folder / "predictions.csv", index=False)
        if volume is not None:
            for stem, array in (
                ("probability", result.probability),
                ("saliency", result.saliency),
                ("classes", result.class_map),
            ):
                write_nifti(volume.with_array(array), folder / f"{stem}.nii.gz")
                written.append(args.out / f"{stem}.nii.gz")
    print(result.table.to_string(index=False, max_rows=40))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
