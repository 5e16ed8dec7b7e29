"""Segmentation operations: thresholds, islands, morphology, margins, logical operators, region growing.

Every operation takes and returns :class:`~napari_medimg.geometry.Volume` values so the geometry travels with
the mask; parameters are keyword-only with the core function's names and units.

The mask operations also edit one label of a label image: with ``label=N`` they act on the voxels of label
``N`` and write the result back as label ``N`` (other labels are kept unless ``overwrite``), which is what
the Segment tools' label editor records.  Without ``label`` any non-zero voxel is foreground and the result
is a uint8 mask.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from skimage.filters import apply_hysteresis_threshold

from ..geometry import Volume
from ..processing import interpolate as _interpolate
from ..processing import morphology as _morphology
from ..processing import region_growing as _growing
from ..processing import threshold as _threshold
from ..processing.morphology import MorphologyOperation, SmoothingMethod
from ..processing.region_growing import GrowMethod
from ..processing.threshold import LocalMethod
from ..progress import ProgressCallback
from . import register

__all__ = [
    "threshold",
    "islands",
    "multi_otsu",
    "local_threshold",
    "hysteresis_threshold",
    "morphology",
    "fill_holes",
    "margin",
    "smooth",
    "split_islands",
    "connected_components",
    "watershed_split",
    "keep_selected",
    "logical",
    "invert",
    "region_growing",
    "grow_from_seeds",
    "fill_between_slices",
]


def _mask(volume: Volume, array, **metadata) -> Volume:
    return volume.with_array(np.asarray(array), **metadata)


def _select(volume: Volume, label: int | None) -> np.ndarray:
    """The foreground the operation acts on: non-zero voxels, or the voxels of ``label``."""
    array = np.asarray(volume.array)
    return array != 0 if label is None else array == label


def _write(volume: Volume, new, label: int | None, overwrite: bool) -> Volume:
    """The new mask as a mask Volume, or written back into the labels as ``label``."""
    if label is None:
        return _mask(volume, np.asarray(new, np.uint8))
    edited = _morphology.edit_label(np.asarray(volume.array), new, value=label, overwrite=overwrite)
    return _mask(volume, edited)


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
        auto_low, auto_high = _threshold.threshold_range(array, method=method)
        low = auto_low if low is None else low
        high = auto_high if high is None else high
    if low is None:
        low = float(np.min(array))
    if high is None:
        high = float(np.max(array))
    mask = _threshold.threshold_mask(array, low=low, high=high, progress=progress)
    return _mask(image, mask, threshold={"method": method, "low": float(low), "high": float(high)})


@register("islands", inputs=("mask",), output="mask")
def islands(
    mask: Volume,
    *,
    operation: Literal["keep_largest", "remove_small"] = "keep_largest",
    min_size_mm3: float = 0.0,
    connectivity: int | None = None,
    label: int | None = None,
    overwrite: bool = False,
) -> Volume:
    """Keep the largest connected object, or remove the objects smaller than ``min_size_mm3``.

    Parameters
    ----------
    mask : Volume
        Mask (non-zero is foreground) or label image (with ``label``).
    operation : {"keep_largest", "remove_small"}
        What to do with the connected objects.
    min_size_mm3 : float
        Smallest object volume kept by ``remove_small``, in mm³ (mm² for 2D).
    connectivity : int, optional
        1 (faces) … ndim (faces, edges and corners, the default).
    label : int, optional
        Edit this label of a label image instead of a mask.
    overwrite : bool
        With ``label``: let the result replace other labels.

    Returns
    -------
    Volume
        uint8 mask on the same grid (the edited labels with ``label``).
    """
    selected = _select(mask, label)
    if operation == "keep_largest":
        out = _morphology.keep_largest(selected, connectivity=connectivity)
    else:
        out = _morphology.remove_small(
            selected, min_size_mm3=min_size_mm3, spacing=mask.spacing, connectivity=connectivity
        )
    return _write(mask, out, label, overwrite)


@register("multi_otsu", inputs=("image",), output="labels")
def multi_otsu(
    image: Volume,
    *,
    classes: int = 3,
    thresholds: list[float] | None = None,
    ignore_zeros: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Multi-Otsu classes: labels 0 (darkest) … ``classes - 1`` (brightest).

    With ``ignore_zeros`` the thresholds come from the non-zero voxels only (a skull-stripped MR, a scan with
    a zero background), the non-zero voxels get classes 1 … ``classes`` and the zeros stay 0.

    Parameters
    ----------
    image : Volume
        The image.
    classes : int
        Number of classes, 2 … 8.
    thresholds : list of float, optional
        The ``classes - 1`` thresholds; None computes them (on a strided sample of a large image).
    ignore_zeros : bool
        Leave zero voxels out of the statistics and label them 0.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        uint8 labels.

    Raises
    ------
    ValueError
        For a class count outside 2 … 8, a wrong number of thresholds or a constant image.
    """
    if thresholds is not None and len(thresholds) != classes - 1:
        raise ValueError(f"{classes} classes need {classes - 1} thresholds, got {len(thresholds)}")
    mask = np.asarray(image.array) != 0 if ignore_zeros else None
    labels = _threshold.multi_otsu_labels(
        image.array, classes=classes, mask=mask, thresholds=thresholds, progress=progress
    )
    return _mask(image, labels)


