"""Measurement operations: the per-object feature table (``features``).

A minimal registration of :func:`napari_medimg.measure.compute_features` so that recipes can measure;
the IBSI settings are added here by the measurement owner.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..geometry import Volume
from ..measure.features import DEFAULT_BIN_WIDTH, compute_features, parse_groups
from ..progress import ProgressCallback
from . import register

__all__ = ["features"]


@register("features", inputs=("image", "labels"), output="table")
def features(
    image: Volume,
    labels: Volume,
    *,
    groups: list[str] | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Per-object shape, first-order and texture features of ``labels`` measured on ``image``.

    Parameters
    ----------
    image : Volume
        Intensity image on the labels' grid.
    labels : Volume
        Integer labels (0 = background) or a mask (one object).
    groups : list of str, optional
        Feature groups (shape, firstorder, glcm, glrlm, glszm, gldm, ngtdm); all when omitted.
    bin_width : float
        Fixed bin width in image units for entropy, uniformity and texture.
    progress : callable, optional
        ``progress(done, total)`` per object.

    Returns
    -------
    pandas.DataFrame
        One row per label value with a ``label`` column, feature columns named as pyradiomics names them.

    Raises
    ------
    ValueError
        Unknown groups, or image and labels on different grids.
    """
    if tuple(image.shape) != tuple(labels.shape):
        raise ValueError(f"image {tuple(image.shape)} and labels {tuple(labels.shape)} differ in shape")
    array = np.asarray(labels.array)
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int32)
    return compute_features(
        labels.with_array(array),
        np.asarray(image.array),
        groups=parse_groups(groups),
        bin_width=bin_width,
        progress=progress,
    )
