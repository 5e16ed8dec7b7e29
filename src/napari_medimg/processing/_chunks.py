"""Slab-wise application of array functions along the first axis, with progress and cancellation.

A filter whose footprint reaches ``halo`` voxels along axis 0 gives exactly the same result when it runs on
overlapping slabs (each padded by ``halo`` voxels from its neighbours) as on the whole array; slabs let a
long job report progress and stop promptly when the caller raises :class:`~napari_medimg.progress.Cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..geometry import check_spacing
from ..progress import ProgressCallback, report

__all__ = ["slabwise", "mm_to_voxels", "ellipsoid_footprint", "check_spacing"]


def mm_to_voxels(length_mm: float, spacing) -> np.ndarray:
    """A physical length in mm as a per-axis voxel count (float).

    Parameters
    ----------
    length_mm : float
        Length in mm.
    spacing : sequence of float
        mm per axis.

    Returns
    -------
    numpy.ndarray
        Voxels per axis.
    """
    return float(length_mm) / np.asarray(spacing, float)


def ellipsoid_footprint(radius_mm: float, spacing) -> np.ndarray:
    """Boolean footprint of the ball ``|offset|_mm <= radius_mm`` on a grid of the given spacing.

    Parameters
    ----------
    radius_mm : float
        Ball radius in mm (≥ 0).
    spacing : sequence of float
        mm per axis.

    Returns
    -------
    numpy.ndarray
        Boolean footprint, odd length per axis.

    Raises
    ------
    ValueError
        For a negative radius.
    """
    spacing = np.asarray(spacing, float)
    if radius_mm < 0:
        raise ValueError(f"radius must be ≥ 0 mm, got {radius_mm}")
    half = np.floor(radius_mm / spacing + 1e-9).astype(int)
    grids = np.meshgrid(
        *[np.arange(-h, h + 1) * s for h, s in zip(half, spacing, strict=False)], indexing="ij", sparse=True
    )
    distance2 = sum(g**2 for g in grids)
    return distance2 <= radius_mm**2 + 1e-9


def slabwise(
    function: Callable[[np.ndarray], np.ndarray],
    array,
    halo: int,
    progress: ProgressCallback | None = None,
    chunk: int = 16,
    dtype=None,
) -> np.ndarray:
    """Apply ``function`` (keeping axis 0's length) to slabs of ``array`` along axis 0 padded by ``halo`` slices.

    2D arrays (and arrays no thicker than one slab) are processed in one call.

    Parameters
    ----------
    function : callable
        ``function(block) -> block`` keeping axis 0's length.
    array : array_like
        numpy or dask array.
    halo : int
        Slices of context each slab needs on either side.
    progress : callable, optional
        ``progress(done, total)``.
    chunk : int
        Slices per slab.
    dtype : numpy dtype, optional
        Output dtype (default: the function's).

    Returns
    -------
    numpy.ndarray
        The assembled result.
    """
    array = np.asarray(array) if not hasattr(array, "compute") else array
    n = array.shape[0]
    if array.ndim < 3 or n <= chunk:
        out = function(np.asarray(array))
        report(progress, 1, 1)
        return out if dtype is None else out.astype(dtype, copy=False)
    out = None
    halo = max(0, int(halo))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lo, hi = max(0, start - halo), min(n, stop + halo)
        block = function(np.asarray(array[lo:hi]))
        if out is None:
            out = np.empty((n, *block.shape[1:]), dtype or block.dtype)
        out[start:stop] = block[start - lo : start - lo + stop - start]
        report(progress, stop, n)
    return out
