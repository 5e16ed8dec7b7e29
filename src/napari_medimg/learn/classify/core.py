"""Object classifiers on feature tables: scikit-learn pipelines, stratified cross-validation, metrics.

Every metric is computed by scikit-learn's own function on the cross-validated predictions (out-of-fold class
probabilities; the predicted class is the most probable one, the same rule :meth:`ObjectClassifier.predict`
applies), so the figures can be reproduced from :class:`CrossValidation` with scikit-learn alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ...progress import ProgressCallback, report

__all__ = [
    "MODELS",
    "ID_COLUMNS",
    "ObjectClassifier",
    "CrossValidation",
    "make_model",
    "feature_columns_of",
    "ignored_columns",
    "train_classifier",
    "cross_validate",
    "classification_metrics",
    "feature_importances",
    "SchemaError",
]

#: a text column whose values are at least this share numbers is a feature column with a typo (see
#: :func:`ignored_columns`)
TYPO_SHARE = 0.5

#: model names of :func:`make_model`
MODELS = ("svm", "tree", "forest", "gb")

#: columns that identify an object rather than describe it; never used as features unless asked for
ID_COLUMNS = (
    "index",
    "label",
    "id",
    "object",
    "case",
    "case_id",
    "patient",
    "image",
    "class",
    "predicted_class",
)

#: where an object is (world position, bounding box) says nothing of what it is: not a default feature
POSITION_PREFIXES = ("shape_Centroid", "shape_BBox", "centroid", "bbox")

ModelName = Literal["svm", "tree", "forest", "gb"]


class SchemaError(ValueError):
    """A table or image does not match what a model was trained on; the message names what differs."""


def make_model(
    model: ModelName = "forest",
    *,
    kernel: Literal["rbf", "linear"] = "rbf",
    c: float = 1.0,
    n_estimators: int = 200,
    max_depth: int | None = None,
    learning_rate: float = 0.1,
    seed: int = 0,
):
    """A scikit-learn pipeline: median imputation, scaling where the model needs it, then the classifier.

    Parameters
    ----------
    model : {'svm', 'tree', 'forest', 'gb'}
        Support-vector machine (probabilities by Platt scaling), decision tree, random forest or gradient
        boosting.
    kernel : {'rbf', 'linear'}
        SVM kernel.
    c : float
        SVM regularisation ``C``.
    n_estimators : int
        Trees of the forest / boosting stages.
    max_depth : int, optional
        Depth limit of the trees (tree, forest); ``gb`` uses 3 when not given.
    learning_rate : float
        Gradient-boosting shrinkage.
    seed : int
        Random state of every randomised part.

    Returns
    -------
    sklearn.pipeline.Pipeline
        An unfitted pipeline with ``predict_proba``.

    Raises
    ------
    ValueError
        For an unknown model name.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    steps: list = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if model == "svm":
        if kernel not in ("rbf", "linear"):
            raise ValueError(f"SVM kernel {kernel!r}; valid: 'rbf', 'linear'")
        steps.append(("scale", StandardScaler()))
        svc = SVC(kernel=kernel, C=c, random_state=seed)
        steps.append(("classify", CalibratedClassifierCV(svc, method="sigmoid", ensemble=False, cv=5)))
    elif model == "tree":
        steps.append(("classify", DecisionTreeClassifier(max_depth=max_depth, random_state=seed)))
    elif model == "forest":
        steps.append(
            (
                "classify",
                RandomForestClassifier(n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1),
            )
        )
    elif model == "gb":
        steps.append(
            (
                "classify",
                GradientBoostingClassifier(
                    n_estimators=n_estimators,
                    learning_rate=learning_rate,
                    max_depth=max_depth or 3,
                    random_state=seed,
                ),
            )
        )
    else:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    return Pipeline(steps)


