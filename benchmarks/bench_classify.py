"""Classical classifiers: DRIVE pixel classifier Dice, training/prediction time, and a 512 × 512 × 300 volume.

Parts (all by default; ``--part`` picks one):

* ``objects`` — breast cancer Wisconsin, 5-fold CV of svm and forest: ours next to plain scikit-learn
  (``cross_val_predict`` on the same folds); the figures must be equal, the time ratio is shown.
* ``drive`` — DRIVE training/ (../shared/data/segmentation/drive): trained on images 21–24 with labels from
  ``1st_manual`` inside the FOV mask (vessel = 2, background = 1, outside = 0), evaluated on the other sixteen:
  mean Dice inside the FOV, training time, prediction time per image.  Peer in the same run:
  scikit-image's trainable segmentation (``multiscale_basic_features`` + the same forest).
* ``volume`` — prediction time and peak memory over the input on a synthetic 512 × 512 × 300 int16 CT-like
  volume (slab-wise; labels only, and labels + probabilities).
* ``loio`` (only when asked) — leave-one-image-out among DRIVE 21–24, the figure settings are chosen by
  (the evaluation images 25–40 are never used for that).

Run: ``.venv/bin/python benchmarks/bench_classify.py [--part drive] [--trees N] [--max-depth D]
[--no-auto-context]`` (default: the pixel classifier's own defaults, those of ``medimg pixels train``, auto-context
included).  Absolute times depend on the machine's load, printed with every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DRIVE = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "segmentation" / "drive"


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 20 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def over_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def bench_objects() -> None:
    from sklearn import metrics
    from sklearn.base import clone
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from napari_medimg.learn.classify import make_model, train_classifier

    table = load_breast_cancer(as_frame=True).frame
    x, y = table.drop(columns="target").to_numpy(float), table["target"].to_numpy()
    for model in ("svm", "forest"):
        start = time.perf_counter()
        _, cv = train_classifier(table, target="target", model=model, folds=5)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        proba = cross_val_predict(clone(make_model(model)), x, y, cv=folds, method="predict_proba")
        peer = time.perf_counter() - start
        predicted = np.argmax(proba, axis=1)
        peer_acc, peer_auc = metrics.accuracy_score(y, predicted), metrics.roc_auc_score(y, proba[:, 1])
        print(
            f"objects {model}: ours acc {cv.metrics['acc']:.4f} AUC {cv.metrics['auc']:.4f} "
            f"(CV + final fit + importances {ours:.1f} s); scikit-learn cross_val_predict acc {peer_acc:.4f} "
            f"AUC {peer_auc:.4f} ({peer:.1f} s, CV only); ratio {ours / peer:.2f}; {load()}"
        )


def _drive_case(case: int):
    from napari_medimg.io.raster import read_image

    image = read_image(DRIVE / "training" / "images" / f"{case}_training.tif")
    manual = read_image(DRIVE / "training" / "1st_manual" / f"{case}_manual1.gif").array > 0
    fov = read_image(DRIVE / "training" / "mask" / f"{case}_training_mask.gif").array > 0
    return image, manual, fov


def _dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * np.logical_and(predicted, truth).sum() / (predicted.sum() + truth.sum()))


def _timed(function, repeats: int = 3) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads) of ``function()`` over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus))


def _drive_labels(manual: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Training labels of a DRIVE image: vessel 2, background 1 inside the FOV, 0 (unlabelled) outside."""
    return np.where(fov, np.where(manual, 2, 1), 0).astype(np.uint8)


def _options(trees: int | None, max_depth: int | None, model: str, context: bool) -> dict:
    """``train_pixel_classifier`` options: the defaults `medimg pixels train` uses, except those given."""
    options = {"model": model}
    if trees is not None:
        options["n_estimators"] = trees
    if max_depth is not None:
        options["max_depth"] = max_depth
    if not context:
        options["context"] = None
    return options


