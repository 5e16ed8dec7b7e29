"""k-fold cross-validation of a training recipe, and the ensemble of its fold models.

A 78-image validation split cannot select a model reliably; cross-validation on train + val can: every image is
predicted once by a model that did not see it (out-of-fold), and the pooled out-of-fold AUC/accuracy with
bootstrap intervals compare recipes.  The fold models together form an ensemble (their probabilities averaged)
trained within the same overall time budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...progress import ProgressCallback
from .data import ImageSet, normalise
from .metrics import bootstrap_intervals, choose_threshold, classification_metrics
from .train import TrainConfig, TrainResult, predict_proba, train

__all__ = ["CVResult", "stratified_folds", "merge_sets", "cross_validate", "ensemble_proba"]


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of each example, each class spread evenly over the folds (seeded).

    Parameters
    ----------
    labels : numpy.ndarray
        Class of each example.
    k : int
        Number of folds (2..20); every class needs at least ``k`` examples.
    seed : int
        Seed of the shuffling.

    Returns
    -------
    numpy.ndarray
        int fold numbers.

    Raises
    ------
    ValueError
        When a class has fewer than ``k`` examples.
    """
    labels = np.asarray(labels).reshape(-1)
    if not 2 <= k <= 20:
        raise ValueError(f"k must be 2..20, got {k}")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), int)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < k:
            raise ValueError(f"class {c} has {len(members)} examples, fewer than the {k} folds")
        folds[members] = np.arange(len(members)) % k
    return folds


def merge_sets(*sets: ImageSet) -> ImageSet:
    """One :class:`ImageSet` of several with the same classes (e.g. train + val for cross-validation).

    Parameters
    ----------
    *sets : ImageSet
        Sets with equal class names and image shapes.

    Returns
    -------
    ImageSet
    """
    first = sets[0]
    if any(s.class_names != first.class_names for s in sets):
        raise ValueError("the sets have different class names")
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        list(first.class_names),
        first.spacing,
        [n for s in sets for n in (s.names or [])],
        first.patch,
    )


@dataclass
class CVResult:
    """Out-of-fold predictions and metrics of a recipe.

    Attributes
    ----------
    folds : numpy.ndarray
        Fold of each example.
    probabilities : numpy.ndarray
        Out-of-fold probabilities ``(N, n_classes)``.
    metrics : dict
        Pooled out-of-fold metrics with ``auc_ci``/``acc_ci`` (bootstrap 95 %) and ``threshold``.
    fold_metrics : list of dict
        Validation metrics of each fold's model.
    results : list of TrainResult
        The fold models (an ensemble, see :func:`ensemble_proba`).
    """

    folds: np.ndarray
    probabilities: np.ndarray
    metrics: dict
    fold_metrics: list[dict] = field(default_factory=list)
    results: list[TrainResult] = field(default_factory=list)


def cross_validate(
    data: ImageSet,
    model_config: dict | None = None,
    config: TrainConfig | None = None,
    k: int = 5,
    progress: ProgressCallback | None = None,
) -> CVResult:
    """Train ``k`` models, each validated (epoch selection) on the fold it did not see.

    ``config.minutes`` is the budget of the whole cross-validation: each fold gets ``minutes / k``.

    Parameters
    ----------
    data : ImageSet
        All labelled examples (train + val).
    model_config : dict, optional
        Architecture (see :class:`~napari_medimg.learn.cnn.models.ModelConfig`).
    config : TrainConfig, optional
        The training recipe.
    k : int
        Number of folds.
    progress : callable, optional
        ``progress(done, total)`` over the folds.

    Returns
    -------
    CVResult
    """
    from dataclasses import replace

    config = config or TrainConfig()
    folds = stratified_folds(data.labels, k, config.seed)
    per_fold = replace(config, minutes=config.minutes / k if config.minutes else None)
    probabilities = np.zeros((len(data), len(data.class_names)), np.float32)
    fold_metrics, results = [], []

    def subset(keep):
        return ImageSet(
            data.images[keep], data.labels[keep], list(data.class_names), data.spacing, [], data.patch
        )

    for fold in range(k):
        held = folds == fold
        result = train(subset(~held), subset(held), model_config, replace(per_fold, seed=config.seed + fold))
        x = normalise(data.images[held], result.normalisation)
        tta = config.flip_axes if config.tta else None
        probabilities[held] = predict_proba(result.model, x, tta_axes=tta)
        fold_metrics.append(result.metrics)
        results.append(result)
        if progress is not None:
            progress(fold + 1, k)
    threshold = choose_threshold(data.labels, probabilities)
    metrics = classification_metrics(data.labels, probabilities, data.class_names, threshold=threshold)
    metrics.update(bootstrap_intervals(data.labels, probabilities, threshold=threshold))
    metrics["threshold"] = threshold
    return CVResult(folds, probabilities, metrics, fold_metrics, results)


def ensemble_proba(results: list[TrainResult], images: np.ndarray) -> np.ndarray:
    """Mean class probabilities of several trained models (each with its own normalisation).

    Parameters
    ----------
    results : list of TrainResult
        Models trained on the same classes (e.g. :attr:`CVResult.results`).
    images : numpy.ndarray
        Raw channel-first images ``(N, C, *spatial)``.

    Returns
    -------
    numpy.ndarray
        ``(N, n_classes)``.
    """
    total = 0
    for result in results:
        tta = result.train_config.flip_axes if result.train_config.tta else None
        total = total + predict_proba(result.model, normalise(images, result.normalisation), tta_axes=tta)
    return total / len(results)
