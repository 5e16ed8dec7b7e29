"""Classification metrics (binary and multi-class) and a ROC curve plot."""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "classification_metrics",
    "roc_auc",
    "plot_roc",
    "decide",
    "choose_threshold",
    "bootstrap_intervals",
]


def decide(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Predicted classes: class 1 where P(class 1) ≥ ``threshold`` for two classes, else the arg-max.

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``(N, n_classes)``.
    threshold : float, optional
        Decision threshold of a binary model (as chosen on validation data); None = arg-max (0.5).

    Returns
    -------
    numpy.ndarray
        int classes ``(N,)``.
    """
    probabilities = np.asarray(probabilities)
    if threshold is not None and probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(int)
    return probabilities.argmax(axis=1)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """The P(class 1) threshold with the best balanced accuracy (Youden's J) on validation data.

    Accuracy at 0.5 suffers when the class balance of new data differs from training (PneumoniaMNIST's
    train and test splits); the balanced-accuracy optimum does not depend on the class balance.

    Parameters
    ----------
    labels : numpy.ndarray
        True classes (0/1).
    probabilities : numpy.ndarray
        ``(N, 2)`` validation probabilities.

    Returns
    -------
    float or None
        None for other than two classes or a validation set with one class.
    """
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities)
    if probabilities.shape[1] != 2 or len(np.unique(labels)) < 2:
        return None
    score = probabilities[:, 1]
    values = np.unique(score)
    candidates = np.unique(np.r_[(values[1:] + values[:-1]) / 2, 0.5])  # midway between neighbouring scores
    positives, negatives = labels == 1, labels != 1
    above = score[None, :] >= candidates[:, None]
    youden = above[:, positives].mean(1) - above[:, negatives].mean(1)
    best = np.flatnonzero(youden >= youden.max() - 1e-9)
    # of equally good thresholds (a gap between the classes) take the one closest to 0.5
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def bootstrap_intervals(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Percentile bootstrap intervals of ROC-AUC and accuracy (resampling the images with replacement).

    Parameters
    ----------
    labels : numpy.ndarray
        True classes.
    probabilities : numpy.ndarray
        ``(N, n_classes)``.
    threshold : float, optional
        Decision threshold for the accuracy (see :func:`decide`).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``{"auc_ci": [low, high] or None, "acc_ci": [low, high]}``.
    """
    labels = np.asarray(labels).reshape(-1).astype(int)
    probabilities = np.asarray(probabilities, np.float64)
    rng = np.random.default_rng(seed)
    correct = decide(probabilities, threshold) == labels
    aucs, accs = [], []
    binary = probabilities.shape[1] == 2
    for first in range(0, n_boot, 100):  # resamples in blocks: the binary AUC of a block is vectorised
        index = rng.integers(0, len(labels), (min(100, n_boot - first), len(labels)))
        accs.extend(correct[index].mean(axis=1).tolist())
        if binary:
            aucs.extend(_binary_aucs(labels[index], probabilities[:, 1][index]))
            continue
        for row in index:
            auc = roc_auc(labels[row], probabilities[row])
            if auc is not None:
                aucs.append(auc)
    tail = (1 - level) / 2 * 100
    interval = lambda values: [float(v) for v in np.percentile(values, [tail, 100 - tail])]  # noqa: E731
    return {"auc_ci": interval(aucs) if aucs else None, "acc_ci": interval(accs) if accs else None}


def _binary_aucs(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    """ROC-AUC of each row of ``scores`` against the 0/1 ``labels`` of that row (Mann-Whitney U with mid-ranks,
    equal to :func:`sklearn.metrics.roc_auc_score`); rows holding one class only are left out."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    positive = labels == 1
    n1 = positive.sum(axis=1).astype(np.float64)
    n0 = labels.shape[1] - n1
    valid = (n1 > 0) & (n0 > 0)
    u = (ranks * positive).sum(axis=1) - n1 * (n1 + 1) / 2
    return (u[valid] / (n1[valid] * n0[valid])).tolist()


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC-AUC: of class 1's probability for two classes, macro one-vs-rest otherwise; None if undefined.

    Returns
    -------
    float or None
        The AUC, None when only one class is present.
    """
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, np.float64)
    n_classes = probabilities.shape[1]
    present = np.unique(labels)
    if len(present) < 2:
        return None
    if n_classes == 2:
        return float(skm.roc_auc_score(labels, probabilities[:, 1]))
    scores = [skm.roc_auc_score(labels == c, probabilities[:, c]) for c in present]
    return float(np.mean(scores))


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str] | None = None,
    threshold: float | None = None,
) -> dict:
    """Accuracy, balanced accuracy, precision, recall, F1, ROC-AUC, confusion matrix and n.

    For two classes precision/recall/F1 are those of class 1 (the positive class); for more classes they are
    macro averages.  The predicted class is the arg-max of the probabilities, or for two classes P(class 1) ≥ ``threshold``.

    Returns
    -------
    dict
        ``n``, ``acc``, ``balanced_acc``, ``precision``, ``recall``, ``f1``, ``auc``, ``confusion_matrix``,
        ``class_names``.
    """
    labels = np.asarray(labels).reshape(-1).astype(int)
    probabilities = np.asarray(probabilities, np.float64)
    n_classes = probabilities.shape[1]
    predicted = decide(probabilities, threshold)
    average = "binary" if n_classes == 2 else "macro"
    every = list(range(n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision (no predictions of a class) is reported as 0
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            labels, predicted, average=average, labels=None if average == "binary" else every, zero_division=0
        )
        balanced = skm.balanced_accuracy_score(labels, predicted) if len(labels) else float("nan")
    return {
        "n": int(len(labels)),
        "acc": float(np.mean(predicted == labels)) if len(labels) else float("nan"),
        "balanced_acc": float(balanced),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auc": roc_auc(labels, probabilities),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=every).tolist(),
        "class_names": list(class_names) if class_names else [str(c) for c in every],
    }


def plot_roc(
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: str | os.PathLike,
    class_names: list[str] | None = None,
    title: str = "ROC",
) -> str:
    """Write ROC curve(s) to ``path`` (PNG) with the Agg canvas; one-vs-rest curves for >2 classes.

    Returns
    -------
    str
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities)
    n_classes = probabilities.shape[1]
    names = class_names or [str(c) for c in range(n_classes)]
    figure = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    targets = [1] if n_classes == 2 else range(n_classes)
    for c in targets:
        positive = labels == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, probabilities[:, c])
        axes.plot(fpr, tpr, label=f"{names[c]} (AUC {skm.auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    axes.set(
        xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01)
    )
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(os.fspath(path))
    return os.fspath(path)