def bench_loio(trees: int | None, max_depth: int | None, model: str = "forest", context: bool = True) -> None:
    """Leave-one-image-out among DRIVE 21-24 (train on three, Dice in the FOV on the fourth): how settings are
    chosen without looking at the evaluation images 25-40."""
    from napari_medimg.learn.pixels import predict_pixels, train_pixel_classifier

    if not DRIVE.is_dir():
        print(f"loio: {DRIVE} does not exist; skipped")
        return
    cases = {case: _drive_case(case) for case in (21, 22, 23, 24)}
    options, dices = _options(trees, max_depth, model, context), {}
    for held_out, (image, manual, fov) in cases.items():
        rest = [cases[case] for case in cases if case != held_out]
        classifier = train_pixel_classifier(
            [item[0] for item in rest], [_drive_labels(m, f) for _, m, f in rest], **options
        )
        labels = predict_pixels(classifier, image, probabilities=False).labels
        dices[held_out] = _dice((labels == 2) & fov, manual & fov)
        print(f"loio: held out {held_out}: Dice {dices[held_out]:.4f}", flush=True)
    per_image = " / ".join(f"{dice:.3f}" for dice in dices.values())
    print(
        f"loio ours: mean Dice {np.mean(list(dices.values())):.4f} ({per_image} for 21 / 22 / 23 / 24); {load()}"
    )


def bench_drive(
    trees: int | None, max_depth: int | None, peer: bool, model: str = "forest", context: bool = True
) -> None:
    from napari_medimg.geometry import Volume
    from napari_medimg.learn.pixels import predict_pixels, predict_slice, train_pixel_classifier

    if not DRIVE.is_dir():
        print(f"drive: {DRIVE} does not exist; skipped")
        return
    train_cases, test_cases = (21, 22, 23, 24), range(25, 41)
    training = [_drive_case(case) for case in train_cases]
    labels = [_drive_labels(manual, fov) for _, manual, fov in training]
    options = _options(trees, max_depth, model, context)
    start = time.perf_counter()
    classifier = train_pixel_classifier([image for image, _, _ in training], labels, **options)
    train_s = time.perf_counter() - start
    trees = classifier.model.n_estimators if model == "forest" else classifier.model.max_iter
    stages = "one stage"
    if classifier.context is not None:
        first = classifier.first_stage
        stages = (
            f"auto-context after a first stage of {getattr(first, 'n_estimators', None) or first.max_iter}"
        )
    crop = training[0][0]
    crop = Volume(np.ascontiguousarray(crop.array[:512, :512]), spacing=crop.spacing, metadata=crop.metadata)
    preview_wall, preview_cpu = _timed(lambda: predict_slice(classifier, crop))
    dices, times = [], []
    for case in test_cases:
        image, manual, fov = _drive_case(case)
        start = time.perf_counter()
        prediction = predict_pixels(classifier, image, probabilities=False)
        times.append(time.perf_counter() - start)
        dices.append(_dice((prediction.labels == 2) & fov, manual & fov))
    print(
        f"drive ours: mean Dice inside FOV {np.mean(dices):.4f} (min {np.min(dices):.3f}, max {np.max(dices):.3f}) "
        f"on {len(dices)} images; training {train_s:.1f} s ({len(classifier.feature_names)} features, "
        f"{classifier.metrics['training_samples']} samples, {model} of {trees} trees, "
        f"{stages}); prediction {np.mean(times):.2f} s per "
        f"584x565 image; live preview of a 512x512 RGB slice {preview_wall:.2f} s wall, {preview_cpu:.2f} s CPU; {load()}"
    )
    if not peer:
        return
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    def features(image):
        return multiscale_basic_features(image.array, channel_axis=-1, sigma_min=0.7, sigma_max=4.0)

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    stack = np.concatenate([features(image)[fov] for image, _, fov in training])
    target = np.concatenate([np.where(manual[fov], 2, 1) for _, manual, fov in training])
    keep = rng.choice(len(target), min(200_000, len(target)), replace=False)
    forest = RandomForestClassifier(
        trees, max_depth=classifier.model.max_depth, min_samples_leaf=2, n_jobs=2, random_state=0
    )
    fit_segmenter(target[keep][None], stack[keep][None], forest)
    peer_train = time.perf_counter() - start
    peer_dices, peer_times = [], []
    for case in test_cases:
        image, manual, fov = _drive_case(case)
        start = time.perf_counter()
        result = predict_segmenter(features(image), forest)
        peer_times.append(time.perf_counter() - start)
        peer_dices.append(_dice((result == 2) & fov, manual & fov))
    peer_wall, peer_cpu = _timed(lambda: predict_segmenter(features(crop), forest))
    print(
        f"drive scikit-image trainable segmentation: mean Dice {np.mean(peer_dices):.4f}; training {peer_train:.1f} s;"
        f" prediction {np.mean(peer_times):.2f} s per image; ratios ours/peer: Dice {np.mean(dices) / np.mean(peer_dices):.3f}, "
        f"training {train_s / peer_train:.2f}, prediction {np.mean(times) / np.mean(peer_times):.2f}; 512x512 preview "
        f"{peer_wall:.2f} s wall, {peer_cpu:.2f} s CPU (ratios ours/peer {preview_wall / peer_wall:.2f} wall, "
        f"{preview_cpu / peer_cpu:.2f} CPU); {load()}"
    )


