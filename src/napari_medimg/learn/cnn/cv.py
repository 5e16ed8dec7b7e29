"""k-fold cross-validation of a training recipe, and the ensemble of its fold models.

A 78-image validation split cannot select a model reliably; cross-validation on train + val can: every image is
predicted once by a model that did not see it (out-of-fold), and the pooled out-of-fold AUC/accuracy with
bootstrap intervals compare recipes.  The fold models together form an ensemble (their probabilities averaged)
trained within the same overall time budget.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ...progress import Cancelled, ProgressCallback
from .data import ImageSet, normalise
from .metrics import bootstrap_intervals, choose_threshold, classification_metrics
from .models import Ensemble
from .train import TrainConfig, TrainResult, predict_proba, train

__all__ = [
    "CVResult",
    "stratified_folds",
    "merge_sets",
    "cross_validate",
    "ensemble_model",
    "ensemble_proba",
    "EnsembleResult",
    "train_model",
]


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
        The fold models (an ensemble, see :func:`ensemble_proba` and :func:`ensemble_model`).
    config : TrainConfig or None
        The recipe, ``minutes`` being the budget of the whole cross-validation.
    labels : numpy.ndarray or None
        Class of each example (the rows of ``probabilities``).
    """

    folds: np.ndarray
    probabilities: np.ndarray
    metrics: dict
    fold_metrics: list[dict] = field(default_factory=list)
    results: list[TrainResult] = field(default_factory=list)
    config: TrainConfig | None = None  # the recipe, with the budget of the whole cross-validation
    labels: np.ndarray | None = None