def feature_columns_of(table: pd.DataFrame, target: str | None = None, features: Sequence[str] | None = None):
    """The feature columns of ``table``: the ones asked for, else every numeric column but ids, positions, target.

    Parameters
    ----------
    table : pandas.DataFrame
        A feature table.
    target : str, optional
        The class column, left out.
    features : sequence of str, optional
        Explicit feature columns; each must exist and be numeric.

    Returns
    -------
    list of str
        Column names in table order (or in the order given).

    Raises
    ------
    SchemaError
        When an asked-for column is missing or not numeric, or no feature column is left.
    """
    if features is not None:
        missing = [name for name in features if name not in table.columns]
        if missing:
            raise SchemaError(f"the table has no column(s) {', '.join(map(repr, missing))}")
        bad = [name for name in features if not pd.api.types.is_numeric_dtype(table[name])]
        if bad:
            raise SchemaError(f"feature column(s) {', '.join(map(repr, bad))} are not numeric")
        return list(features)
    skip = {target, *ID_COLUMNS}
    columns = [
        str(name)
        for name in table.columns
        if name not in skip
        and not str(name).startswith(POSITION_PREFIXES)
        and not str(name).startswith("probability_")
        and pd.api.types.is_numeric_dtype(table[name])
        and not pd.api.types.is_bool_dtype(table[name])
    ]
    if not columns:
        raise SchemaError("the table has no numeric feature columns")
    return columns


def ignored_columns(table: pd.DataFrame, target: str | None = None) -> list[dict]:
    """The columns :func:`feature_columns_of` leaves out for not being numbers (text, or numbers with a typo).

    Parameters
    ----------
    table : pandas.DataFrame
        A feature table.
    target : str, optional
        The class column (not reported).

    Returns
    -------
    list of dict
        ``{"column", "numeric_share", "example", "typo"}`` per such column: the share of its non-empty values
        that are numbers, its first value that is not, and whether it is mostly numbers (a share of at least
        :data:`TYPO_SHARE`: a feature column with a typo in it, most likely).
    """
    skip = {target, *ID_COLUMNS}
    found = []
    for name in table.columns:
        column = table[name]
        if name in skip or pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        present = column.dropna()
        numbers = pd.to_numeric(present, errors="coerce")
        share = float(numbers.notna().mean()) if len(present) else 0.0
        text = present[numbers.isna()]
        found.append(
            {
                "column": str(name),
                "numeric_share": round(share, 3),
                "example": str(text.iloc[0]) if len(text) else "",
                "typo": share >= TYPO_SHARE,
            }
        )
    return found


