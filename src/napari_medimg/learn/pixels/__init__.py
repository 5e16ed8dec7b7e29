"""The pixel classifier: random forest on multi-scale filter features in mm, trained from sparse labels."""

from .classifier import (
    CONTEXT_FOLDS,
    DEFAULT_CONTEXT,
    DEFAULT_FIRST_STAGE_TREES,
    DEFAULT_TREES,
    MIN_CONTEXT_PIXELS,
    PixelClassifier,
    PixelPrediction,
    image_layout,
    load_pixel_classifier,
    predict_pixels,
    predict_slice,
    save_pixel_classifier,
    train_pixel_classifier,
)
from .features import (
    DEFAULT_GROUPS,
    DEFAULT_SIGMAS_MM,
    FEATURE_GROUPS,
    FeatureSettings,
    compute_features,
    feature_names,
    halo_pixels,
)

__all__ = [
    "CONTEXT_FOLDS",
    "DEFAULT_CONTEXT",
    "DEFAULT_FIRST_STAGE_TREES",
    "DEFAULT_GROUPS",
    "DEFAULT_SIGMAS_MM",
    "DEFAULT_TREES",
    "FEATURE_GROUPS",
    "FeatureSettings",
    "MIN_CONTEXT_PIXELS",
    "PixelClassifier",
    "PixelPrediction",
    "compute_features",
    "feature_names",
    "halo_pixels",
    "image_layout",
    "load_pixel_classifier",
    "predict_pixels",
    "predict_slice",
    "save_pixel_classifier",
    "train_pixel_classifier",
]