def bench_volume(trees: int, shape=(300, 512, 512)) -> None:
    from napari_medimg.geometry import Volume
    from napari_medimg.learn.pixels import (
        FeatureSettings,
        predict_pixels,
        predict_slice,
        train_pixel_classifier,
    )

    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = (((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 < 1)[0]
    vessels = (np.hypot(y - 200 - 20 * np.sin(z / 30), x - 300) < 6) | (
        np.hypot(y - 320, x - 180 - z / 10) < 4
    )
    noise = rng.normal(0, 20, shape[1:]).astype(np.float32)
    array = np.empty(shape, np.int16)
    truth = np.empty(shape, np.uint8)  # 1 air, 2 body, 3 vessel
    for k in range(shape[0]):
        vessel = vessels[k] & body
        array[k] = np.where(body, 40, -1000) + 260 * vessel + np.roll(noise, 3 * k, axis=1)
        truth[k] = np.where(body, np.where(vessel, 3, 2), 1)
    del vessels
    volume = Volume(array, spacing=(1.0, 0.7, 0.7))
    strokes = np.zeros(shape, np.uint8)
    for k in (50, 150, 250):  # a sparse grid of air and body, and the vessels painted whole, on three slices
        strokes[k, ::5, ::5] = truth[k, ::5, ::5]
        strokes[k][truth[k] == 3] = 3
    settings = FeatureSettings(
        sigmas_mm=(1.0, 2.0, 4.0), groups=("gaussian", "gradient", "hessian", "texture")
    )
    start = time.perf_counter()
    classifier = train_pixel_classifier(
        [volume], [strokes], settings=settings, n_estimators=trees, max_depth=12
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    for k in (100, 101, 102):
        predict_slice(classifier, volume, k)
    preview = (time.perf_counter() - start) / 3
    default = train_pixel_classifier([volume], [strokes])  # the default feature set and forest
    default_wall, default_cpu = _timed(lambda: predict_slice(default, volume, 150))
    input_mb = array.nbytes / 2**20
    with PeakMemory() as memory:
        start = time.perf_counter()
        prediction = predict_pixels(classifier, volume, probabilities=False)
        labels_s = time.perf_counter() - start
    accuracy = float(np.mean([(prediction.labels[k] == truth[k]).mean() for k in range(shape[0])]))
    print(
        f"volume {'x'.join(map(str, shape[::-1]))} int16 ({input_mb:.0f} MB): training {train_s:.1f} s; live slice "
        f"preview {preview:.2f} s; prediction (labels) {labels_s:.1f} s, peak memory over the input "
        f"{memory.over_mb:.0f} MB (labels {prediction.labels.nbytes / 2**20:.0f} MB); voxel accuracy "
        f"{accuracy:.4f}; {len(classifier.feature_names)} features, {trees} trees, "
        f"{'auto-context' if classifier.context else 'one stage'}; live preview of a 512x512 slice with "
        f"the default {len(default.feature_names)} features and {default.model.n_estimators} trees {default_wall:.2f} s "
        f"wall, {default_cpu:.2f} s CPU; {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("objects", "drive", "volume", "loio"), default=None)
    parser.add_argument("--trees", type=int, default=None, help="default: the pixel classifier's")
    parser.add_argument("--max-depth", type=int, default=None, help="default: the pixel classifier's")
    parser.add_argument(
        "--model", choices=("forest", "gb"), default="forest", help="pixel classifier model (drive)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip scikit-image's trainable segmentation")
    parser.add_argument(
        "--no-auto-context", action="store_true", help="one stage (drive; default: the classifier's two)"
    )
    args = parser.parse_args()
    from napari_medimg.learn.pixels import DEFAULT_TREES

    parts = [args.part] if args.part else ["objects", "drive", "volume"]
    if "objects" in parts:
        bench_objects()
    if "drive" in parts:
        bench_drive(
            args.trees,
            args.max_depth,
            peer=not args.no_peer,
            model=args.model,
            context=not args.no_auto_context,
        )
    if "volume" in parts:
        bench_volume(min(args.trees or DEFAULT_TREES, 32))
    if "loio" in parts:  # only when asked: it is how settings are chosen, not a figure of the issue
        bench_loio(args.trees, args.max_depth, model=args.model, context=not args.no_auto_context)


if __name__ == "__main__":
    main()
