"""The pixel classifier: a random forest on multi-scale filter features, trained from sparse strokes.

Training reads features only where there are labels (0 = unlabelled, 1..K = classes); prediction runs in slabs
along axis 0 with a halo, so a 512 × 512 × 300 CT never holds its whole feature stack; progress and cancel go
through the usual ``progress(done, total)`` callback.

``dimensions='2d'`` computes in-plane features slice by slice (fast; what the live preview needs);
``'3d'`` filters volumes in 3D with the scales in mm along every axis.

Auto-context (``context=``, on by default): a second forest is trained on the filter features plus filters of
the first forest's class probabilities (:data:`DEFAULT_CONTEXT`: the probabilities smoothed and their Hessian
eigenvalues at a few scales), so that a pixel's decision sees how the first stage judged its neighbourhood
(a vessel is a connected line of high probability; isolated specks are not).  The second stage is trained on
*out-of-fold* first-stage probabilities (cross-fitting: each training image, or with a single image each fold
of a checkerboard of tiles, is scored by a first stage that did not see it), so that it learns how far to
trust the first stage on images it has not seen, not on its own over-confident training pixels.  Prediction
runs both stages slab by slab (the second one with a halo of first-stage probabilities).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ...geometry import Volume
from ...progress import ProgressCallback, report
from ..classify.core import SchemaError
from .features import FeatureSettings, _feature_planes, feature_names, halo_pixels, normalise

__all__ = [
    "CONTEXT_FOLDS",
    "DEFAULT_CONTEXT",
    "DEFAULT_FIRST_STAGE_TREES",
    "DEFAULT_TREES",
    "MIN_CONTEXT_PIXELS",
    "PixelClassifier",
    "PixelPrediction",
    "train_pixel_classifier",
    "predict_pixels",
    "predict_slice",
    "save_pixel_classifier",
    "load_pixel_classifier",
    "image_layout",
]

RGB_CHANNELS = ("red", "green", "blue")
#: default forest size (the final stage's): with auto-context 8 + 16 trees keep the 512 × 512 RGB live preview
#: under a second, and gave a better leave-one-image-out DRIVE Dice than one stage of 32 (0.777 vs 0.772)
DEFAULT_TREES = 16
#: default size of the auto-context first stage (leave-one-image-out DRIVE Dice with 8 + 16 trees 0.777, with
#: 16 + 16 trees 0.776: the second stage reads smoothed first-stage probabilities, which need few trees)
DEFAULT_FIRST_STAGE_TREES = 8
#: the default auto-context filters of the first stage's probabilities (scales in mm): raw, smoothed and Hessian
#: eigenvalues at 1, 2, 4 mm (leave-one-image-out on DRIVE 21–24, 16 + 16 trees: 0.776; one stage of 16: 0.769)
DEFAULT_CONTEXT = FeatureSettings(
    sigmas_mm=(1.0, 2.0, 4.0), groups=("gaussian", "hessian"), raw=True, normalise="none"
)
#: cross-fitting folds of the first stage when the training set is one image (tiles; else one fold per image)
CONTEXT_FOLDS = 3
#: edge of the checkerboard tiles (pixels) that make the folds within one image
_TILE = 32
#: at most this many training images get a fold each (more are grouped into this many folds)
_MAX_FOLDS = 5
#: auto-context needs at least this many labelled pixels of every class (fewer: one stage, said in the metrics)
MIN_CONTEXT_PIXELS = 50


def image_layout(volume: Volume) -> tuple[np.ndarray, list[np.ndarray], list[str], np.ndarray]:
    """Split a Volume into its channels: ``(spatial_shape, channels, channel_names, spacing)``.

    Parameters
    ----------
    volume : Volume
        Grey 2D/3D, or RGB ``(y, x, 3)`` with ``metadata["rgb"]``.

    Returns
    -------
    tuple
        The spatial shape, a list of channel arrays, their names and the spatial spacing (mm).
    """
    array = volume.array
    if volume.metadata.get("rgb"):
        channels = [np.asarray(array[..., k]) for k in range(array.shape[-1])]
        return np.array(array.shape[:-1]), channels, list(RGB_CHANNELS[: len(channels)]), volume.spacing[:-1]
    return np.array(array.shape), [array], ["grey"], volume.spacing


@dataclass
class PixelClassifier:
    """A fitted pixel classifier with the schema of the images it was trained on.

    ``model`` is the final stage.  With auto-context (``context`` set), ``first_stage`` is the forest on the
    filter features alone, and ``model`` takes those features followed by ``context`` filters of the first
    stage's probabilities of every class but the first (:attr:`context_channels`).
    """

    model: object
    settings: FeatureSettings
    classes: list[int]
    class_names: list[str]
    ndim: int
    channels: list[str]
    dimensions: str = "2d"
    spacing_assumed: bool = False
    metrics: dict = field(default_factory=dict)
    context: FeatureSettings | None = None
    first_stage: object | None = None

    kind = "pixels"

    @property
    def feature_names(self) -> list[str]:
        """Feature names in model order (the final stage's: filter features, then context features)."""
        names = self.image_feature_names
        if self.context is not None:
            names = names + feature_names(
                self.context, ndim=self._feature_ndim, channels=self.context_channels
            )
        return names

    @property
    def image_feature_names(self) -> list[str]:
        """Names of the filter features of the image (the first stage's inputs)."""
        return feature_names(self.settings, ndim=self._feature_ndim, channels=self.channels)

    @property
    def context_channels(self) -> list[str]:
        """Names of the first-stage probability channels the context filters read (``p<class>``)."""
        return [f"p{value}" for value in self.classes[1:]]

    @property
    def _feature_ndim(self) -> int:
        return 2 if self.dimensions == "2d" else self.ndim

    def check_image(self, volume: Volume) -> None:
        """Raise :class:`SchemaError` naming what differs between ``volume`` and the training images."""
        shape, _, channels, _ = image_layout(volume)
        problems = []
        if channels != self.channels:
            problems.append(f"channels {'/'.join(channels)} (trained on {'/'.join(self.channels)})")
        if self.dimensions == "3d" and len(shape) != self.ndim:
            problems.append(f"a {len(shape)}D image (trained with 3D features on {self.ndim}D volumes)")
        assumed = bool(volume.metadata.get("spacing_assumed", False))
        if assumed != self.spacing_assumed:
            units = {True: "pixels (no spacing in the file)", False: "mm"}
            problems.append(f"scales in {units[assumed]} (trained in {units[self.spacing_assumed]})")
        if problems:
            raise SchemaError("the image does not match the pixel classifier: " + "; ".join(problems))


@dataclass
class PixelPrediction:
    """Class labels (``classes`` values) and, when asked for, per-class probabilities (last axis)."""

    labels: np.ndarray
    probabilities: np.ndarray | None


def _features(
    channels: list[np.ndarray], spacing, settings: FeatureSettings, keep=None, samples=None, rows=None
) -> np.ndarray:
    """The stacked features of every channel of a block (rows ``rows`` of each channel, if given).

    Each (channel, scale) pair is filtered in its own thread (scipy.ndimage and numpy release the GIL) into
    feature-major planes; one transpose at the end gives the ``(..., n_features)`` stack.
    """
    blocks = [np.asarray(channel if rows is None else channel[rows], np.float32) for channel in channels]
    if settings.normalise == "image":  # once per channel, not once per part
        blocks = [normalise(block, None if samples is None else samples[k]) for k, block in enumerate(blocks)]
    plain = replace(settings, normalise="none")
    tasks = []  # (channel, settings of one part): the raw channel, then one scale at a time, in name order
    for k in range(len(blocks)):
        if settings.raw:
            tasks.append((k, replace(plain, groups=(), raw=True)))
        if settings.groups:
            tasks.extend((k, replace(plain, sigmas_mm=(sigma,), raw=False)) for sigma in settings.sigmas_mm)

    def one(task) -> np.ndarray:
        k, part = task
        return _feature_planes(blocks[k], spacing=spacing, settings=part, keep=keep)

    workers = min(len(tasks), os.cpu_count() or 1)
    if workers <= 1:
        planes = [one(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            planes = list(pool.map(one, tasks))
    return np.ascontiguousarray(np.moveaxis(np.concatenate(planes, axis=0), 0, -1))


def _statistics_samples(channels: list[np.ndarray], settings: FeatureSettings) -> list[np.ndarray] | None:
    """A strided sample of each channel for ``normalise='image'`` (same statistics in every slab)."""
    if settings.normalise != "image":
        return None
    samples = []
    for channel in channels:
        step = max(1, int(round((channel.size / 2_000_000) ** (1 / channel.ndim))))
        samples.append(np.asarray(channel[(slice(None, None, step),) * channel.ndim], np.float32))
    return samples


def _blocks(n: int, block: int, halo: int):
    """``(start, stop, read_start, read_stop)`` of blocks along an axis of length ``n``."""
    for start in range(0, n, block):
        stop = min(n, start + block)
        yield start, stop, max(0, start - halo), min(n, stop + halo)


def _block_features(
    channels, spacing, settings, dimensions: str, start: int, stop: int, samples, halo: int
) -> np.ndarray:
    """Features of axis-0 positions ``start:stop`` (2D images: rows; volumes: slices)."""
    n = channels[0].shape[0]
    if dimensions == "2d" and channels[0].ndim == 3:
        planes = [
            _features([c[z] for c in channels], spacing[1:], settings, samples=samples)
            for z in range(start, stop)
        ]
        return np.stack(planes)
    read_start, read_stop = max(0, start - halo), min(n, stop + halo)
    return _features(
        channels, spacing, settings, keep=(start - read_start, stop - read_start), samples=samples,
        rows=slice(read_start, read_stop),
    )  # fmt: skip


def _halo(settings: FeatureSettings, spacing, dimensions: str, ndim: int) -> int:
    if dimensions == "2d" and ndim == 3:
        return 0
    return halo_pixels(settings, float(spacing[0]))


def train_pixel_classifier(
    images: Sequence[Volume],
    labels: Sequence[np.ndarray],
    *,
    settings: FeatureSettings | None = None,
    dimensions: Literal["2d", "3d"] = "2d",
    model: Literal["forest", "gb"] = "forest",
    n_estimators: int = DEFAULT_TREES,
    max_depth: int | None = 16,
    max_samples: int = 200_000,
    context: FeatureSettings | None = DEFAULT_CONTEXT,
    first_stage_trees: int | None = DEFAULT_FIRST_STAGE_TREES,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    progress: ProgressCallback | None = None,
) -> PixelClassifier:
    """Train a random forest from sparse labels on one or more images.

    Parameters
    ----------
    images : sequence of Volume
        Training images (all grey or all RGB; all 2D, or all 3D).
    labels : sequence of numpy.ndarray
        One label array per image, same spatial shape: 0 = unlabelled, 1..K = classes.
    settings : FeatureSettings, optional
        Filter scales (mm) and families.
    dimensions : {'2d', '3d'}
        In-plane features per slice, or 3D features (volumes only).
    model : {'forest', 'gb'}
        Random forest, or histogram gradient boosting (``n_estimators`` boosting iterations of trees with at most
        63 leaves; ``max_depth`` limits their depth).
    n_estimators, max_depth : int
        Forest size (trees, depth limit) or boosting iterations and depth limit (of each stage).
    max_samples : int
        Labelled pixels used at most, drawn at random (seeded) so that the classes keep the proportions they
        have in the labels (the forest's prior is the labels').
    context : FeatureSettings or None
        Auto-context: filters (scales in mm, families) of the first stage's probabilities that a second stage
        is trained on besides the image features, from out-of-fold first-stage probabilities (one fold per
        training image, at most five; with one image :data:`CONTEXT_FOLDS` folds of a checkerboard of
        32-pixel tiles).  ``None``: one stage.  Default :data:`DEFAULT_CONTEXT`.  With fewer than
        :data:`MIN_CONTEXT_PIXELS` labelled pixels of some class the classifier has one stage and its metrics
        say why (``auto_context_skipped``).
    first_stage_trees : int, optional
        Trees (boosting iterations) of the auto-context first stage and its fold models (default
        :data:`DEFAULT_FIRST_STAGE_TREES`; ``None``: ``n_estimators``).  Without auto-context, unused.
    class_names : sequence of str, optional
        Names of classes 1..K (default ``class 1`` …).
    seed : int
        Random state of sampling and forest.
    n_jobs : int
        Threads of the forest.
    progress : callable, optional
        ``progress(done, total)`` over images, fitting and (auto-context) the folds; raise ``Cancelled`` to stop.

    Returns
    -------
    PixelClassifier

    Raises
    ------
    ValueError
        When shapes differ, images mix layouts, or fewer than two classes are labelled.
    """
    settings = settings or FeatureSettings()
    if dimensions not in ("2d", "3d"):
        raise ValueError(f"dimensions is '2d' or '3d', got {dimensions!r}")
    if model not in ("forest", "gb"):
        raise ValueError(f"model is 'forest' or 'gb', got {model!r}")
    if len(images) != len(labels) or not images:
        raise ValueError(
            f"{len(images)} image(s) and {len(labels)} label image(s): give one labels per image"
        )
    rng = np.random.default_rng(seed)
    layouts = [image_layout(volume) for volume in images]
    names, ndim = layouts[0][2], len(layouts[0][0])
    assumed = {bool(volume.metadata.get("spacing_assumed", False)) for volume in images}
    for (shape, _, channel_names, _), label in zip(layouts, labels, strict=True):
        if channel_names != names or len(shape) != ndim:
            raise ValueError("training images must all be grey or all RGB, and all 2D or all 3D")
        if tuple(np.shape(label)) != tuple(shape):
            raise ValueError(
                f"labels of shape {np.shape(label)} do not match an image of shape {tuple(shape)}"
            )
    if len(assumed) > 1:
        raise ValueError("some training images have a pixel spacing in mm and others none: use one kind")
    if dimensions == "3d" and ndim != 3:
        dimensions = "2d"
    if (
        settings.normalise == "auto"
    ):  # photographs: per-image statistics; calibrated values (HU) kept as they are
        photograph = names != ["grey"] or assumed == {True}
        settings = replace(settings, normalise="image" if photograph else "none")
    if context is not None:  # probabilities are on one scale already
        context = replace(context, normalise="none")
    n_folds = (min(len(images), _MAX_FOLDS) if len(images) > 1 else CONTEXT_FOLDS) if context else 0
    steps = len(images) + 1 + (n_folds + len(images) + 1 if context else 0)
    done = 0
    per_class: dict[int, list[tuple[np.ndarray, int, np.ndarray]]] = {}
    for index, ((shape, channels, _, spacing), label) in enumerate(zip(layouts, labels, strict=True)):
        label = np.asarray(label)
        if label.dtype.kind not in "uib":
            raise ValueError(f"labels must be integers, got {label.dtype}")
        if label.min() < 0:
            raise ValueError("labels must be 0 (unlabelled) or positive class numbers")
        samples = _statistics_samples(channels, settings)
        halo = _halo(settings, spacing, dimensions, ndim)
        block = 256 if ndim == 2 else 4
        row_size = int(np.prod(shape[1:]))
        labelled_rows = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1))
        for start, stop, _, _ in _blocks(int(shape[0]), block, halo):
            if not np.any((labelled_rows >= start) & (labelled_rows < stop)):
                continue
            block_labels = label[start:stop]
            mask = block_labels > 0
            features = _block_features(channels, spacing, settings, dimensions, start, stop, samples, halo)
            values, x = block_labels[mask], features[mask]
            where = np.flatnonzero(mask) + start * row_size  # flat index in the image
            for value in np.unique(values):
                pick = values == value
                per_class.setdefault(int(value), []).append((x[pick], index, where[pick]))
        done += 1
        report(progress, done, steps)
    classes = sorted(per_class)
    if len(classes) < 2:
        raise ValueError(f"label at least two classes (found {classes or 'none'}); 0 means unlabelled")
    parts = [part for value in classes for part in per_class[value]]
    counts = {value: int(sum(len(part[0]) for part in per_class[value])) for value in classes}
    x = np.concatenate([part[0] for part in parts])
    y = np.concatenate([np.full(counts[value], value, np.int32) for value in classes])
    image_of = np.concatenate([np.full(len(part[0]), part[1], np.int32) for part in parts])
    flat = np.concatenate([part[2] for part in parts]).astype(np.int64)
    del per_class, parts
    if len(y) > max_samples:
        keep = np.sort(rng.choice(len(y), max_samples, replace=False))
        x, y, image_of, flat = x[keep], y[keep], image_of[keep], flat[keep]
    skipped = {}
    if context is not None and min(counts.values()) < MIN_CONTEXT_PIXELS:
        # out-of-fold first stages of a handful of strokes say nothing a second stage could learn from
        scarce = ", ".join(str(value) for value in classes if counts[value] < MIN_CONTEXT_PIXELS)
        skipped = {
            "auto_context_skipped": f"fewer than {MIN_CONTEXT_PIXELS} labelled pixels of class {scarce}"
        }
        context = None
        steps = len(images) + 1

    first_trees = n_estimators if context is None or first_stage_trees is None else first_stage_trees

    def fit(x_fit: np.ndarray, y_fit: np.ndarray, trees: int = n_estimators) -> tuple[object, dict]:
        return _fit(model, x_fit, y_fit, n_estimators=trees, max_depth=max_depth, seed=seed, n_jobs=n_jobs,
                    rng=rng)  # fmt: skip

    estimator, estimate = fit(x, y, first_trees)
    done += 1
    report(progress, done, steps)
    first_stage = None
    if context is not None:
        first_stage, first_estimate = estimator, estimate
        folds = _folds(image_of, flat, [layout[0] for layout in layouts], n_folds)
        fold_models = []
        for k in range(n_folds):
            train = folds != k
            complete = np.unique(y[train]).size >= 2 and np.any(folds == k)
            # a fold whose complement lacks a class is scored by the whole first stage (rare: tiny strokes)
            fold_models.append(fit(x[train], y[train], first_trees)[0] if complete else first_stage)
            done += 1
            report(progress, done, steps)
        extra = None  # context features of every sample, from its fold's first stage
        for index, (shape, channels, _, spacing) in enumerate(layouts):
            in_image = image_of == index
            needed = [int(k) for k in np.unique(folds[in_image])]
            context_halo = _halo(context, spacing, dimensions, ndim)
            row_size = int(np.prod(shape[1:]))
            maps = _probability_maps(
                [fold_models[k] for k in needed], classes, channels, spacing, settings, dimensions,
                rows=np.unique(flat[in_image] // row_size), reach=context_halo,
            )  # fmt: skip
            for k, planes in zip(needed, maps, strict=True):
                pick = np.flatnonzero(in_image & (folds == k))
                values = _context_at(planes, flat[pick], spacing, context, dimensions, context_halo)
                if extra is None:
                    extra = np.empty((len(y), values.shape[1]), np.float32)
                extra[pick] = values
            del maps
            done += 1
            report(progress, done, steps)
        x = np.concatenate([x, extra], axis=1)
        del extra
        estimator, estimate = fit(x, y)
        estimate["first_stage"] = first_estimate
        done += 1
    report(progress, steps, steps)
    names_of_classes = list(class_names) if class_names else [f"class {value}" for value in classes]
    if len(names_of_classes) != len(classes):
        raise ValueError(f"{len(names_of_classes)} class names for {len(classes)} labelled classes")
    classifier = PixelClassifier(
        model=estimator,
        settings=settings,
        classes=classes,
        class_names=[str(name) for name in names_of_classes],
        ndim=ndim,
        channels=list(names),
        dimensions=dimensions,
        spacing_assumed=assumed.pop(),
        context=context,
        first_stage=first_stage,
    )
    importances = dict(zip(classifier.feature_names, _importances(estimator, x, y, seed), strict=True))
    classifier.metrics = {
        **estimate,
        **skipped,
        "model": model,
        "labelled_pixels": {str(k): int(v) for k, v in counts.items()},
        "training_samples": int(len(y)),
        "importances": dict(sorted(importances.items(), key=lambda item: -item[1])),
    }
    return classifier


def _fit(
    model: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_estimators: int,
    max_depth: int | None,
    seed: int,
    n_jobs: int,
    rng: np.random.Generator,
) -> tuple[object, dict]:
    """One fitted stage and its accuracy estimate (out-of-bag for a forest, 10 % held out for boosting)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    if model == "forest":
        estimator = RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=2,
            max_features="sqrt",
            oob_score=True,
            random_state=seed,
            n_jobs=n_jobs,
        )
        with warnings.catch_warnings():
            # few trees leave some samples without an out-of-bag vote; the estimate then uses the others
            warnings.filterwarnings(
                "ignore", message="Some inputs do not have OOB scores", category=UserWarning
            )
            estimator.fit(x, y)
        return estimator, {"oob_acc": float(estimator.oob_score_)}
    estimator = HistGradientBoostingClassifier(
        max_iter=n_estimators,
        max_depth=max_depth,
        max_leaf_nodes=63,
        early_stopping=False,
        random_state=seed,
    )
    held_out = rng.random(len(y)) < 0.1
    estimator.fit(x[~held_out], y[~held_out])
    estimate = {"holdout_acc": float(estimator.score(x[held_out], y[held_out])) if held_out.any() else None}
    estimator.fit(x, y)
    return estimator, estimate


def _folds(image_of: np.ndarray, flat: np.ndarray, shapes: list[np.ndarray], n_folds: int) -> np.ndarray:
    """Cross-fitting fold of each training sample: its image (grouped into ``n_folds``), or with one image its
    tile of a checkerboard of 32-pixel tiles (``sum of tile coordinates mod n_folds``)."""
    if len(shapes) > 1:
        return (image_of % n_folds).astype(np.int32)
    coordinates = np.unravel_index(flat, tuple(int(v) for v in shapes[0]))
    return (sum(c // _TILE for c in coordinates) % n_folds).astype(np.int32)


def _probability_maps(
    models, classes, channels, spacing, settings, dimensions: str, *, rows: np.ndarray, reach: int
) -> list[list[np.ndarray]]:
    """Per model, probability planes of classes 2..K (image-shaped; filled within ``reach`` of ``rows``)."""
    n, ndim = channels[0].shape[0], channels[0].ndim
    wanted = np.zeros(n, bool)
    for row in rows:
        wanted[max(0, int(row) - reach) : int(row) + reach + 1] = True
    halo = _halo(settings, spacing, dimensions, ndim)
    samples = _statistics_samples(channels, settings)
    maps = [[np.zeros(channels[0].shape, np.float32) for _ in classes[1:]] for _ in models]
    for start, stop, _, _ in _blocks(n, 128 if ndim == 2 else 2, halo):
        if not wanted[start:stop].any():
            continue
        features = _block_features(channels, spacing, settings, dimensions, start, stop, samples, halo)
        for estimator, planes in zip(models, maps, strict=True):
            proba = _class_probabilities(estimator, classes, features)
            for j, plane in enumerate(planes):
                plane[start:stop] = proba[..., j + 1]
    return maps


def _context_at(planes, flat: np.ndarray, spacing, context: FeatureSettings, dimensions: str, halo: int):
    """Context features of probability ``planes`` at the flat image indices ``flat``."""
    shape = planes[0].shape
    row_size = int(np.prod(shape[1:]))
    rows = flat // row_size
    out = None
    for start, stop, _, _ in _blocks(int(shape[0]), 256 if len(shape) == 2 else 4, halo):
        inside = (rows >= start) & (rows < stop)
        if not inside.any():
            continue
        values = _block_features(planes, spacing, context, dimensions, start, stop, None, halo)
        values = values.reshape(-1, values.shape[-1])
        if out is None:
            out = np.empty((len(flat), values.shape[1]), np.float32)
        out[inside] = values[flat[inside] - start * row_size]
    return out


def _importances(estimator, x: np.ndarray, y: np.ndarray, seed: int) -> list[float]:
    """Impurity importances of a forest; permutation importances (on ≤ 5000 samples) for boosting."""
    if hasattr(estimator, "feature_importances_"):
        return np.asarray(estimator.feature_importances_, float).tolist()
    from sklearn.inspection import permutation_importance

    pick = np.random.default_rng(seed).choice(len(y), min(5000, len(y)), replace=False)
    result = permutation_importance(estimator, x[pick], y[pick], n_repeats=3, random_state=seed)
    return np.asarray(result.importances_mean, float).tolist()


def _class_probabilities(estimator, classes: list[int], features: np.ndarray) -> np.ndarray:
    """``estimator``'s probabilities (float32, last axis in ``classes`` order; 0 for a class it never saw)."""
    flat = features.reshape(-1, features.shape[-1])
    proba = estimator.predict_proba(flat).astype(np.float32)
    seen = [int(value) for value in estimator.classes_]
    if seen != list(classes):
        full = np.zeros((len(flat), len(classes)), np.float32)
        full[:, [classes.index(value) for value in seen]] = proba
        proba = full
    return proba.reshape(*features.shape[:-1], -1)


def _second_stage(
    classifier: PixelClassifier, features, planes, spacing, dimensions: str, start: int, stop: int, halo: int
) -> np.ndarray:
    """Final probabilities of axis-0 positions ``start:stop`` from their image features and the first-stage
    probability ``planes`` (which must be filled within ``halo`` of ``start:stop``)."""
    values = _block_features(planes, spacing, classifier.context, dimensions, start, stop, None, halo)
    combined = np.concatenate([features, values], axis=-1)
    return _class_probabilities(classifier.model, classifier.classes, combined)


def predict_pixels(
    classifier: PixelClassifier,
    volume: Volume,
    *,
    probabilities: bool = True,
    block: int | None = None,
    progress: ProgressCallback | None = None,
) -> PixelPrediction:
    """Classify every pixel of ``volume`` in slabs along axis 0 (features of one slab at a time).

    With auto-context the first stage runs ahead of the second by the context filters' halo: the slabs whose
    second stage is pending keep their features until then, and first-stage probabilities are kept only as long
    as a pending slab's context filters reach them.

    Parameters
    ----------
    classifier : PixelClassifier
        A trained classifier; the image must match its schema.
    volume : Volume
        The image (numpy or dask array; slabs are read one at a time).
    probabilities : bool
        Also return per-class probabilities (float32, last axis in ``classifier.classes`` order).
    block : int, optional
        Slab thickness: rows for 2D images (default 128), slices for volumes (default 2).
    progress : callable, optional
        ``progress(done, total)`` per slab; raise ``Cancelled`` to stop.

    Returns
    -------
    PixelPrediction

    Raises
    ------
    SchemaError
        When the image does not match what the classifier was trained on.
    """
    classifier.check_image(volume)
    shape, channels, _, spacing = image_layout(volume)
    ndim = len(shape)
    n = int(shape[0])
    dimensions = classifier.dimensions if ndim == 3 else "2d"
    block = block or (128 if ndim == 2 else 2)
    halo = _halo(classifier.settings, spacing, dimensions, ndim)
    samples = _statistics_samples(channels, classifier.settings)
    classes = np.asarray(classifier.classes)
    dtype = np.uint8 if classes.max() <= 255 else np.uint16
    out_labels = np.zeros(tuple(shape), dtype)
    out_probabilities = np.zeros((*shape, len(classes)), np.float32) if probabilities else None
    context = classifier.context
    first = classifier.first_stage if context is not None else classifier.model
    if context is not None:
        context_halo = _halo(context, spacing, dimensions, ndim)
        pending: deque = deque()  # (start, stop, features) of slabs waiting for their second stage
        kept: deque = deque()  # (start, stop, first-stage probabilities of classes 2..K) still needed

    def write(start: int, stop: int, proba: np.ndarray) -> None:
        out_labels[start:stop] = classes[np.argmax(proba, axis=-1)]
        if out_probabilities is not None:
            out_probabilities[start:stop] = proba

    total = math.ceil(n / block)
    for step, (start, stop, _, _) in enumerate(_blocks(n, block, halo)):
        features = _block_features(
            channels, spacing, classifier.settings, dimensions, start, stop, samples, halo
        )
        proba = _class_probabilities(first, classifier.classes, features)
        if context is None:
            write(start, stop, proba)
        else:
            kept.append((start, stop, proba[..., 1:]))
            pending.append((start, stop, features))
            while pending and (pending[0][1] + context_halo <= stop or stop == n):
                done_start, done_stop, done_features = pending.popleft()
                low, high = max(0, done_start - context_halo), min(n, done_stop + context_halo)
                window = np.concatenate(
                    [part[max(low, a) - a : min(high, b) - a] for a, b, part in kept if b > low and a < high]
                )
                planes = [np.ascontiguousarray(window[..., j]) for j in range(window.shape[-1])]
                write(done_start, done_stop, _second_stage(
                    classifier, done_features, planes, spacing, dimensions, done_start - low, done_stop - low,
                    context_halo,
                ))  # fmt: skip
                needed_from = (pending[0][0] if pending else done_stop) - context_halo
                while kept and kept[0][1] <= needed_from:
                    kept.popleft()
        del features, proba
        report(progress, step + 1, total)
    return PixelPrediction(out_labels, out_probabilities)


def predict_slice(classifier: PixelClassifier, volume: Volume, index: int = 0) -> PixelPrediction:
    """Classify one slice of a volume (the live preview), or the whole of a 2D image.

    The result is that of :func:`predict_pixels` for the slice.  With auto-context and 3D features the first
    stage runs on the slices within the context halo of ``index`` too (slower than one slice).

    Parameters
    ----------
    classifier : PixelClassifier
        A trained classifier.
    volume : Volume
        The image.
    index : int
        Slice along axis 0 (ignored for 2D images).

    Returns
    -------
    PixelPrediction
        2D labels and probabilities of that slice.
    """
    classifier.check_image(volume)
    shape, channels, _, spacing = image_layout(volume)
    if len(shape) == 2:
        return predict_pixels(classifier, volume, block=int(shape[0]))
    index = int(np.clip(index, 0, shape[0] - 1))
    dimensions = classifier.dimensions
    halo = _halo(classifier.settings, spacing, dimensions, 3)
    samples = _statistics_samples(channels, classifier.settings)
    context = classifier.context
    reach = _halo(context, spacing, dimensions, 3) if context is not None else 0
    low, high = max(0, index - reach), min(int(shape[0]), index + reach + 1)
    features = _block_features(channels, spacing, classifier.settings, dimensions, low, high, samples, halo)
    first = classifier.first_stage if context is not None else classifier.model
    proba = _class_probabilities(first, classifier.classes, features)
    local = index - low
    if context is not None:
        planes = [np.ascontiguousarray(proba[..., j + 1]) for j in range(len(classifier.classes) - 1)]
        proba = _second_stage(
            classifier, features[local : local + 1], planes, spacing, dimensions, local, local + 1, reach
        )
        local = 0
    proba = proba[local]
    labels = np.asarray(classifier.classes)[np.argmax(proba, axis=-1)]
    return PixelPrediction(labels.astype(np.uint8 if max(classifier.classes) <= 255 else np.uint16), proba)


def save_pixel_classifier(classifier: PixelClassifier, path, *, overwrite: bool = False):
    """Write a pixel classifier as a skops bundle (see :mod:`napari_medimg.learn.bundle`).

    Parameters
    ----------
    classifier : PixelClassifier
        The trained classifier.
    path : str or os.PathLike
        Output file.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    from ..bundle import save_bundle

    model = classifier.model
    if classifier.context is not None:  # the bundle holds one estimator: the first stage rides on the second
        model = copy.copy(model)
        model.first_stage_ = classifier.first_stage
    meta = {
        "kind": "pixels",
        "feature_names": classifier.feature_names,
        "feature_settings": classifier.settings.to_dict(),
        "classes": list(classifier.classes),
        "class_names": list(classifier.class_names),
        "ndim": classifier.ndim,
        "channels": list(classifier.channels),
        "dimensions": classifier.dimensions,
        "spacing_assumed": classifier.spacing_assumed,
        "context_settings": None if classifier.context is None else classifier.context.to_dict(),
        "metrics": classifier.metrics,
    }
    return save_bundle(path, model, meta, overwrite=overwrite)


def load_pixel_classifier(path) -> PixelClassifier:
    """Read a pixel-classifier bundle; the feature names must be those its settings produce.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle.

    Returns
    -------
    PixelClassifier

    Raises
    ------
    BundleError
        For a damaged, foreign or tampered file, an object-classifier bundle, or inconsistent settings.
    """
    from ..bundle import BundleError, load_bundle

    model, meta = load_bundle(path, kind="pixels")
    try:
        context = meta.get("context_settings")  # absent from bundles written before auto-context: one stage
        context = None if context is None else FeatureSettings.from_dict(context)
        classifier = PixelClassifier(
            model=model,
            settings=FeatureSettings.from_dict(meta["feature_settings"]),
            classes=[int(value) for value in meta["classes"]],
            class_names=[str(name) for name in meta["class_names"]],
            ndim=int(meta["ndim"]),
            channels=[str(name) for name in meta["channels"]],
            dimensions=str(meta.get("dimensions", "2d")),
            spacing_assumed=bool(meta.get("spacing_assumed", False)),
            metrics=dict(meta.get("metrics", {})),
            context=context,
            first_stage=getattr(model, "first_stage_", None) if context is not None else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path}: the bundle's description is incomplete ({error})") from error
    if classifier.feature_names != list(meta.get("feature_names", [])):
        raise BundleError(f"{path}: the bundle's feature names do not match its feature settings")
    _check_stage(path, "model", model, len(classifier.feature_names), classifier.classes)
    if context is not None:
        if not hasattr(classifier.first_stage, "predict_proba"):
            raise BundleError(f"{path}: the bundle has auto-context settings but no first-stage model")
        _check_stage(
            path,
            "first-stage model",
            classifier.first_stage,
            len(classifier.image_feature_names),
            classifier.classes,
        )
    return classifier


def _check_stage(path, what: str, estimator, n_features: int, classes: list[int]) -> None:
    """Refuse a bundle whose ``estimator`` does not take ``n_features`` features or predict ``classes``."""
    from ..bundle import BundleError

    if getattr(estimator, "n_features_in_", None) != n_features:
        raise BundleError(
            f"{path}: the {what} takes {getattr(estimator, 'n_features_in_', '?')} features, not {n_features}"
        )
    if sorted(int(v) for v in estimator.classes_) != classes:
        raise BundleError(f"{path}: the {what}'s classes differ from the bundle's description")
