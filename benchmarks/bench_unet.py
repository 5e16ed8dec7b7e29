"""U-Net on DRIVE: train on training images 21–32 with ``medimg unet train --minutes M``, evaluate on 33–40.

Labels for training are built from the first observer's vessel masks: 2 = vessel, 1 = background inside the
field of view (FOV), 0 = outside the FOV (unlabelled, no loss).  Each evaluation image is segmented with
``medimg unet predict``; the Dice of the vessel class against the first observer is computed inside the FOV
(the DRIVE convention).  Training time and inference time per image are printed with the load average (the
machine is shared, so times are pessimistic).

Run: ``.venv/bin/python benchmarks/bench_unet.py [--minutes 10] [--seed 0] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DRIVE = (
    Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "segmentation/drive/training"
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks."""
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0


def main(argv=None) -> int:
    from napari_medimg.cli import main as medimg
    from napari_medimg.io.raster import read_image, write_labels_png

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-ids", type=int, nargs="+", default=list(range(21, 33)))
    parser.add_argument("--test-ids", type=int, nargs="+", default=list(range(33, 41)))
    parser.add_argument(
        "--tta", action="store_true", help="predict with test-time flips (`unet predict --tta`)"
    )
    parser.add_argument("--model", type=Path, help="evaluate this trained model (no training)")
    parser.add_argument("--keep", type=Path, help="folder for the model and predictions (default: temporary)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `unet train` options")
    args = parser.parse_args(argv)
    if not DRIVE.is_dir():
        print(f"DRIVE not found at {DRIVE}", file=sys.stderr)
        return 1
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_unet_"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    images, labels = [], []
    for i in args.train_ids:
        vessels = np.asarray(read_image(DRIVE / f"1st_manual/{i}_manual1.gif").array) > 0
        fov = np.asarray(read_image(DRIVE / f"mask/{i}_training_mask.gif").array) > 0
        path = work / f"{i}_labels.png"
        write_labels_png(path, np.where(vessels, 2, np.where(fov, 1, 0)).astype(np.uint8), overwrite=True)
        images.append(str(DRIVE / f"images/{i}_training.tif"))
        labels.append(str(path))
    model = args.model or work / "model"
    start = time.monotonic()
    train_args = ["unet", "train", "--image", *images, "--labels", *labels, "--out", str(model)]
    train_args += ["--minutes", str(args.minutes), "--seed", str(args.seed), "--overwrite", *args.extra]
    code = 0 if args.model else medimg(train_args)
    train_seconds = time.monotonic() - start if not args.model else None
    if code:
        return code
    rows = []
    for i in args.test_ids:
        out = work / f"{i}_pred.png"
        start = time.monotonic()
        code = medimg(
            [
                "unet",
                "predict",
                str(model),
                str(DRIVE / f"images/{i}_training.tif"),
                "--out",
                str(out),
                "--overwrite",
            ]
            + (["--tta"] if args.tta else [])
        )
        seconds = time.monotonic() - start
        if code:
            return code
        predicted = np.asarray(read_image(out).array) == 2
        truth = np.asarray(read_image(DRIVE / f"1st_manual/{i}_manual1.gif").array) > 0
        fov = np.asarray(read_image(DRIVE / f"mask/{i}_training_mask.gif").array) > 0
        rows.append(
            {"id": i, "dice_fov": round(dice(predicted[fov], truth[fov]), 4), "seconds": round(seconds, 2)}
        )
    summary = {
        "train_ids": args.train_ids,
        "test_ids": args.test_ids,
        "minutes": args.minutes,
        "seed": args.seed,
        "train_options": args.extra,
        "tta": args.tta,
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "mean_dice_fov": round(float(np.mean([r["dice_fov"] for r in rows])), 4),
        "min_dice_fov": min(r["dice_fov"] for r in rows),
        "inference_seconds_per_image": round(float(np.mean([r["seconds"] for r in rows])), 2),
        "per_image": rows,
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "reference": "second human observer on the DRIVE test split: Dice ≈ 0.79",
        "cpu_threads": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
