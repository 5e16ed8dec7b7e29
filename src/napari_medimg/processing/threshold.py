"""Intensity thresholds: automatic threshold values and chunked mask computation with progress."""

from __future__ import annotations

import numpy as np
from skimage import filters

from ..progress import ProgressCallback, report

__all__ = ["AUTOMATIC_METHODS", "automatic_threshold", "threshold_range", "threshold_mask"]

#: automatic methods: each returns one value; voxels above it are foreground
AUTOMATIC_METHODS = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "yen": filters.threshold_yen,
    "triangle": filters.threshold_triangle,
}

#: most voxels used to compute an automatic threshold (a strided subsample beyond this)
_MAX_SAMPLES = 4_000_000


def _sample(array) -> np.ndarray:
    array = np.asarray(array)
    step = max(1, int(np.ceil((array.size / _MAX_SAMPLES) ** (1 / max(array.ndim, 1)))))
    return array[(slice(None, None, step),) * array.ndim]


def automatic_threshold(array, method: str = "otsu") -> float:
    """Threshold value of ``array`` by an automatic method (``otsu``, ``li``, ``yen``, ``triangle``).

    Volumes larger than a few million voxels are subsampled on a regular stride, which changes the value by
    far less than one histogram bin.
    """
    try:
        function = AUTOMATIC_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown threshold method {method!r}; choose from {sorted(AUTOMATIC_METHODS)}") from None
    values = _sample(array)
    if values.size == 0 or np.all(values == values.flat[0]):
        raise ValueError("cannot compute an automatic threshold of a constant image")
    return float(function(values.astype(np.float32, copy=False)))


def threshold_range(array, method: str = "otsu") -> tuple[float, float]:
    """``(low, high)`` range selecting the foreground of an automatic method: above the value, up to the max."""
    value = automatic_threshold(array, method)
    return value, float(np.max(array))


def threshold_mask(
    array,
    low: float,
    high: float,
    progress: ProgressCallback | None = None,
    chunk_slices: int = 8,
) -> np.ndarray:
    """uint8 mask (0/1) of ``low <= value <= high``, computed slab by slab.

    Works on numpy or dask arrays of any dimension ≥ 2; the first axis is processed in slabs of
    ``chunk_slices`` so that progress is reported and cancellation (raising from ``progress``) is prompt.
    """
    if low > high:
        raise ValueError(f"threshold low {low} is above high {high}")
    n = array.shape[0] if array.ndim >= 3 else 1
    out = np.zeros(array.shape, np.uint8)
    if array.ndim < 3:
        block = np.asarray(array)
        out[...] = (block >= low) & (block <= high)
        report(progress, 1, 1)
        return out
    for start in range(0, n, chunk_slices):
        stop = min(n, start + chunk_slices)
        block = np.asarray(array[start:stop])
        np.logical_and(block >= low, block <= high, out=out[start:stop].view(bool))
        report(progress, stop, n)
    return out