def _matrix(table: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    missing = [name for name in features if name not in table.columns]
    if missing:
        raise SchemaError(
            f"the table lacks {len(missing)} column(s) the model was trained on: {', '.join(map(repr, missing))}"
        )
    bad = [name for name in features if not pd.api.types.is_numeric_dtype(table[name])]
    if bad:
        raise SchemaError(f"column(s) {', '.join(map(repr, bad))} must be numeric, as in training")
    matrix = np.array(table[list(features)].to_numpy(dtype=float), copy=True)
    matrix[~np.isfinite(matrix)] = np.nan  # imputed like missing values
    return matrix


def _target(table: pd.DataFrame, target: str) -> np.ndarray:
    if target not in table.columns:
        raise SchemaError(
            f"the table has no target column {target!r}; columns: {', '.join(map(str, table.columns))}"
        )
    values = table[target]
    if values.isna().any():
        raise SchemaError(f"target column {target!r} has {int(values.isna().sum())} empty value(s)")
    return values.to_numpy()


@dataclass
class CrossValidation:
    """Out-of-fold predictions of a stratified k-fold cross-validation."""

    y_true: np.ndarray
    y_pred: np.ndarray
    probabilities: np.ndarray  #: (n, n_classes), columns in ``classes`` order
    classes: list
    folds: int
    metrics: dict = field(default_factory=dict)


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


def classification_metrics(y_true, y_pred, probabilities, classes: Sequence) -> dict:
    """Accuracy, balanced accuracy, precision/recall/F1 (per class and macro), ROC-AUC, confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array-like
        True and predicted classes.
    probabilities : array-like, shape (n, n_classes)
        Class probabilities, columns in ``classes`` order.
    classes : sequence
        The class values.

    Returns
    -------
    dict
        ``acc``, ``balanced_acc``, ``precision``, ``recall``, ``f1`` (macro averages), ``per_class`` (class →
        precision, recall, f1, support), ``auc`` (binary ROC-AUC of the second class, one-vs-rest macro for
        more; None when a class is absent), ``confusion_matrix`` (rows true, columns predicted, in ``classes``
        order), ``classes``, ``n``.  All from :mod:`sklearn.metrics`.
    """
    from sklearn import metrics

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = np.asarray(probabilities, float)
    classes = list(classes)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    auc = None
    present = set(np.unique(y_true).tolist())
    if len(classes) == 2 and present == set(classes):
        auc = float(metrics.roc_auc_score(y_true == classes[1], probabilities[:, 1]))
    elif len(classes) > 2 and present == set(classes):
        auc = float(metrics.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes))
    return {
        "acc": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_acc": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "precision": float(
            metrics.precision_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
        ),
        "recall": float(
            metrics.recall_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
        ),
        "f1": float(metrics.f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "auc": auc,
        "per_class": {
            str(_json_value(name)): {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "classes": [_json_value(name) for name in classes],
        "n": int(len(y_true)),
    }


def _check_classes(y: np.ndarray, folds: int) -> list:
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise SchemaError(f"the target has one class only ({classes.tolist()}); two or more are needed")
    if folds >= 2 and counts.min() < folds:
        rare = classes[np.argmin(counts)]
        raise SchemaError(
            f"class {_json_value(rare)!r} has {int(counts.min())} example(s); {folds}-fold cross-validation "
            f"needs at least {folds} per class (use fewer --folds)"
        )
    return [_json_value(value) for value in classes]


def cross_validate(
    pipeline,
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> CrossValidation:
    """Stratified k-fold cross-validation: out-of-fold probabilities, predictions and metrics.

    Parameters
    ----------
    pipeline : sklearn estimator
        An unfitted classifier with ``predict_proba`` (cloned for every fold).
    x : numpy.ndarray, shape (n, n_features)
        Features.
    y : numpy.ndarray, shape (n,)
        Classes.
    folds : int
        Number of folds (≥ 2).
    seed : int
        Shuffling seed of the folds.
    progress : callable, optional
        ``progress(done, total)`` after each fold; raise :class:`~napari_medimg.progress.Cancelled` to stop.

    Returns
    -------
    CrossValidation
        Out-of-fold results with :func:`classification_metrics` in ``metrics``.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError(f"cross-validation needs 2 or more folds, got {folds}")
    classes = _check_classes(y, folds)
    probabilities = np.zeros((len(y), len(classes)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(x, y)):
        model = clone(pipeline).fit(x[train], y[train])
        columns = [classes.index(_json_value(value)) for value in model.classes_]
        probabilities[np.ix_(test, columns)] = model.predict_proba(x[test])
        report(progress, fold + 1, folds)
    y_pred = np.asarray(classes, dtype=object)[np.argmax(probabilities, axis=1)]
    y_pred = y_pred.astype(y.dtype) if y.dtype != object else y_pred
    result = CrossValidation(y, y_pred, probabilities, classes, folds)
    result.metrics = {**classification_metrics(y, y_pred, probabilities, classes), "folds": folds}
    return result


def feature_importances(
    pipeline, x: np.ndarray, y: np.ndarray, feature_names: Sequence[str], *, seed: int = 0
):
    """Importance of each feature: the model's own (impurity) importances, else permutation importance.

    Parameters
    ----------
    pipeline : fitted sklearn Pipeline
        A pipeline from :func:`make_model`, fitted.
    x, y : numpy.ndarray
        The data to permute (permutation importance only).
    feature_names : sequence of str
        Names of the columns of ``x``.
    seed : int
        Random state of the permutations.

    Returns
    -------
    dict
        ``method`` (``'impurity'`` or ``'permutation'``) and ``values`` (feature → importance), sorted from
        most to least important.
    """
    from sklearn.inspection import permutation_importance

    classifier = pipeline[-1]
    if hasattr(classifier, "feature_importances_"):
        values, method = np.asarray(classifier.feature_importances_, float), "impurity"
    else:
        result = permutation_importance(
            pipeline, x, y, n_repeats=5, random_state=seed, scoring="balanced_accuracy"
        )
        values, method = np.asarray(result.importances_mean, float), "permutation"
    order = np.argsort(-values, kind="stable")
    return {"method": method, "values": {str(feature_names[i]): float(values[i]) for i in order}}


@dataclass
class ObjectClassifier:
    """A fitted object classifier with the schema it was trained on.

    ``feature_names`` (in order) is what a table must provide; ``classes`` are the target values;
    ``settings`` the model name and hyper-parameters; ``metrics`` the cross-validated figures;
    ``importances`` from :func:`feature_importances`; ``feature_settings`` how the features were computed
    (groups, bin width …) when known.
    """

    pipeline: object
    feature_names: list[str]
    classes: list
    target: str
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    importances: dict = field(default_factory=dict)
    feature_settings: dict = field(default_factory=dict)

    kind = "objects"

    def check_table(self, table: pd.DataFrame) -> None:
        """Raise :class:`SchemaError` naming the columns a table lacks (or has with the wrong type)."""
        _matrix(table.head(0) if len(table) else table, self.feature_names)

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes`` order."""
        probabilities = self.pipeline.predict_proba(_matrix(table, self.feature_names))
        order = [list(map(_json_value, self.pipeline.classes_)).index(value) for value in self.classes]
        return probabilities[:, order]

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """The most probable class of every row."""
        probabilities = self.predict_proba(table)
        return np.asarray(self.classes, dtype=object)[np.argmax(probabilities, axis=1)]

    def predict_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """A table of the id columns present, ``predicted_class`` and one ``probability_<class>`` per class."""
        probabilities = self.predict_proba(table)
        keep = [
            name for name in table.columns if name in ID_COLUMNS and name not in ("class", "predicted_class")
        ]
        out = table[keep].copy() if keep else pd.DataFrame(index=table.index)
        out["predicted_class"] = np.asarray(self.classes, dtype=object)[np.argmax(probabilities, axis=1)]
        for column, name in enumerate(self.classes):
            out[f"probability_{name}"] = probabilities[:, column]
        return out

    def evaluate(self, table: pd.DataFrame, target: str | None = None) -> dict:
        """:func:`classification_metrics` of this model on a labelled table (no re-training)."""
        target = target or self.target
        y = _target(table, target)
        unknown = sorted(set(map(str, np.unique(y).tolist())) - set(map(str, self.classes)))
        if unknown:
            raise SchemaError(
                f"target column {target!r} holds class(es) {', '.join(unknown)} the model was not trained on "
                f"(it knows {', '.join(map(str, self.classes))})"
            )
        probabilities = self.predict_proba(table)
        y_pred = np.asarray(self.classes, dtype=object)[np.argmax(probabilities, axis=1)]
        if y.dtype != object:
            y_pred = y_pred.astype(y.dtype)
        return classification_metrics(y, y_pred, probabilities, self.classes)


def train_classifier(
    table: pd.DataFrame,
    *,
    target: str,
    model: ModelName = "forest",
    folds: int = 5,
    features: Sequence[str] | None = None,
    kernel: Literal["rbf", "linear"] = "rbf",
    c: float = 1.0,
    n_estimators: int = 200,
    max_depth: int | None = None,
    learning_rate: float = 0.1,
    seed: int = 0,
    feature_settings: dict | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[ObjectClassifier, CrossValidation | None]:
    """Cross-validate a classifier on a feature table, then fit it on every row.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per object: feature columns and the ``target`` column.
    target : str
        The class column.
    model : {'svm', 'tree', 'forest', 'gb'}
        See :func:`make_model`.
    folds : int
        Stratified k-fold cross-validation folds; 0 or 1 skips cross-validation.
    features : sequence of str, optional
        Feature columns (default: every numeric column except ids and the target).
    kernel, c, n_estimators, max_depth, learning_rate, seed
        Hyper-parameters, see :func:`make_model`.
    feature_settings : dict, optional
        How the features were computed (groups, bin width …), stored with the model.
    progress : callable, optional
        ``progress(done, total)`` per fold and for the final fit.

    Returns
    -------
    (ObjectClassifier, CrossValidation or None)
        The model fitted on all rows (with the cross-validated metrics and importances) and the out-of-fold
        results.

    Raises
    ------
    SchemaError
        When the target column is missing, has one class or too few examples of a class for ``folds``.

    Example
    -------
    >>> from sklearn.datasets import load_breast_cancer
    >>> table = load_breast_cancer(as_frame=True).frame
    >>> classifier, cv = train_classifier(table, target="target", model="forest", folds=5)  # doctest: +SKIP
    >>> round(cv.metrics["auc"], 2)  # doctest: +SKIP
    0.99
    """
    y = _target(table, target)
    names = feature_columns_of(table, target, features)
    x = _matrix(table, names)
    params = {
        "kernel": kernel,
        "c": c,
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "learning_rate": learning_rate,
        "seed": seed,
    }
    pipeline = make_model(model, **params)
    steps = (folds if folds >= 2 else 0) + 1
    cv = None
    if folds >= 2:
        cv = cross_validate(
            pipeline, x, y, folds=folds, seed=seed, progress=lambda d, _t: report(progress, d, steps)
        )
    classes = _check_classes(y, 0)
    pipeline.fit(x, y)
    report(progress, steps, steps)
    metrics = dict(cv.metrics) if cv is not None else {"n": int(len(y)), "folds": 0}
    metrics["imputed_values"] = int(np.isnan(x).sum())  # missing or non-finite: the training median
    metrics["ignored_columns"] = [] if features is not None else ignored_columns(table, target)
    classifier = ObjectClassifier(
        pipeline=pipeline,
        feature_names=names,
        classes=classes,
        target=target,
        settings={"model": model, **params, "folds": folds},
        metrics=metrics,
        importances=feature_importances(pipeline, x, y, names, seed=seed),
        feature_settings=dict(feature_settings or {}),
    )
    return classifier, cv


def save_classifier(classifier: ObjectClassifier, path, *, overwrite: bool = False):
    """Write an :class:`ObjectClassifier` as a skops bundle (see :mod:`napari_medimg.learn.bundle`).

    Parameters
    ----------
    classifier : ObjectClassifier
        The fitted classifier.
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

    meta = {
        "kind": "objects",
        "feature_names": list(classifier.feature_names),
        "classes": list(classifier.classes),
        "class_names": [str(name) for name in classifier.classes],
        "target": classifier.target,
        "settings": classifier.settings,
        "feature_settings": classifier.feature_settings,
        "metrics": classifier.metrics,
        "importances": classifier.importances,
    }
    return save_bundle(path, classifier.pipeline, meta, overwrite=overwrite)


def load_classifier(path) -> ObjectClassifier:
    """Read an object classifier bundle written by :func:`save_classifier`.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle.

    Returns
    -------
    ObjectClassifier

    Raises
    ------
    BundleError
        For a damaged, foreign or tampered file, or a pixel-classifier bundle.
    """
    from ..bundle import BundleError, load_bundle

    pipeline, meta = load_bundle(path, kind="objects")
    try:
        classifier = ObjectClassifier(
            pipeline=pipeline,
            feature_names=[str(name) for name in meta["feature_names"]],
            classes=list(meta["classes"]),
            target=str(meta["target"]),
            settings=dict(meta.get("settings", {})),
            metrics=dict(meta.get("metrics", {})),
            importances=dict(meta.get("importances", {})),
            feature_settings=dict(meta.get("feature_settings", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path}: the bundle's description is incomplete ({error})") from error
    n_features = getattr(pipeline, "n_features_in_", len(classifier.feature_names))
    if n_features != len(classifier.feature_names):
        raise BundleError(
            f"{path}: the model takes {n_features} features but the bundle names {len(classifier.feature_names)}"
        )
    known = sorted(map(str, map(_json_value, pipeline.classes_)))
    if known != sorted(map(str, classifier.classes)):
        raise BundleError(f"{path}: the model's classes {known} differ from the bundle's description")
    return classifier
