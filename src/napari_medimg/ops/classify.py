"""Classifier operations: apply a saved object classifier to a feature table, or a pixel classifier to an image.

Models are given by the path of their skops bundle (``model=``), so a recipe can name the model it applies;
loaded bundles are cached by path and modification time for batch runs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..geometry import Volume
from ..progress import ProgressCallback
from . import register

__all__ = ["classify_objects", "pixel_classify"]


@lru_cache(maxsize=8)
def _load(kind: str, path: str, _mtime: float):
    if kind == "objects":
        from ..learn.classify import load_classifier

        return load_classifier(path)
    from ..learn.pixels import load_pixel_classifier

    return load_pixel_classifier(path)


def _model(kind: str, model: str):
    path = Path(os.path.expanduser(model))
    if not path.is_file():
        raise FileNotFoundError(f"model file {model!r} does not exist")
    return _load(kind, str(path.resolve()), path.stat().st_mtime)


@register("classify_objects", inputs=("table",), output="table")
def classify_objects(table: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """Predict the class of every object (row) of a feature table with a saved object classifier.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per object with every feature column the model was trained on.
    model : str
        Path of the model bundle from ``medimg classify train`` or the Classify widget.

    Returns
    -------
    pandas.DataFrame
        The table with ``predicted_class`` and one ``probability_<class>`` column per class added.

    Raises
    ------
    SchemaError
        When the table lacks a training column (named in the message).
    """
    classifier = _model("objects", model)
    predictions = classifier.predict_table(table)
    out = table.drop(columns=[c for c in predictions.columns if c in table.columns and c != "label"]).copy()
    for column in predictions.columns:
        if column != "label" or "label" not in out.columns:
            out[column] = predictions[column].to_numpy()
    return out


@register("pixel_classify", inputs=("image",), output="labels")
def pixel_classify(
    image: Volume,
    *,
    model: str,
    output: Literal["labels", "probability"] = "labels",
    class_value: int | None = None,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Segment an image with a saved pixel classifier (slab-wise, with progress and cancel).

    Parameters
    ----------
    image : Volume
        2D or 3D image, grey or RGB, matching the classifier's training images.
    model : str
        Path of the model bundle from ``medimg pixels train`` or the Classify widget.
    output : {'labels', 'probability'}
        Class labels (pixel value = class), or the probability of class ``class_value``.
    class_value : int, optional
        The class whose probability ``output='probability'`` returns (default: the last class).
    progress : callable, optional
        ``progress(done, total)`` per slab.

    Returns
    -------
    Volume
        Labels (uint8/uint16) or a float32 probability image, on the image's grid.

    Raises
    ------
    SchemaError
        When the image does not match the classifier (channels, dimensions, units).
    """
    from ..learn.pixels import predict_pixels

    classifier = _model("pixels", model)
    prediction = predict_pixels(classifier, image, probabilities=output == "probability", progress=progress)
    spatial = image.spacing[:-1] if image.metadata.get("rgb") else image.spacing
    metadata = {k: v for k, v in image.metadata.items() if k != "rgb"}
    if output == "labels":
        array, metadata["kind"] = prediction.labels, "labels"
        metadata["class_names"] = dict(zip(map(int, classifier.classes), classifier.class_names, strict=True))
    else:
        value = classifier.classes[-1] if class_value is None else int(class_value)
        if value not in classifier.classes:
            raise ValueError(f"class_value {value} is not a class of the model ({classifier.classes})")
        array = np.ascontiguousarray(prediction.probabilities[..., classifier.classes.index(value)])
    return Volume(array, spatial, image.origin, image.direction, metadata)
