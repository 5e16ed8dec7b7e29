"""Intensity thresholds: automatic threshold values and chunked mask computation with progress."""

from __future__ import annotations

import typing
from typing import Literal

import numpy as np
from skimage import filters

from ..progress import ProgressCallback, report
from ._chunks import check_spacing, mm_to_voxels, slabwise

#: automatic single-threshold methods
AutomaticMethod = Literal["otsu", "li", "yen", "triangle"]
#: local (adaptive) threshold methods
LocalMethod = Literal["gaussian", "mean", "median", "sauvola", "niblack"]

__all__ = [
    "AUTOMATIC_METHODS",
    "LOCAL_METHODS",
    "automatic_threshold",
    "threshold_range",
    "threshold_mask",
    "multi_otsu_thresholds",
    "multi_otsu_labels",
    "local_threshold",
    "percentile_threshold",
]

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
    """A regular strided subsample of at most about ``_MAX_SAMPLES`` voxels, as numpy.

    The stride is taken before anything is read, so a lazy (dask) volume only loads the sampled voxels.
    """
    step = max(1, int(np.ceil((array.size / _MAX_SAMPLES) ** (1 / max(array.ndim, 1)))))
    return np.asarray(array[(slice(None, None, step),) * array.ndim])


def automatic_threshold(array, *, method: AutomaticMethod = "otsu") -> float:
    """Threshold value of ``array`` by an automatic method.

    Volumes larger than a few million voxels are subsampled on a regular stride, which changes the value by
    far less than one histogram bin.

    Parameters
    ----------
    array : array_like
        Image values (numpy or dask; a lazy array only reads the sampled voxels).
    method : {"otsu", "li", "yen", "triangle"}
        The automatic method (scikit-image's ``threshold_<method>``).

    Returns
    -------
    float
        The threshold; the foreground lies above it.

    Raises
    ------
    ValueError
        For an unknown method or a constant image.
    """
    try:
        function = AUTOMATIC_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown threshold method {method!r}; choose from {sorted(AUTOMATIC_METHODS)}"
        ) from None
    values = _sample(array)
    if values.size == 0 or np.all(values == values.flat[0]):
        raise ValueError("cannot compute an automatic threshold of a constant image")
    return float(function(values.astype(np.float32, copy=False)))


def threshold_range(
    array, *, method: AutomaticMethod = "otsu", exact_high: bool = False
) -> tuple[float, float]:
    """``(low, high)`` range selecting the foreground of an automatic method: above the value, up to the max.

    For an in-memory array ``high`` is its maximum; a lazy (dask) volume is not read whole for it unless
    ``exact_high``: ``high`` is then the largest value its integer type can hold (or +inf for floats), which
    selects the same voxels.  A tool that shows ``high`` to the user asks for the exact maximum (one chunked
    pass over the volume; run it off the GUI thread).

    Parameters
    ----------
    array : array_like
        Image values (numpy or dask).
    method : {"otsu", "li", "yen", "triangle"}
        The automatic method.
    exact_high : bool
        Read a lazy volume's true maximum for ``high``.

    Returns
    -------
    tuple of float
        ``(low, high)`` for :func:`threshold_mask`.

    Raises
    ------
    ValueError
        For an unknown method or a constant image.
    """
    value = automatic_threshold(array, method=method)
    if isinstance(array, np.ndarray):
        return value, float(np.max(array))
    if exact_high:
        maximum = array.max()
        return value, float(maximum.compute() if hasattr(maximum, "compute") else maximum)
    dtype = np.dtype(array.dtype)
    return value, float(np.iinfo(dtype).max) if dtype.kind in "iu" else float("inf")