def cross_validate(
    data: ImageSet,
    model_config: dict | None = None,
    config: TrainConfig | None = None,
    k: int = 5,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> CVResult:
    """Train ``k`` models, each validated (epoch selection) on the fold it did not see.

    ``config.minutes`` is a hard budget for the whole cross-validation: each fold gets what is left of it
    divided by the folds still to train (a fold that ends early leaves its time to the next), less a small
    reserve for the final predictions.  Fold ``i`` is trained with seed ``config.seed + i``.

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
        ``progress(done, total)`` over all folds' batches.
    on_epoch : callable, optional
        Called with each epoch's record of :func:`~.train.train`, with ``fold`` (0-based) added.
    stop : callable, optional
        Returns True to cancel: the folds trained so far are kept only if every fold has a model, else
        :class:`~napari_medimg.progress.Cancelled` is raised.

    Returns
    -------
    CVResult

    Raises
    ------
    napari_medimg.progress.Cancelled
        When cancelled before every fold has a model.
    """
    from dataclasses import replace

    config = config or TrainConfig()
    start = time.monotonic()
    deadline = start + config.minutes * 60 if config.minutes else None
    reserve = min(10.0, 0.05 * config.minutes * 60) if config.minutes else 0.0
    folds = stratified_folds(data.labels, k, config.seed)
    probabilities = np.zeros((len(data), len(data.class_names)), np.float32)
    fold_metrics, results = [], []

    def subset(keep):
        return ImageSet(
            data.images[keep], data.labels[keep], list(data.class_names), data.spacing, [], data.patch
        )

    for fold in range(k):
        if stop is not None and stop():
            raise Cancelled("cross-validation")
        minutes = None
        if deadline is not None:
            left = deadline - reserve - time.monotonic()
            minutes = max(left / (k - fold), 1.0) / 60  # at least a second: one epoch is always trained
        held = folds == fold
        fold_progress = None
        if progress is not None:

            def fold_progress(done, total, fold=fold):
                progress(fold * 1000 + int(1000 * done / max(total, 1)), k * 1000)

        fold_epoch = (
            None if on_epoch is None else (lambda record, fold=fold: on_epoch({**record, "fold": fold}))
        )
        result = train(
            subset(~held),
            subset(held),
            model_config,
            replace(config, minutes=minutes, seed=config.seed + fold),
            progress=fold_progress,
            on_epoch=fold_epoch,
            stop=stop,
        )
        if result.stopped == "cancelled" and fold < k - 1:
            raise Cancelled("cross-validation")
        x = normalise(data.images[held], result.normalisation)
        tta = config.flip_axes if config.tta else None
        probabilities[held] = predict_proba(result.model, x, tta_axes=tta)
        fold_metrics.append(result.metrics)
        results.append(result)
        if progress is not None:
            progress((fold + 1) * 1000, k * 1000)
    threshold = choose_threshold(data.labels, probabilities)
    metrics = classification_metrics(data.labels, probabilities, data.class_names, threshold=threshold)
    metrics.update(bootstrap_intervals(data.labels, probabilities, threshold=threshold))
    metrics["threshold"] = threshold
    return CVResult(folds, probabilities, metrics, fold_metrics, results, config, data.labels)


def ensemble_model(cv: CVResult) -> tuple[Ensemble, dict]:
    """The fold models of a cross-validation as one :class:`~.models.Ensemble` with its description.

    The description is that of a single model (see :meth:`~.train.TrainResult.meta`) with the ensemble's
    normalisation, the pooled out-of-fold metrics as ``metrics["val"]`` (with ``auc_ci``/``acc_ci``), the
    decision threshold chosen on the out-of-fold probabilities, every fold's history (``fold`` added) and
    ``"ensemble"``: members, best epoch and validation metrics of each fold.

    Parameters
    ----------
    cv : CVResult
        A cross-validation of at least two folds.

    Returns
    -------
    tuple
        ``(ensemble, meta)`` ready for :func:`~.files.save_model`.

    Example
    -------
    >>> ensemble, meta = ensemble_model(cross_validate(data, k=3))  # doctest: +SKIP
    >>> save_model(ensemble, meta, "model")  # doctest: +SKIP
    """
    results = cv.results
    ensemble, normalisation = Ensemble.from_members(
        [r.model for r in results], [r.normalisation for r in results]
    )
    meta = results[0].meta()
    seconds = sum(r.seconds for r in results)
    meta.update(
        normalisation=normalisation,
        metrics={"val": {k: v for k, v in cv.metrics.items() if k != "threshold"}},
        history=[{**record, "fold": fold} for fold, r in enumerate(results) for record in r.history],
        ensemble={
            "members": len(results),
            "folds": len(results),
            "best_epochs": [r.best_epoch for r in results],
            "stopped": [r.stopped for r in results],
            "fold_metrics": [r.metrics for r in results],
        },
    )
    meta["training"].update(
        **({} if cv.config is None else asdict(cv.config)),
        best_epoch=results[0].best_epoch,
        seconds=round(seconds, 2),
        samples_per_second=round(
            sum(r.samples_per_second * r.seconds for r in results) / max(seconds, 1e-9), 1
        ),
    )
    # every example is in the training folds of k - 1 models
    meta["class_counts"] = [
        int(round(sum(c) / max(len(results) - 1, 1)))
        for c in zip(*(r.class_counts for r in results), strict=True)
    ]
    if cv.metrics.get("threshold") is not None:
        meta["threshold"] = float(cv.metrics["threshold"])
    else:
        meta.pop("threshold", None)
    return ensemble, meta


@dataclass
class EnsembleResult:
    """A trained fold ensemble as the CLI and the panel use it (the fields of a :class:`~.train.TrainResult`
    that describe the outcome).

    Attributes
    ----------
    model : Ensemble
        The fold models.
    description : dict
        Its description (see :func:`ensemble_model`).
    cv : CVResult
        The cross-validation it came from.
    """

    model: Ensemble
    description: dict
    cv: CVResult

    @classmethod
    def from_cv(cls, cv: CVResult) -> EnsembleResult:
        """The ensemble of ``cv``'s fold models (see :func:`ensemble_model`).

        Parameters
        ----------
        cv : CVResult
            A finished cross-validation.

        Returns
        -------
        EnsembleResult
        """
        model, description = ensemble_model(cv)
        return cls(model, description, cv)

    def meta(self) -> dict:
        """The JSON-able description stored beside the weights (a copy)."""
        return copy.deepcopy(self.description)

    @property
    def metrics(self) -> dict:
        """Pooled out-of-fold metrics with ``auc_ci``/``acc_ci`` and ``threshold``."""
        return self.cv.metrics

    @property
    def best_epoch(self) -> list[int]:
        """Best epoch of each fold."""
        return list(self.description["ensemble"]["best_epochs"])

    @property
    def stopped(self) -> str:
        """Why the folds stopped (e.g. ``time_budget``), distinct reasons joined."""
        return ", ".join(dict.fromkeys(self.description["ensemble"]["stopped"]))

    @property
    def seconds(self) -> float:
        """Training seconds of all folds."""
        return float(self.description["training"]["seconds"])


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


def train_model(
    sets: dict,
    model_config: dict,
    config: TrainConfig,
    *,
    folds: int | None = None,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> TrainResult | EnsembleResult:
    """One model trained on ``sets["train"]`` and validated on ``sets["val"]``, or a fold ensemble.

    This is what ``medimg cnn train`` and the napari CNN panel run.

    Parameters
    ----------
    sets : dict
        ``{"train": ImageSet, "val": ImageSet}`` (``val`` may be absent with ``folds``).
    model_config : dict
        Architecture (see :class:`~napari_medimg.learn.cnn.models.ModelConfig`).
    config : TrainConfig
        The training recipe; ``config.minutes`` bounds the whole run.
    folds : int, optional
        With K ≥ 2, train and validation examples are merged and K fold models trained
        (:func:`cross_validate`), returned as one ensemble.
    progress, on_epoch, stop : callable, optional
        As for :func:`cross_validate`.

    Returns
    -------
    TrainResult or EnsembleResult
        Both have ``model``, ``meta()``, ``metrics``, ``best_epoch``, ``stopped`` and ``seconds``.

    Raises
    ------
    ValueError
        ``folds`` below 2, or no validation set without ``folds``.
    """
    if folds is not None:
        if folds < 2:
            raise ValueError(f"an ensemble needs at least 2 folds, got {folds}")
        data = merge_sets(*(sets[name] for name in ("train", "val") if name in sets))
        cv = cross_validate(
            data, model_config, config, k=folds, progress=progress, on_epoch=on_epoch, stop=stop
        )
        return EnsembleResult.from_cv(cv)
    if "val" not in sets:
        raise ValueError("the data has no validation split (val_images/val_labels or split=val rows)")
    return train(
        sets["train"], sets["val"], model_config, config, progress=progress, on_epoch=on_epoch, stop=stop
    )
