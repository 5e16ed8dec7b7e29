"""Measurement operations: the per-object feature table (``features``).

Two modes: the pyradiomics-compatible default (:func:`napari_medimg.measure.compute_features`, columns named
as pyradiomics names them) and, with ``ibsi=True``, the IBSI 1 chain and features
(:func:`napari_medimg.measure.ibsi.compute_ibsi_features`, columns named by the IBSI reference tags).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import pandas as pd

from ..geometry import Volume
from ..measure.features import DEFAULT_BIN_WIDTH, compute_features, parse_groups
from ..measure.ibsi import IBSISettings, compute_ibsi_features
from ..progress import ProgressCallback
from . import register

__all__ = ["features", "ibsi_settings"]


def _pool_threads() -> int | None:
    """Objects measured in parallel: ``MEDIMG_NUM_THREADS`` when set (batch workers set 1), else the default."""
    value = os.environ.get("MEDIMG_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def ibsi_settings(
    *,
    by_slice: bool = False,
    resample_mm: float | None = None,
    interpolation: Literal["linear", "cubic"] = "linear",
    reseg_range: list[float] | None = None,
    reseg_sigma: float | None = None,
    bin_width: float | None = None,
    bin_count: int | None = None,
    ivh_bin_width: float | None = None,
    ivh_bin_count: int | None = None,
) -> IBSISettings:
    """:class:`~napari_medimg.measure.ibsi.IBSISettings` from the operation's (JSON-friendly) parameters.

    Parameters
    ----------
    by_slice, resample_mm, interpolation, reseg_sigma, ivh_bin_width, ivh_bin_count
        As :class:`~napari_medimg.measure.ibsi.IBSISettings`.
    reseg_range : list of float or None
        ``[low, high]``; ``None`` for either end means unbounded.
    bin_width, bin_count : float, int or None
        Discretisation; ``bin_count`` wins when both are given.

    Returns
    -------
    IBSISettings
        The validated settings.

    Raises
    ------
    ValueError
        For invalid settings (e.g. an empty range).
    """
    value_range = None
    if reseg_range is not None:
        if len(reseg_range) != 2:
            raise ValueError(f"reseg_range needs [low, high], got {reseg_range}")
        low, high = reseg_range
        value_range = (-np.inf if low is None else float(low), np.inf if high is None else float(high))
    return IBSISettings(
        by_slice=by_slice,
        resample_mm=resample_mm,
        interpolation=interpolation,
        reseg_range=value_range,
        reseg_sigma=reseg_sigma,
        bin_width=None if bin_count is not None else bin_width,
        bin_count=bin_count,
        ivh_bin_width=ivh_bin_width,
        ivh_bin_count=ivh_bin_count,
    )


@register("features", inputs=("image", "labels"), output="table")
def features(
    image: Volume,
    labels: Volume,
    *,
    groups: list[str] | None = None,
    bin_width: float | None = DEFAULT_BIN_WIDTH,
    ibsi: bool = False,
    by_slice: bool = False,
    resample_mm: float | None = None,
    interpolation: Literal["linear", "cubic"] = "linear",
    reseg_range: list[float] | None = None,
    reseg_sigma: float | None = None,
    bin_count: int | None = None,
    ivh_bin_width: float | None = None,
    ivh_bin_count: int | None = None,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Per-object shape, intensity and texture features of ``labels`` measured on ``image``.

    Parameters
    ----------
    image : Volume
        Intensity image on the labels' grid.
    labels : Volume
        Integer labels (0 = background) or a mask (one object).
    groups : list of str, optional
        Feature groups (shape, firstorder, glcm, glrlm, glszm, gldm, ngtdm); all when omitted.  With ``ibsi``
        the IBSI families (morph, loc, stat, ih, ivh, cm, rlm, szm, dzm, ngt, ngl) are accepted too.
    bin_width : float or None
        Fixed bin width in image units for entropy, uniformity and texture.  With ``ibsi``: fixed bin size
        anchored at the lower re-segmentation bound; None keeps the (integer) intensities as grey levels.
    ibsi : bool
        IBSI 1 mode: the IBSI processing chain and features, columns named by the IBSI reference tags.
    by_slice : bool
        IBSI: compute by slice (in-plane interpolation; 2D and 2.5D texture).
    resample_mm : float or None
        IBSI: new voxel spacing in mm (isotropic, or in-plane when ``by_slice``).
    interpolation : {"linear", "cubic"}
        IBSI: image interpolation when resampling.
    reseg_range : list of float or None
        IBSI: re-segmentation range ``[low, high]`` in image units.
    reseg_sigma : float or None
        IBSI: outlier re-segmentation at mean ± ``reseg_sigma`` standard deviations.
    bin_count : int or None
        IBSI: fixed bin number (instead of ``bin_width``).
    ivh_bin_width : float or None
        IBSI: fixed bin size of the intensity-volume histogram.
    ivh_bin_count : int or None
        IBSI: fixed bin number of the intensity-volume histogram.
    progress : callable, optional
        ``progress(done, total)`` per object.

    Returns
    -------
    pandas.DataFrame
        One row per label value with a ``label`` column, then the feature columns.

    Raises
    ------
    ValueError
        Unknown groups, invalid IBSI settings, or image and labels on different grids.
    """
    if tuple(image.shape) != tuple(labels.shape):
        raise ValueError(f"image {tuple(image.shape)} and labels {tuple(labels.shape)} differ in shape")
    array = np.asarray(labels.array)
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int32)
    if ibsi:
        settings = ibsi_settings(
            by_slice=by_slice,
            resample_mm=resample_mm,
            interpolation=interpolation,
            reseg_range=reseg_range,
            reseg_sigma=reseg_sigma,
            bin_width=bin_width,
            bin_count=bin_count,
            ivh_bin_width=ivh_bin_width,
            ivh_bin_count=ivh_bin_count,
        )
        return compute_ibsi_features(
            labels.with_array(array),
            np.asarray(image.array),
            settings=settings,
            families=groups,
            progress=progress,
        )
    if bin_width is None:
        raise ValueError("the pyradiomics-compatible mode needs a bin width")
    return compute_features(
        labels.with_array(array),
        np.asarray(image.array),
        groups=parse_groups(groups),
        bin_width=bin_width,
        workers=_pool_threads(),
        progress=progress,
    )
