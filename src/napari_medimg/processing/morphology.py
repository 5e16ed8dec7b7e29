"""Binary morphology and label editing with structuring elements and margins in millimetres.

Masks are arrays of any integer/bool dtype (non-zero = foreground), 2D or 3D, with ``spacing`` in mm per
axis.  Results are ``uint8`` masks (0/1) or compact label images (uint8/uint16/int32).  Balls are
ellipsoids in voxels that are round in mm; margins use exact Euclidean distance transforms in mm.
"""

from __future__ import annotations

import typing
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import measure, morphology, segmentation

from ..progress import ProgressCallback, report
from ._chunks import check_spacing, ellipsoid_footprint, mm_to_voxels, slabwise

__all__ = [
    "MORPHOLOGY_OPERATIONS",
    "LOGICAL_OPERATIONS",
    "SMOOTHING_METHODS",
    "binary_morphology",
    "fill_holes",
    "connected_components",
    "keep_largest",
    "keep_selected",
    "remove_small",
    "split_islands",
    "margin",
    "smooth",
    "logical",
    "watershed_split",
    "edit_label",
    "compact_labels",
]

MorphologyOperation = Literal["erode", "dilate", "open", "close"]
LogicalOperation = Literal["union", "intersect", "subtract", "xor", "invert", "copy"]
SmoothingMethod = Literal["median", "open", "close", "gaussian"]
MORPHOLOGY_OPERATIONS = typing.get_args(MorphologyOperation)
LOGICAL_OPERATIONS = typing.get_args(LogicalOperation)
SMOOTHING_METHODS = typing.get_args(SmoothingMethod)


def _spacing(mask, spacing) -> np.ndarray:
    return check_spacing(spacing, np.ndim(mask))


