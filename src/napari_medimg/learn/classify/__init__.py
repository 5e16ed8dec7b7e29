"""Object classifiers (SVM, decision tree, random forest, gradient boosting) on per-object feature tables."""

from .core import (
    ID_COLUMNS,
    MODELS,
    CrossValidation,
    ObjectClassifier,
    SchemaError,
    classification_metrics,
    cross_validate,
    feature_columns_of,
    feature_importances,
    ignored_columns,
    load_classifier,
    make_model,
    save_classifier,
    train_classifier,
)

__all__ = [
    "ID_COLUMNS",
    "MODELS",
    "CrossValidation",
    "ObjectClassifier",
    "SchemaError",
    "classification_metrics",
    "cross_validate",
    "feature_columns_of",
    "feature_importances",
    "ignored_columns",
    "load_classifier",
    "make_model",
    "save_classifier",
    "train_classifier",
]