def threshold_mask(
    array,
    *,
    low: float,
    high: float,
    progress: ProgressCallback | None = None,
    chunk_slices: int = 32,
) -> np.ndarray:
    """uint8 mask (0/1) of ``low <= value <= high``, computed slab by slab.

    Works on numpy or dask arrays of any dimension ≥ 2; the first axis is processed in slabs of
    ``chunk_slices`` so that progress is reported and cancellation (raising from ``progress``) is prompt.

    Parameters
    ----------
    array : array_like
        Image values (numpy or dask).
    low, high : float
        The inclusive range, in image units.
    progress : callable, optional
        ``progress(done, total)``; raise :class:`~napari_medimg.progress.Cancelled` from it to stop.
    chunk_slices : int
        Slices per slab.

    Returns
    -------
    numpy.ndarray
        uint8 mask of the array's shape.

    Raises
    ------
    ValueError
        When ``low`` is above ``high``.
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


#: local (adaptive) methods of :func:`local_threshold`
LOCAL_METHODS = typing.get_args(LocalMethod)


def multi_otsu_thresholds(array, *, classes: int = 3, mask=None, nbins: int = 256) -> list[float]:
    """The ``classes - 1`` multi-Otsu thresholds of ``array`` (of the voxels where ``mask`` is non-zero).

    Parameters
    ----------
    array : array_like
        Image values.
    classes : int
        Number of classes, 2 … 8.
    mask : array_like, optional
        Only the voxels where it is non-zero count.
    nbins : int
        Histogram bins.

    Returns
    -------
    list of float
        Ascending thresholds.

    Raises
    ------
    ValueError
        For a class count outside 2 … 8 or a constant image.
    """
    if not 2 <= classes <= 8:
        raise ValueError(f"multi-Otsu needs 2 to 8 classes, got {classes}")
    values = np.asarray(array)[np.asarray(mask) != 0] if mask is not None else _sample(array).ravel()
    if values.size == 0 or np.all(values == values.flat[0]):
        raise ValueError("cannot compute thresholds of a constant (or empty) image")
    return [
        float(t) for t in filters.threshold_multiotsu(values.astype(np.float32), classes=classes, nbins=nbins)
    ]


def multi_otsu_labels(
    array,
    *,
    classes: int = 3,
    mask=None,
    thresholds=None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """uint8 labels of the multi-Otsu classes, darkest class 0 … brightest ``classes - 1``.

    With ``mask``, thresholds come from the masked voxels only, voxels inside get ``class + 1`` (1 …
    ``classes``) and voxels outside stay 0.  ``thresholds`` skips the computation (ascending values).

    Parameters
    ----------
    array : array_like
        Image values.
    classes : int
        Number of classes, 2 … 8.
    mask : array_like, optional
        Region whose voxels define the thresholds and receive labels.
    thresholds : sequence of float, optional
        Precomputed thresholds (``classes - 1`` values).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 class labels.
    """
    if thresholds is None:
        thresholds = multi_otsu_thresholds(array, classes=classes, mask=mask)
    bins = np.asarray(sorted(thresholds), np.float32)
    shift = 1 if mask is not None else 0

    def run(block):
        return (np.digitize(block, bins) + shift).astype(np.uint8)

    labels = slabwise(run, array, 0, progress, dtype=np.uint8)
    if mask is not None:
        labels[np.asarray(mask) == 0] = 0
    return labels


def local_threshold(
    array,
    *,
    spacing=None,
    block_mm: float = 15.0,
    method: LocalMethod = "gaussian",
    offset: float = 0.0,
    k: float = 0.2,
    bright: bool = True,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """uint8 mask of a local (adaptive) threshold over a neighbourhood of ``block_mm`` per side.

    ``gaussian``/``mean``/``median``: foreground where value > local statistic − ``offset`` (with
    ``bright=False``: value < local statistic + ``offset``); ``sauvola`` (for non-negative images;
    R is half the image's range) and ``niblack`` use their ``k`` and ``bright=False`` selects values below
    their local threshold.

    Parameters
    ----------
    array : array_like
        2D or 3D image.
    spacing : sequence of float, optional
        mm per axis (default 1).
    block_mm : float
        Side of the neighbourhood in mm.
    method : {"gaussian", "mean", "median", "sauvola", "niblack"}
        The local statistic.
    offset : float
        Subtracted from the local statistic (image units).
    k : float
        Sauvola / Niblack ``k``.
    bright : bool
        Foreground above (True) or below (False) the local threshold.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.

    Raises
    ------
    ValueError
        For an unknown method or a spacing of the wrong length.
    """
    if method not in LOCAL_METHODS:
        raise ValueError(f"unknown local threshold {method!r}; choose from {LOCAL_METHODS}")
    array = np.asarray(array, np.float32)
    spacing = check_spacing(spacing, array.ndim)
    block = np.maximum(3, 2 * np.floor(mm_to_voxels(block_mm, spacing) / 2) + 1).astype(int)
    # Sauvola's R: the range of the local standard deviation, half the image's intensity range
    dynamic_range = 0.5 * float(np.ptp(array)) or 1.0

    def run(values):
        size = tuple(int(min(b, s if s % 2 else s - 1)) for b, s in zip(block, values.shape, strict=False))
        size = tuple(max(1, s) for s in size)
        if method in ("gaussian", "mean", "median"):
            signed = values if bright else -values
            local = filters.threshold_local(
                signed, block_size=size, method=method, offset=offset, mode="nearest"
            )
            return (signed > local).astype(np.uint8)
        if method == "sauvola":
            local = filters.threshold_sauvola(values, window_size=size, k=k, r=dynamic_range)
        else:
            local = filters.threshold_niblack(values, window_size=size, k=k)
        return (values > local if bright else values < local).astype(np.uint8)

    return slabwise(run, array, int(block[0]), progress, dtype=np.uint8)


def percentile_threshold(array, *, fraction_above: float, mask=None) -> float:
    """The value above which ``fraction_above`` (0–1) of the voxels lie (of those inside ``mask``).

    Parameters
    ----------
    array : array_like
        Image values.
    fraction_above : float
        Fraction of the voxels above the returned value, in (0, 1).
    mask : array_like, optional
        Only the voxels where it is non-zero count.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ValueError
        For a fraction outside (0, 1) or no voxels.
    """
    if not 0 < fraction_above < 1:
        raise ValueError(f"the fraction above the threshold must be in (0, 1), got {fraction_above}")
    values = np.asarray(array)[np.asarray(mask) != 0] if mask is not None else _sample(array)
    if values.size == 0:
        raise ValueError("no voxels to compute a percentile of")
    return float(np.quantile(values, 1.0 - fraction_above))