def _structure(ndim: int, connectivity: int | None) -> np.ndarray:
    connectivity = ndim if connectivity is None else connectivity
    if not 1 <= connectivity <= ndim:
        raise ValueError(f"connectivity must be 1 … {ndim}, got {connectivity}")
    return ndimage.generate_binary_structure(ndim, connectivity)


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` in the smallest of uint8 / uint16 / int32 that holds its maximum.

    Parameters
    ----------
    labels : numpy.ndarray
        Non-negative integer labels.

    Returns
    -------
    numpy.ndarray
        The labels, cast (no copy when the dtype already fits).
    """
    top = int(labels.max()) if labels.size else 0
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32
    return labels.astype(dtype, copy=False)


def binary_morphology(
    mask,
    *,
    operation: MorphologyOperation,
    radius_mm: float,
    spacing=None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Erode / dilate / open / close ``mask`` with a ball of ``radius_mm`` (uint8 result).

    Outside the array counts as background for erosion and opening, and as foreground for the erosion half
    of a closing (so closing never eats objects that touch the border).

    Parameters
    ----------
    mask : array_like
        2D or 3D mask (non-zero is foreground).
    operation : {"erode", "dilate", "open", "close"}
        The operation.
    radius_mm : float
        Radius of the ball (round in mm) in mm.
    spacing : sequence of float, optional
        mm per axis (default 1).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.

    Raises
    ------
    ValueError
        For an unknown operation, a negative radius or a bad spacing.
    """
    if operation not in MORPHOLOGY_OPERATIONS:
        raise ValueError(f"unknown morphology operation {operation!r}; choose from {MORPHOLOGY_OPERATIONS}")
    spacing = _spacing(mask, spacing)
    footprint = ellipsoid_footprint(radius_mm, spacing)
    reach = footprint.shape[0] // 2 * (2 if operation in ("open", "close") else 1)

    def run(block):
        block = block != 0
        if operation == "erode":
            out = ndimage.binary_erosion(block, footprint)
        elif operation == "dilate":
            out = ndimage.binary_dilation(block, footprint)
        elif operation == "open":
            out = ndimage.binary_dilation(ndimage.binary_erosion(block, footprint), footprint)
        else:
            out = ndimage.binary_erosion(ndimage.binary_dilation(block, footprint), footprint, border_value=1)
        return out.view(np.uint8)

    return slabwise(run, mask, reach, progress, chunk=64, dtype=np.uint8)


def fill_holes(
    mask, *, per_slice: bool = False, axis: int = 0, progress: ProgressCallback | None = None
) -> np.ndarray:
    """Fill enclosed background: in 3D (or 2D) at once, or slice by slice along ``axis`` (uint8).

    Parameters
    ----------
    mask : array_like
        2D or 3D mask.
    per_slice : bool
        Fill each slice along ``axis`` on its own (holes open in 3D are filled in the slices).
    axis : int
        Slice axis of ``per_slice``.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    mask = np.asarray(mask) != 0
    if not per_slice or mask.ndim == 2:
        out = ndimage.binary_fill_holes(mask)
        report(progress, 1, 1)
        return out.view(np.uint8)
    moved = np.moveaxis(mask, axis, 0)
    out = np.empty_like(moved)
    for index in range(moved.shape[0]):
        out[index] = ndimage.binary_fill_holes(moved[index])
        report(progress, index + 1, moved.shape[0])
    return np.moveaxis(out, 0, axis).view(np.uint8)


def connected_components(mask, *, connectivity: int | None = None) -> np.ndarray:
    """Label the connected objects of ``mask`` 1 … N (face+edge+corner connectivity by default).

    Parameters
    ----------
    mask : array_like
        Mask.
    connectivity : int, optional
        1 (faces) … ndim (faces, edges and corners; the default).

    Returns
    -------
    numpy.ndarray
        Compact labels (see :func:`compact_labels`).

    Raises
    ------
    ValueError
        For a connectivity outside 1 … ndim.
    """
    connectivity = np.ndim(mask) if connectivity is None else connectivity
    _structure(np.ndim(mask), connectivity)  # validates
    return compact_labels(measure.label(np.asarray(mask) != 0, connectivity=connectivity))


def _sizes(mask, connectivity):
    labels, count = ndimage.label(np.asarray(mask) != 0, structure=_structure(np.ndim(mask), connectivity))
    return labels, np.bincount(labels.ravel(), minlength=count + 1)


def keep_largest(mask, *, connectivity: int | None = None) -> np.ndarray:
    """Keep only the largest connected object (uint8); an empty mask stays empty.

    Parameters
    ----------
    mask : array_like
        Mask.
    connectivity : int, optional
        1 … ndim (default ndim).

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    labels, sizes = _sizes(mask, connectivity)
    if sizes.size <= 1:
        return np.zeros(np.shape(mask), np.uint8)
    return (labels == int(np.argmax(sizes[1:])) + 1).view(np.uint8)


def keep_selected(mask, indices, *, connectivity: int | None = None) -> np.ndarray:
    """Keep the objects that contain any of the voxel ``indices`` (N, ndim) — Slicer's "keep selected
    island" (uint8).  Use :func:`~napari_medimg.processing.region_growing.seed_indices` for world points.

    The one "keep the components a seed touches" of the package (region growing uses it too).

    Parameters
    ----------
    mask : array_like
        Mask.
    indices : array_like
        Integer voxel indices, shape ``(N, ndim)``.
    connectivity : int, optional
        1 … ndim (default ndim).

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    labels, _ = ndimage.label(np.asarray(mask) != 0, structure=_structure(np.ndim(mask), connectivity))
    indices = np.atleast_2d(np.asarray(indices, int))
    hits = np.unique(labels[tuple(indices.T)])
    return np.isin(labels, hits[hits > 0]).view(np.uint8)


def remove_small(mask, *, min_size_mm3: float, spacing=None, connectivity: int | None = None) -> np.ndarray:
    """Remove objects smaller than ``min_size_mm3`` (mm² for 2D) (uint8).

    Parameters
    ----------
    mask : array_like
        Mask.
    min_size_mm3 : float
        Smallest object kept, mm³ (mm² for 2D).
    spacing : sequence of float, optional
        mm per axis (default 1).
    connectivity : int, optional
        1 … ndim (default ndim).

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    spacing = _spacing(mask, spacing)
    labels, sizes = _sizes(mask, connectivity)
    keep = sizes * float(np.prod(spacing)) >= min_size_mm3
    keep[0] = False
    return keep[labels].view(np.uint8)


def split_islands(
    mask, *, min_size_mm3: float = 0.0, spacing=None, connectivity: int | None = None
) -> np.ndarray:
    """Each connected object as its own label, numbered by decreasing size; objects below the size drop.

    Parameters
    ----------
    mask : array_like
        Mask.
    min_size_mm3 : float
        Smallest object kept, mm³ (mm² for 2D).
    spacing : sequence of float, optional
        mm per axis (default 1).
    connectivity : int, optional
        1 … ndim (default ndim).

    Returns
    -------
    numpy.ndarray
        Compact labels, 1 the largest object.
    """
    spacing = _spacing(mask, spacing)
    labels, sizes = _sizes(mask, connectivity)
    order = np.argsort(-sizes[1:], kind="stable") + 1
    order = order[sizes[order] * float(np.prod(spacing)) >= min_size_mm3]
    lookup = np.zeros(sizes.size, np.int64)
    lookup[order] = np.arange(1, order.size + 1)
    return compact_labels(lookup[labels])


def margin(mask, *, margin_mm: float, spacing=None) -> np.ndarray:
    """Grow (``margin_mm`` > 0) or shrink (< 0) ``mask`` by an exact Euclidean distance in mm (uint8).

    Parameters
    ----------
    mask : array_like
        Mask.
    margin_mm : float
        Margin in mm; negative shrinks.
    spacing : sequence of float, optional
        mm per axis (default 1).

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    spacing = _spacing(mask, spacing)
    mask = np.asarray(mask) != 0
    if margin_mm == 0 or not mask.any():
        return mask.view(np.uint8).copy()
    pad = np.ceil(mm_to_voxels(abs(margin_mm), spacing)).astype(int) + 1
    box = ndimage.find_objects(mask.view(np.uint8))[0]
    box = tuple(
        slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(box, pad, mask.shape, strict=False)
    )
    crop = mask[box]
    out = np.zeros(mask.shape, np.uint8)
    if margin_mm > 0:
        out[box] = ndimage.distance_transform_edt(~crop, sampling=spacing) <= margin_mm
    else:
        # outside the array counts as background, as for erosion
        padded = np.pad(crop, 1)
        inside = ndimage.distance_transform_edt(padded, sampling=spacing) > -margin_mm
        out[box] = inside[(slice(1, -1),) * mask.ndim]
    return out


def smooth(
    mask,
    *,
    method: SmoothingMethod = "median",
    radius_mm: float = 1.0,
    spacing=None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Smooth a mask's surface: ``median`` vote in a ball of ``radius_mm``, ``open``/``close`` with it,
    or ``gaussian`` blur of sigma ``radius_mm`` cut at 0.5 (uint8).

    Parameters
    ----------
    mask : array_like
        Mask.
    method : {"median", "open", "close", "gaussian"}
        The smoothing.
    radius_mm : float
        Ball radius (Gaussian: sigma) in mm.
    spacing : sequence of float, optional
        mm per axis (default 1).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    spacing = _spacing(mask, spacing)
    if method in ("open", "close"):
        return binary_morphology(
            mask, operation=method, radius_mm=radius_mm, spacing=spacing, progress=progress
        )
    if method == "median":
        footprint = ellipsoid_footprint(radius_mm, spacing)
        return slabwise(
            lambda b: ndimage.median_filter((b != 0).view(np.uint8), footprint=footprint),
            mask,
            footprint.shape[0] // 2,
            progress,
            dtype=np.uint8,
        )
    if method == "gaussian":
        sigma = mm_to_voxels(radius_mm, spacing)
        return slabwise(
            lambda b: (ndimage.gaussian_filter((b != 0).astype(np.float32), sigma) > 0.5).view(np.uint8),
            mask,
            int(np.ceil(4 * sigma[0])) + 1,
            progress,
            dtype=np.uint8,
        )
    raise ValueError(f"unknown smoothing {method!r}; choose from {SMOOTHING_METHODS}")


def logical(a, b=None, *, operation: LogicalOperation) -> np.ndarray:
    """Logical operators between masks (uint8): ``union``, ``intersect``, ``subtract`` (a and not b),
    ``xor``, ``invert`` (not a) and ``copy`` (b, or a when there is no b).

    Parameters
    ----------
    a : array_like
        First mask.
    b : array_like, optional
        Second mask, same shape (needed by the binary operators).
    operation : {"union", "intersect", "subtract", "xor", "invert", "copy"}
        The operator.

    Returns
    -------
    numpy.ndarray
        uint8 mask.

    Raises
    ------
    ValueError
        For an unknown operator, a missing second mask or masks of different shapes.
    """
    a = np.asarray(a) != 0
    if operation == "copy" and b is not None:
        a = np.asarray(b) != 0
    if operation in ("invert", "copy"):
        return (~a if operation == "invert" else a).view(np.uint8).copy()
    if operation not in LOGICAL_OPERATIONS:
        raise ValueError(f"unknown logical operation {operation!r}; choose from {LOGICAL_OPERATIONS}")
    if b is None:
        raise ValueError(f"{operation} needs two masks")
    b = np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    function = {
        "union": np.logical_or,
        "intersect": np.logical_and,
        "xor": np.logical_xor,
        "subtract": lambda x, y: x & ~y,
    }[operation]
    return function(a, b).view(np.uint8)


def watershed_split(mask, *, h_mm: float = 1.0, spacing=None, connectivity: int | None = None) -> np.ndarray:
    """Split touching objects: watershed of the negated distance map (mm) seeded at its h-maxima.

    Parameters
    ----------
    mask : array_like
        Mask.
    h_mm : float
        How much deeper than the neck between them two centres must be (in mm of distance to the border) to
        count as separate objects.
    spacing : sequence of float, optional
        mm per axis (default 1).
    connectivity : int, optional
        1 … ndim (default ndim).

    Returns
    -------
    numpy.ndarray
        Compact labels.
    """
    spacing = _spacing(mask, spacing)
    mask = np.asarray(mask) != 0
    if not mask.any():
        return np.zeros(mask.shape, np.uint8)
    distance = ndimage.distance_transform_edt(mask, sampling=spacing).astype(np.float32)
    maxima = morphology.h_maxima(distance, h_mm)
    markers, _ = ndimage.label(maxima, structure=_structure(mask.ndim, None))
    labels = segmentation.watershed(
        -distance, markers, mask=mask, connectivity=_structure(mask.ndim, connectivity)
    )
    return compact_labels(labels)


def edit_label(labels, new_mask, *, value: int, overwrite: bool = False) -> np.ndarray:
    """Write ``new_mask`` as label ``value`` into a copy of ``labels``: voxels of ``value`` outside the new
    mask are cleared; other labels are kept unless ``overwrite``.

    Parameters
    ----------
    labels : array_like
        Integer labels.
    new_mask : array_like
        The new extent of label ``value`` (same shape).
    value : int
        The label edited.
    overwrite : bool
        Let the new mask replace other labels.

    Returns
    -------
    numpy.ndarray
        Edited copy of ``labels`` (same dtype).

    Raises
    ------
    ValueError
        When ``value`` does not fit the labels' dtype.
    """
    labels = np.asarray(labels)
    new_mask = np.asarray(new_mask) != 0
    out = labels.copy()
    out[(labels == value) & ~new_mask] = 0
    target = new_mask if overwrite else new_mask & ((labels == 0) | (labels == value))
    if np.issubdtype(out.dtype, np.integer) and value > np.iinfo(out.dtype).max:
        raise ValueError(f"label {value} does not fit the labels dtype {out.dtype}")
    out[target] = value
    return out
