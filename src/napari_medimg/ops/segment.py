"""Segmentation operations: thresholds, islands, morphology, margins, logical operators, region growing.

Every operation takes and returns :class:`~napari_medimg.geometry.Volume` values so the geometry travels with
the mask; parameters are keyword-only with the core function's names and units.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..geometry import Volume
from ..processing import morphology as _morphology
from ..processing import threshold as _threshold
from ..progress import ProgressCallback
from . import register

__all__ = ["threshold", "islands"]


def _mask(volume: Volume, array, **metadata) -> Volume:
    return volume.with_array(np.asarray(array), **metadata)


@register("threshold", inputs=("image",), output="mask")
def threshold(
    image: Volume,
    *,
    method: Literal["otsu", "li", "yen", "triangle", "manual"] = "otsu",
    low: float | None = None,
    high: float | None = None,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Mask of the voxels whose value lies in ``[low, high]``.

    Parameters
    ----------
    image : Volume
        The image (numpy or dask array).
    method : {"otsu", "li", "yen", "triangle", "manual"}
        How the range is found: an automatic method gives ``low`` (foreground above it); ``manual`` takes
        ``low`` and ``high`` as given.
    low : float, optional
        Lower bound in image units; None: the automatic method's value (``manual``: the image minimum).
    high : float, optional
        Upper bound in image units; None: the image maximum.
    progress : callable, optional
        ``progress(done, total)``; raise from it to cancel.

    Returns
    -------
    Volume
        uint8 mask (0/1) on the image's grid.

    Raises
    ------
    ValueError
        When ``low`` is above ``high`` or an automatic method meets a constant image.

    Examples
    --------
    >>> from napari_medimg import ops
    >>> mask = ops.run("threshold", volume, method="manual", low=300.0)  # doctest: +SKIP
    """
    array = image.array
    if method != "manual" and (low is None or high is None):
        auto_low, auto_high = _threshold.threshold_range(array, method)
        low = auto_low if low is None else low
        high = auto_high if high is None else high
    if low is None:
        low = float(np.min(array))
    if high is None:
        high = float(np.max(array))
    mask = _threshold.threshold_mask(array, low, high, progress=progress)
    return _mask(image, mask, threshold={"method": method, "low": float(low), "high": float(high)})


@register("islands", inputs=("mask",), output="mask")
def islands(
    mask: Volume,
    *,
    operation: Literal["keep_largest", "remove_small"] = "keep_largest",
    min_size_mm3: float = 0.0,
    connectivity: int | None = None,
) -> Volume:
    """Keep the largest connected object, or remove the objects smaller than ``min_size_mm3``.

    Parameters
    ----------
    mask : Volume
        Mask (non-zero is foreground).
    operation : {"keep_largest", "remove_small"}
        What to do with the connected objects.
    min_size_mm3 : float
        Smallest object volume kept by ``remove_small``, in mm³ (mm² for 2D).
    connectivity : int, optional
        1 (faces) … ndim (faces, edges and corners, the default).

    Returns
    -------
    Volume
        uint8 mask on the same grid.
    """
    if operation == "keep_largest":
        out = _morphology.keep_largest(mask.array, connectivity=connectivity)
    else:
        out = _morphology.remove_small(
            mask.array, min_size_mm3=min_size_mm3, spacing=mask.spacing, connectivity=connectivity
        )
    return _mask(mask, out)
