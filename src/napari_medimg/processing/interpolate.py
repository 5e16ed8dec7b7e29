"""Fill between slices: shape-based interpolation of painted label slices (Raya & Udupa 1990; Herman 1992).

The user paints a label on a few slices along any axis.  For each label value and each gap between two
painted slices, the signed distance maps (mm, negative inside) of the two painted cross-sections are blended
linearly by position and cut at zero.  Painted slices are never changed, and only unlabelled voxels are
written, so other labels are never overwritten.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..progress import ProgressCallback, report
from ._chunks import check_spacing

__all__ = ["fill_between_slices", "signed_distance"]


def signed_distance(mask: np.ndarray, *, spacing=None) -> np.ndarray:
    """Signed distance (mm) to the boundary of ``mask``: negative inside, positive outside, with the zero
    level half a voxel outside the outermost inside voxels (so cutting at 0 gives ``mask`` back).

    Parameters
    ----------
    mask : array_like
        Mask.
    spacing : sequence of float, optional
        mm per axis (default 1).

    Returns
    -------
    numpy.ndarray
        float32 signed distances in mm.
    """
    mask = np.asarray(mask, bool)
    spacing = check_spacing(spacing, mask.ndim)
    half = 0.5 * float(spacing.min())
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.where(mask, half - inside, outside - half).astype(np.float32)


def _box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    both = (a | b).view(np.uint8)
    box = ndimage.find_objects(both)[0]
    return tuple(
        slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(box, both.shape, strict=False)
    )


def fill_between_slices(
    labels, *, axis: int = 0, values=None, spacing=None, progress: ProgressCallback | None = None
) -> np.ndarray:
    """Interpolate each label value through the gaps between the slices along ``axis`` where it is painted.

    Parameters
    ----------
    labels : array_like
        2D or 3D integer labels.
    axis : int
        The axis the labels were painted along (slice by slice).
    values : sequence of int, optional
        Labels to interpolate (default: all non-zero values present).
    spacing : sequence of float, optional
        mm per axis; in-plane distances are measured in mm (default 1).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        A new array of the same dtype; the input is not modified.

    Raises
    ------
    ValueError
        For labels that are not 2D or 3D, or label value 0.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError("fill between slices works on 2D or 3D labels")
    axis = axis % labels.ndim
    spacing = check_spacing(spacing, labels.ndim)
    plane_spacing = np.delete(spacing, axis)
    source = np.moveaxis(labels, axis, 0)
    out = labels.copy()
    target = np.moveaxis(out, axis, 0)
    if values is None:
        values = [int(v) for v in np.unique(labels) if v != 0]
    work = []
    for value in values:
        if value == 0:
            raise ValueError("label 0 is the background and cannot be interpolated")
        present = np.flatnonzero((source == value).reshape(source.shape[0], -1).any(axis=1))
        work += [(value, a, b) for a, b in zip(present[:-1], present[1:], strict=False) if b - a > 1]
    for done, (value, a, b) in enumerate(work, start=1):
        first, last = source[a] == value, source[b] == value
        box = _box(first, last)
        start = signed_distance(first[box], spacing=plane_spacing)
        stop = signed_distance(last[box], spacing=plane_spacing)
        for k in range(a + 1, b):
            t = (k - a) / (b - a)
            inside = (1 - t) * start + t * stop < 0
            plane = target[k][box]
            plane[inside & (source[k][box] == 0) & (plane == 0)] = value
        report(progress, done, len(work))
    report(progress, max(len(work), 1), max(len(work), 1))
    return out
