"""Patches around the objects of a labels array — the one extraction used both to train and to predict.

Two ways to size a patch:

* a fixed physical size (``size_mm``, one number per patch axis) around the object's centroid, sampled on a
  regular grid of ``out_size`` pixels (linear interpolation, Gaussian pre-filter when the grid is coarser than
  the voxels), so a patch covers the same millimetres whatever the image's (anisotropic) spacing.  Models
  trained from napari layers store ``size_mm`` and predict with it;
* otherwise a square/cube around the object's bounding box with a margin of ``margin`` times the object's
  largest physical extent on each side (voxel crop, resized later to the model's input).

A 2D model on a volume gets one patch per object, in the slice (axis 0) of the object's largest
cross-section, centred on that cross-section's centroid; a 3D model gets a box centred on the 3D centroid.
Each :class:`ObjectPatch` records where its patch lies in the image (continuous voxel coordinates), so that
a per-pixel map over the patch (Grad-CAM) can be painted back (:func:`paint_back`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...progress import ProgressCallback, report

__all__ = ["ObjectPatch", "object_patches", "paint_back", "sample_box"]


@dataclass
class ObjectPatch:
    """A patch cut around one object.

    Attributes
    ----------
    label : int
        The object's label.
    patch : numpy.ndarray
        The resampled patch.
    row : dict
        Its table row (label, voxels, centroid).
    """

    label: int
    patch: np.ndarray  # raw image values, spatial axes (+ trailing channels)
    plane: int | None  # slice index for a 2D patch of a volume, else None
    lower: np.ndarray  # continuous voxel coordinate of the patch's lower edge, per patch axis
    extent: np.ndarray  # patch size in voxels (continuous), per patch axis
    row: dict  # label, voxels, centroid_z/y/x (voxel indices)


def _as_sizes(value, dims: int, what: str) -> np.ndarray:
    sizes = (
        np.broadcast_to(np.asarray(value, float), (dims,))
        if np.ndim(value) == 0
        else np.asarray(value, float)
    )
    if sizes.shape != (dims,) or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"{what} must be one positive number or {dims}, got {value!r}")
    return sizes


def sample_box(array: np.ndarray, centre, size_mm, spacing, out_size) -> np.ndarray:
    """Sample a box of ``size_mm`` centred on ``centre`` (voxel coordinates) onto ``out_size`` pixels.

    ``array`` has ``len(centre)`` spatial axes, optionally followed by a channel axis.  Pixel ``i`` of the
    result is the image at ``centre - size/2 + (i + 0.5) * size / out_size`` (in mm); points outside the
    image take the nearest edge value.

    Returns
    -------
    numpy.ndarray
        The box resampled to ``out_size``.
    """
    centre = np.asarray(centre, float)
    n = len(centre)
    size_mm, spacing = _as_sizes(size_mm, n, "patch size"), _as_sizes(spacing, n, "spacing")
    out_size = np.asarray(out_size, int)
    step = size_mm / out_size / spacing  # output pixel pitch in voxels
    coords = [
        centre[a] - size_mm[a] / spacing[a] / 2 + (np.arange(out_size[a]) + 0.5) * step[a] for a in range(n)
    ]
    sigma = np.maximum(0.0, (step - 1) / 2)  # anti-aliasing when the patch grid is coarser than the voxels
    shape = np.asarray(array.shape[:n])
    lo = np.clip([int(np.floor(c[0] - 4 * s - 1)) for c, s in zip(coords, sigma, strict=False)], 0, shape - 1)
    hi = np.clip(
        [int(np.ceil(c[-1] + 4 * s + 2)) for c, s in zip(coords, sigma, strict=False)], lo + 1, shape
    )
    region = array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))].astype(np.float32)
    grid = np.meshgrid(*[c - o for c, o in zip(coords, lo, strict=False)], indexing="ij")
    channels = [region] if region.ndim == n else [region[..., c] for c in range(region.shape[-1])]
    out = []
    for channel in channels:
        if sigma.any():
            channel = ndimage.gaussian_filter(channel, sigma, mode="nearest")
        out.append(ndimage.map_coordinates(channel, grid, order=1, mode="nearest"))
    return np.stack(out, axis=-1) if region.ndim > n else out[0]


def _crop(array, lo, hi):
    """Voxels ``lo:hi`` of ``array`` (may extend beyond it: edge values repeat)."""
    shape = np.asarray(array.shape[: len(lo)])
    inner_lo, inner_hi = np.maximum(lo, 0), np.minimum(hi, shape)
    region = array[tuple(slice(a, b) for a, b in zip(inner_lo, inner_hi, strict=False))]
    pad = [(int(a - b), int(c - d)) for a, b, c, d in zip(inner_lo, lo, hi, inner_hi, strict=False)]
    pad += [(0, 0)] * (array.ndim - len(lo))
    return np.pad(region, pad, mode="edge")


def object_patches(
    image: np.ndarray,
    labels: np.ndarray,
    spacing,
    dims: int,
    size_mm=None,
    out_size=None,
    margin: float = 0.25,
    only=None,
    progress: ProgressCallback | None = None,
) -> list[ObjectPatch]:
    """One patch per object of ``labels`` (ids in ``only`` if given) for a ``dims``-D model; see module doc.

    Returns
    -------
    list of ObjectPatch
        One patch per object, in label order.
    """
    labels = np.asarray(labels)
    ndim = labels.ndim
    spacing = _as_sizes(spacing, ndim, "spacing")
    if size_mm is not None:
        size_mm = _as_sizes(size_mm, dims, "patch size (mm)")
        if out_size is None:
            raise ValueError("a patch of fixed size in mm needs an output size in pixels")
        out_size = [int(s) for s in out_size]
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if only is not None:
        ids = ids[np.isin(ids, np.asarray(list(only)))]
    if len(ids) == 0:
        raise ValueError("the labels hold no objects")
    boxes = ndimage.find_objects(labels if labels.dtype.kind == "i" else labels.astype(np.int64))
    result = []
    for done, label in enumerate(ids, start=1):
        box = boxes[int(label) - 1]
        mask = labels[box] == label
        start = np.array([s.start for s in box])
        centroid = np.array(ndimage.center_of_mass(mask)) + start
        plane = None
        if dims == 2 and ndim == 3:
            areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
            plane = int(start[0] + areas.argmax())
            section = labels[plane] == label
            source, axes_spacing = image[plane], spacing[1:]
            inplane = ndimage.find_objects(section.astype(np.int8))[0]
            lo = np.array([s.start for s in inplane])
            hi = np.array([s.stop for s in inplane])
            centre = np.array(ndimage.center_of_mass(section))
        else:
            source, axes_spacing = image, spacing
            lo, hi = start, np.array([s.stop for s in box])
            centre = centroid
        if size_mm is not None:
            extent = size_mm / axes_spacing
            lower = centre - extent / 2
            patch = sample_box(source, centre, size_mm, axes_spacing, out_size)
        else:
            half = ((hi - lo) * axes_spacing).max() * (1 + 2 * margin) / 2 / axes_spacing
            middle = (lo + hi - 1) / 2
            box_lo = np.floor(middle - half).astype(int)
            box_hi = np.ceil(middle + half).astype(int) + 1
            patch = _crop(source, box_lo, box_hi)
            lower, extent = box_lo - 0.5, (box_hi - box_lo).astype(float)
        row = {
            "label": int(label),
            "voxels": int(mask.sum()),
            **{f"centroid_{a}": float(c) for a, c in zip("zyx"[-ndim:], centroid, strict=False)},
        }
        result.append(ObjectPatch(int(label), patch, plane, lower, extent, row))
        report(progress, done, len(ids))
    return result


def paint_back(target: np.ndarray, values: np.ndarray, item: ObjectPatch) -> None:
    """Paint a map over ``item``'s patch (any grid size) into ``target`` (max with what is there).

    Parameters
    ----------
    target : numpy.ndarray
        Map on the image grid, written in place.
    values : numpy.ndarray
        The patch-sized map.
    item : ObjectPatch
        Where the patch came from.
    """
    view = target[item.plane] if item.plane is not None else target
    shape = np.asarray(view.shape)
    first = np.clip(np.ceil(item.lower).astype(int), 0, shape)
    last = np.clip(np.floor(item.lower + item.extent).astype(int) + 1, first, shape)
    if np.any(last <= first):
        return
    pitch = item.extent / np.asarray(values.shape)
    grid = np.meshgrid(
        *[
            (np.arange(a, b) - lo) / p - 0.5
            for a, b, lo, p in zip(first, last, item.lower, pitch, strict=False)
        ],
        indexing="ij",
    )
    mapped = ndimage.map_coordinates(values.astype(np.float32), grid, order=1, mode="nearest")
    region = tuple(slice(a, b) for a, b in zip(first, last, strict=False))
    view[region] = np.maximum(view[region], mapped)