@register("local_threshold", inputs=("image",), output="mask")
def local_threshold(
    image: Volume,
    *,
    method: LocalMethod = "gaussian",
    block_mm: float = 15.0,
    offset: float = 0.0,
    k: float = 0.2,
    bright: bool = True,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Local (adaptive) threshold over a neighbourhood of ``block_mm`` per side.

    Parameters
    ----------
    image : Volume
        2D or 3D image.
    method : {"gaussian", "mean", "median", "sauvola", "niblack"}
        The local statistic.
    block_mm : float
        Side of the neighbourhood in mm.
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
    Volume
        uint8 mask.
    """
    mask = _threshold.local_threshold(
        image.array,
        spacing=image.spacing,
        block_mm=block_mm,
        method=method,
        offset=offset,
        k=k,
        bright=bright,
        progress=progress,
    )
    return _mask(image, mask)


@register("hysteresis_threshold", inputs=("image",), output="mask")
def hysteresis_threshold(image: Volume, *, low: float, high: float) -> Volume:
    """Voxels above ``low`` connected to a voxel above ``high`` (scikit-image's hysteresis threshold).

    Parameters
    ----------
    image : Volume
        The image.
    low, high : float
        The two thresholds in image units (strictly above).

    Returns
    -------
    Volume
        uint8 mask.

    Raises
    ------
    ValueError
        When ``low`` is above ``high``.
    """
    if low > high:
        raise ValueError(f"hysteresis low {low} is above high {high}")
    return _mask(image, apply_hysteresis_threshold(np.asarray(image.array), low, high).view(np.uint8))


@register("morphology", inputs=("mask",), output="mask")
def morphology(
    mask: Volume,
    *,
    operation: MorphologyOperation = "close",
    radius_mm: float = 1.0,
    label: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Erode, dilate, open or close with a ball of ``radius_mm`` (round in mm).

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    operation : {"erode", "dilate", "open", "close"}
        The operation.
    radius_mm : float
        Ball radius in mm.
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).
    """
    out = _morphology.binary_morphology(
        _select(mask, label),
        operation=operation,
        radius_mm=radius_mm,
        spacing=mask.spacing,
        progress=progress,
    )
    return _write(mask, out, label, overwrite)


@register("fill_holes", inputs=("mask",), output="mask")
def fill_holes(
    mask: Volume,
    *,
    per_slice: bool = False,
    axis: int = 0,
    label: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Fill enclosed background, in 3D at once or slice by slice along ``axis``.

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    per_slice : bool
        Fill each slice on its own.
    axis : int
        Slice axis of ``per_slice``.
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).
    """
    out = _morphology.fill_holes(_select(mask, label), per_slice=per_slice, axis=axis, progress=progress)
    return _write(mask, out, label, overwrite)


@register("margin", inputs=("mask",), output="mask")
def margin(
    mask: Volume, *, margin_mm: float = 2.0, label: int | None = None, overwrite: bool = False
) -> Volume:
    """Grow (``margin_mm`` > 0) or shrink (< 0) by an exact Euclidean distance in mm.

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    margin_mm : float
        Margin in mm; negative shrinks.
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).
    """
    out = _morphology.margin(_select(mask, label), margin_mm=margin_mm, spacing=mask.spacing)
    return _write(mask, out, label, overwrite)


@register("smooth", inputs=("mask",), output="mask")
def smooth(
    mask: Volume,
    *,
    method: SmoothingMethod = "median",
    radius_mm: float = 1.0,
    label: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Smooth a mask's surface (median vote, opening, closing or Gaussian blur cut at 0.5).

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    method : {"median", "open", "close", "gaussian"}
        The smoothing.
    radius_mm : float
        Ball radius (Gaussian: sigma) in mm.
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).
    """
    out = _morphology.smooth(
        _select(mask, label), method=method, radius_mm=radius_mm, spacing=mask.spacing, progress=progress
    )
    return _write(mask, out, label, overwrite)


@register("split_islands", inputs=("mask",), output="labels")
def split_islands(
    mask: Volume, *, min_size_mm3: float = 0.0, connectivity: int | None = None, label: int | None = None
) -> Volume:
    """Each connected object as its own label (1 the largest); objects below ``min_size_mm3`` drop.

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    min_size_mm3 : float
        Smallest object kept, mm³ (mm² for 2D).
    connectivity : int, optional
        1 … ndim (default ndim).
    label : int, optional
        Split this label of a label image.

    Returns
    -------
    Volume
        New compact labels.
    """
    labels = _morphology.split_islands(
        _select(mask, label), min_size_mm3=min_size_mm3, spacing=mask.spacing, connectivity=connectivity
    )
    return _mask(mask, labels)


@register("connected_components", inputs=("mask",), output="labels")
def connected_components(
    mask: Volume, *, connectivity: int | None = None, label: int | None = None
) -> Volume:
    """Label the connected objects 1 … N.

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    connectivity : int, optional
        1 … ndim (default ndim).
    label : int, optional
        Label the objects of this label of a label image.

    Returns
    -------
    Volume
        New compact labels.
    """
    return _mask(mask, _morphology.connected_components(_select(mask, label), connectivity=connectivity))


@register("watershed_split", inputs=("mask",), output="labels")
def watershed_split(
    mask: Volume, *, h_mm: float = 1.0, connectivity: int | None = None, label: int | None = None
) -> Volume:
    """Split touching objects by a watershed of the distance map (mm) seeded at its h-maxima.

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    h_mm : float
        How much deeper than the neck two centres must be to count as separate objects, in mm.
    connectivity : int, optional
        1 … ndim (default ndim).
    label : int, optional
        Split this label of a label image.

    Returns
    -------
    Volume
        New compact labels.
    """
    labels = _morphology.watershed_split(
        _select(mask, label), h_mm=h_mm, spacing=mask.spacing, connectivity=connectivity
    )
    return _mask(mask, labels)


@register("keep_selected", inputs=("mask",), output="mask")
def keep_selected(
    mask: Volume,
    *,
    seeds: list[list[float]],
    connectivity: int | None = None,
    label: int | None = None,
    overwrite: bool = False,
) -> Volume:
    """Keep the connected objects that contain a seed point (Slicer's "keep selected island").

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    seeds : list of list of float
        Seed points: LPS mm ``(x, y, z)`` for 3D, ``(y, x)`` mm for 2D.
    connectivity : int, optional
        1 … ndim (default ndim).
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).

    Raises
    ------
    ValueError
        For seeds outside the image.
    """
    index = _growing.seed_indices(mask, seeds)
    out = _morphology.keep_selected(_select(mask, label), index, connectivity=connectivity)
    return _write(mask, out, label, overwrite)


@register("logical", inputs=("mask", "mask"), output="mask")
def logical(
    a: Volume,
    b: Volume,
    *,
    operation: Literal["union", "intersect", "subtract", "xor", "copy"] = "union",
    label: int | None = None,
    other_label: int | None = None,
    overwrite: bool = False,
) -> Volume:
    """Combine two masks: union, intersection, ``a`` minus ``b``, exclusive or, or a copy of ``b``.

    Parameters
    ----------
    a : Volume
        First mask, or label image with ``label`` (the result is written into it).
    b : Volume
        Second mask on the same grid, or label image with ``other_label``.
    operation : {"union", "intersect", "subtract", "xor", "copy"}
        The operator.
    label : int, optional
        Edit this label of ``a``.
    other_label : int, optional
        Take this label of ``b`` as the second mask.
    overwrite : bool
        With ``label``: let the result replace other labels.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).

    Raises
    ------
    ValueError
        For masks of different shapes.
    """
    out = _morphology.logical(_select(a, label), _select(b, other_label), operation=operation)
    return _write(a, out, label, overwrite)


@register("invert", inputs=("mask",), output="mask")
def invert(mask: Volume, *, label: int | None = None, overwrite: bool = False) -> Volume:
    """Invert a mask (or one label of a label image).

    Parameters
    ----------
    mask : Volume
        Mask, or label image with ``label``.
    label : int, optional
        Edit this label of a label image.
    overwrite : bool
        With ``label``: let the result replace other labels.

    Returns
    -------
    Volume
        uint8 mask (the edited labels with ``label``).
    """
    return _write(mask, _morphology.logical(_select(mask, label), operation="invert"), label, overwrite)


@register("region_growing", inputs=("image",), output="labels")
def region_growing(
    image: Volume,
    *,
    seeds: list[list[float]],
    method: Literal["connected_threshold", "confidence_connected"] = "connected_threshold",
    low: float | None = None,
    high: float | None = None,
    radius_mm: float = 2.0,
    multiplier: float = 2.5,
    iterations: int = 4,
    connectivity: int = 1,
    label: int = 1,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Grow a region from seed points: connected threshold or confidence connected (ITK's).

    Parameters
    ----------
    image : Volume
        The image.
    seeds : list of list of float
        Seed points: LPS mm ``(x, y, z)`` for 3D, ``(y, x)`` mm for 2D.
    method : {"connected_threshold", "confidence_connected"}
        A fixed range (given, or mean ± ``multiplier`` · sd around the seeds), or a range re-estimated
        ``iterations`` times from the grown region.
    low, high : float, optional
        ``connected_threshold``'s range in image units (None: from the seed statistics).
    radius_mm : float
        Radius of the balls around the seeds whose statistics start the range, in mm.
    multiplier : float
        Half-width of the range in standard deviations.
    iterations : int
        ``confidence_connected``'s re-estimations.
    connectivity : int
        1 (faces, the default) … ndim.
    label : int
        Label value of the grown region.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        Compact labels (the region as ``label``).

    Raises
    ------
    ValueError
        For seeds outside the image or an empty range.
    """
    if method == "connected_threshold":
        mask = _growing.connected_threshold(
            image,
            seeds,
            low=low,
            high=high,
            radius_mm=radius_mm,
            multiplier=multiplier,
            connectivity=connectivity,
            progress=progress,
        )
    else:
        mask = _growing.confidence_connected(
            image,
            seeds,
            multiplier=multiplier,
            iterations=iterations,
            radius_mm=radius_mm,
            connectivity=connectivity,
            progress=progress,
        )
    return _mask(image, _morphology.compact_labels(mask.astype(np.int64) * label))


@register("grow_from_seeds", inputs=("image", "labels"), output="labels")
def grow_from_seeds(
    image: Volume,
    seeds: Volume,
    *,
    method: GrowMethod = "watershed",
    sigma_mm: float = 1.0,
    beta: float = 130.0,
    margin_mm: float | None = 20.0,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Grow every seeded label until they meet (3D Slicer's "Grow from seeds"), within the box around the
    seeds widened by ``margin_mm``.

    Parameters
    ----------
    image : Volume
        The image.
    seeds : Volume
        Painted seed labels on the image's grid (0 = unlabelled; at least two labels).
    method : {"watershed", "random_walker"}
        Watershed on the gradient magnitude, or random walker.
    sigma_mm : float
        Gaussian smoothing in mm.
    beta : float
        Random-walker edge weight.
    margin_mm : float, optional
        Margin of the working box around the seeds in mm; None: the whole image.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        Compact labels.
    """
    labels = _growing.grow_from_seeds(
        image,
        np.asarray(seeds.array),
        method=method,
        sigma_mm=sigma_mm,
        beta=beta,
        margin_mm=margin_mm,
        progress=progress,
    )
    return _mask(image, labels)


@register("fill_between_slices", inputs=("labels",), output="labels")
def fill_between_slices(
    labels: Volume,
    *,
    axis: int = 0,
    values: list[int] | None = None,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Interpolate painted label slices through the gaps along ``axis`` (shape-based, distances in mm).

    Parameters
    ----------
    labels : Volume
        Label image painted on a few slices.
    axis : int
        The axis painted along.
    values : list of int, optional
        Labels to interpolate (default all).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        The labels with the gaps filled (painted slices and other labels unchanged).
    """
    out = _interpolate.fill_between_slices(
        labels.array, axis=axis, values=values, spacing=labels.spacing, progress=progress
    )
    return _mask(labels, out)
