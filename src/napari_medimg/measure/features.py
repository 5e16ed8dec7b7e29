"""Per-object feature tables in physical units: shape, first-order intensity and texture.

:func:`compute_features` turns a labels array, any number of named intensity images and the voxel spacing
into a :class:`pandas.DataFrame` with one row per label value, a ``label`` column and one column per feature,
named as pyradiomics names them without the image-type prefix (``shape_Sphericity``, ``firstorder_Mean``,
``glcm_Contrast``).  With several images, intensity and texture columns are prefixed by the image name
(``CT_firstorder_Mean``, ``PET_glcm_Contrast``); shape columns depend on the labels only and never are.
Our extra features follow the same ``group_Name`` pattern (``shape_CentroidX_mm``, ``shape_Solidity``).

Each object is cropped to its bounding box plus a one-voxel zero border; objects are measured in a thread
pool.  Long runs report ``progress(done, total)`` per object and stop when the callback raises
:class:`~napari_medimg.progress.Cancelled`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import ndimage

from ..geometry import Volume
from ..progress import ProgressCallback, report
from . import _kernels, texture
from .firstorder import FIRSTORDER_FEATURES, discretize, firstorder
from .shape import SHAPE2D_FEATURES, SHAPE_FEATURES, shape_2d, shape_3d

__all__ = ["GROUPS", "DEFAULT_BIN_WIDTH", "compute_features", "feature_columns", "parse_groups"]

#: feature groups in table order; "shape" means 3D shape, or pyradiomics' shape2D for 2D data
GROUPS = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
TEXTURE_GROUPS = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")
DEFAULT_BIN_WIDTH = 25.0
WORLD_FEATURES = (
    "CentroidX_mm",
    "CentroidY_mm",
    "CentroidZ_mm",
    "BBoxMinX_mm",
    "BBoxMinY_mm",
    "BBoxMinZ_mm",
    "BBoxMaxX_mm",
    "BBoxMaxY_mm",
    "BBoxMaxZ_mm",
)
_TEXTURE_FUNCTIONS = {
    "glcm": texture.glcm,
    "glrlm": texture.glrlm,
    "glszm": texture.glszm,
    "gldm": texture.gldm,
    "ngtdm": texture.ngtdm,
}


def parse_groups(groups: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validated feature groups in table order.

    Parameters
    ----------
    groups : str, iterable of str or None
        ``"shape,glcm"``, a list, or None for all (``shape2D`` is accepted for ``shape``).

    Returns
    -------
    tuple of str
        The groups, in :data:`GROUPS` order.

    Raises
    ------
    ValueError
        For an unknown group or an empty selection.
    """
    if groups is None:
        return GROUPS
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g.strip()]
    wanted = {("shape" if g.strip() == "shape2D" else g.strip()) for g in groups}
    unknown = sorted(wanted - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown feature group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    if not wanted:
        raise ValueError("no feature group selected")
    return tuple(g for g in GROUPS if g in wanted)


def feature_columns(groups=None, image_names: Iterable[str] = ("image",), two_d: bool = False) -> list[str]:
    """The columns :func:`compute_features` returns, ``label`` first.

    Parameters
    ----------
    groups : str, iterable of str or None
        Feature groups (see :func:`parse_groups`).
    image_names : iterable of str
        Image names; with several, intensity and texture columns are prefixed by the name.
    two_d : bool
        pyradiomics' shape2D columns instead of 3D shape.

    Returns
    -------
    list of str
        Column names.
    """
    groups = parse_groups(groups)
    names = list(image_names)
    prefix = len(names) > 1
    columns = ["label"]
    if "shape" in groups:
        shape_group, shape_names = ("shape2D", SHAPE2D_FEATURES) if two_d else ("shape", SHAPE_FEATURES)
        columns += [f"{shape_group}_{name}" for name in shape_names]
        columns += [f"shape_{name}" for name in WORLD_FEATURES]
    for image in names:
        start = f"{image}_" if prefix else ""
        for group in groups:
            if group == "firstorder":
                columns += [f"{start}firstorder_{name}" for name in FIRSTORDER_FEATURES]
            elif group in TEXTURE_GROUPS:
                columns += [f"{start}{group}_{name}" for name in texture.TEXTURE_FEATURES[group]]
    return columns


@lru_cache(maxsize=64)
def _columns(groups: tuple[str, ...], names: tuple[str, ...], two_d: bool) -> tuple[list[str], pd.Index]:
    """:func:`feature_columns` and the (immutable, shareable) index of all but ``label``: building a 100-name
    index costs more than measuring a small 2D ROI."""
    columns = feature_columns(groups, names, two_d=two_d)
    return columns, pd.Index(columns[1:])


def _as_array_and_geometry(labels, spacing, origin, direction):
    if isinstance(labels, Volume):
        spacing = labels.spacing if spacing is None else spacing
        origin = labels.origin if origin is None else origin
        direction = labels.direction if direction is None else direction
        labels = labels.array
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must be a 2D or 3D array, got {labels.ndim}D")
    if spacing is None:
        raise ValueError("the voxel spacing in mm is required (or pass a Volume)")
    spacing = np.asarray(spacing, float).reshape(-1)
    if spacing.shape != (labels.ndim,) or np.any(spacing <= 0):
        raise ValueError(f"spacing needs {labels.ndim} positive values, got {spacing.tolist()}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must hold integers, got {labels.dtype}")
    return labels, spacing, origin, direction


def _as_images(images, shape) -> dict[str, np.ndarray]:
    if images is None:
        return {}
    if not isinstance(images, Mapping):
        images = {"image": images}
    arrays = {}
    for name, image in images.items():
        array = np.asarray(image.array if isinstance(image, Volume) else image)
        if array.shape != shape:
            raise ValueError(f"image {name!r} has shape {array.shape}, labels have {shape}")
        arrays[str(name)] = array
    return arrays


def compute_features(
    labels,
    images=None,
    spacing=None,
    *,
    groups=None,
    bin_width: float = DEFAULT_BIN_WIDTH,
    origin=None,
    direction=None,
    force_2d: bool | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """One row per label value (> 0) of ``labels`` with the selected feature groups, in mm / mm² / mm³.

    The pyradiomics-compatible mode (columns and values as pyradiomics computes them); the IBSI 1 mode is
    :func:`napari_medimg.measure.ibsi.compute_ibsi_features`.

    Parameters
    ----------
    labels : numpy.ndarray or Volume
        Integer array (z, y, x) or (y, x), or a :class:`~napari_medimg.geometry.Volume` (its spacing, origin
        and direction are used).
    images : array, Volume, mapping or None
        None, one array/Volume, or a mapping name → array/Volume of the labels' shape.
    spacing : sequence of float or None
        (dz, dy, dx) mm.
    groups : str, iterable of str or None
        Subset of :data:`GROUPS` (all by default; intensity groups need an image).
    bin_width : float
        Fixed bin width in image units for entropy, uniformity and texture.
    origin, direction : array_like or None
        World geometry (LPS mm) of the centroid and bounding-box columns; index axes along +S, +P, +L from 0
        when not given.
    force_2d : bool or None
        In-plane texture (4 directions, pyradiomics' force2D) and 2D shape; by default on for 2D arrays and
        single-slice volumes.
    workers : int or None
        Objects measured in parallel threads (default up to 4).
    progress : callable or None
        ``progress(done, total)`` per object; raise :class:`~napari_medimg.progress.Cancelled` to stop.

    Returns
    -------
    pandas.DataFrame
        ``label`` then the columns of :func:`feature_columns`.

    Raises
    ------
    ValueError
        For bad shapes, spacing, negative labels, missing images or a discretisation with too many bins.
    """
    labels, spacing, origin, direction = _as_array_and_geometry(labels, spacing, origin, direction)
    groups = parse_groups(groups)
    arrays = _as_images(images, labels.shape)
    if not arrays and any(g != "shape" for g in groups):
        raise ValueError("first-order and texture groups need at least one intensity image")
    if labels.ndim == 2:
        labels = labels[None]
        arrays = {name: array[None] for name, array in arrays.items()}
        spacing = np.r_[1.0, spacing]
    if force_2d is None:
        force_2d = labels.shape[0] == 1
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError("labels must not be negative")
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(np.eye(3)[:, ::-1] if direction is None else direction, float) * spacing
    affine[:3, 3] = np.zeros(3) if origin is None else np.asarray(origin, float)
    columns, feature_index = _columns(groups, tuple(arrays.keys() or ("image",)), force_2d)
    if (
        labels.size and labels.dtype.itemsize > 2 and labels.max() > 2**24
    ):  # sparse huge label values: find_objects needs one slot per value
        present, compact = np.unique(labels, return_inverse=True)
        if present[0] != 0:  # keep 0 for the background
            present, compact = np.r_[0, present], compact + 1
        labels, names = compact.reshape(labels.shape).astype(np.int64), present
    else:
        names = None
    boxes = _object_boxes(labels)
    values = [v + 1 for v, box in enumerate(boxes) if box is not None]
    if not values:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "label" else float) for c in columns})

    if any(g != "shape" for g in groups):
        check_discretisation(labels, arrays, values, bin_width, boxes=[boxes[v - 1] for v in values])

    def measure(value: int) -> dict[str, float]:
        return _measure_object(
            labels, arrays, value, boxes[value - 1], spacing, affine, groups, bin_width, force_2d
        )

    rows = _run_parallel(measure, values, workers, progress)
    matrix = np.array([[row.get(c, np.nan) for c in columns[1:]] for row in rows], dtype=float)
    table = pd.DataFrame(matrix.reshape(len(rows), len(columns) - 1), columns=feature_index)
    table.insert(0, "label", np.asarray(values if names is None else names[values], np.int64))
    return table


#: the most grey-level bins one object may span (memory grows with it: 8 bytes per bin edge and more)
MAX_BINS = 100_000


def check_discretisation(labels: np.ndarray, arrays: Mapping, values, bin_width: float, boxes=None) -> None:
    """Refuse, before any feature is computed, a discretisation with more than :data:`MAX_BINS` bins.

    Parameters
    ----------
    labels : ndarray
        Integer labels.
    arrays : mapping
        Image name → array of the labels' shape.
    values : list of int
        The label values measured.
    bin_width : float
        Fixed bin width in image units.
    boxes : list of tuple of slice, optional
        Bounding box of each value (``ndimage.find_objects``): each object is then read over its box only,
        not over the whole volume.

    Raises
    ------
    ValueError
        For a bin width that is not a positive finite number, non-finite intensities inside an object, or an
        object whose intensity range needs more than :data:`MAX_BINS` bins (the message gives the numbers).
    """
    if not (isinstance(bin_width, (int, float, np.number)) and np.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin width must be a positive finite number, got {bin_width!r}")
    for name, array in arrays.items():
        if boxes is None:
            low = np.asarray(ndimage.minimum(array, labels, values), np.float64).reshape(-1)
            high = np.asarray(ndimage.maximum(array, labels, values), np.float64).reshape(-1)
        else:
            inside = [
                np.asarray(array[box])[labels[box] == value] for value, box in zip(values, boxes, strict=True)
            ]
            low = np.array([v.min() for v in inside], np.float64)
            high = np.array([v.max() for v in inside], np.float64)
        finite = np.isfinite(low) & np.isfinite(high)
        if not np.all(finite):
            label = values[int(np.flatnonzero(~finite)[0])]
            raise ValueError(f"image {name!r} has NaN or infinite values inside label {label}")
        bins = (high - low) / float(bin_width) + 1
        worst = int(np.argmax(bins))
        if bins[worst] > MAX_BINS:
            raise ValueError(
                f"object {values[worst]} of image {name!r} spans {low[worst]:g} to {high[worst]:g}: with bin width "
                f"{bin_width:g} that is {bins[worst]:.3g} grey-level bins, more than the {MAX_BINS:,} allowed; "
                f"use a bin width of at least {(high[worst] - low[worst]) / (MAX_BINS - 1):.3g}"
            )


def _object_boxes(labels: np.ndarray) -> list:
    """``ndimage.find_objects(labels)``, from one pass over the labelled voxels when they are few.

    A small ROI in a large image (a 925-voxel sphere in an 8.6-million-voxel MNI volume) then costs a
    ``flatnonzero`` scan instead of find_objects' per-voxel bookkeeping over the whole volume.
    """
    if not labels.size:
        return []
    if labels.size <= 1 << 21:  # a slice or a small volume: the C pass costs less than the scan
        return ndimage.find_objects(labels)
    flat = labels.reshape(-1)
    chunk = 1 << 22  # the boolean path of flatnonzero is several times faster; chunks bound its memory
    positions = np.concatenate(
        [np.flatnonzero(flat[start : start + chunk] != 0) + start for start in range(0, flat.size, chunk)]
    )
    if positions.size == 0:
        return []
    if positions.size > flat.size // 8:  # densely labelled: the C pass is as fast
        return ndimage.find_objects(labels)
    values = flat[positions]
    coords = np.unravel_index(positions, labels.shape)
    highest = int(values.max())
    boxes: list = [None] * highest
    if values.min() == highest:
        boxes[-1] = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
        return boxes
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    lows = [np.minimum.reduceat(c[order], starts) for c in coords]
    highs = [np.maximum.reduceat(c[order], starts) for c in coords]
    for k, value in enumerate(ordered[starts]):
        boxes[int(value) - 1] = tuple(
            slice(int(lo[k]), int(hi[k]) + 1) for lo, hi in zip(lows, highs, strict=True)
        )
    return boxes


def _run_parallel(function, values: list[int], workers: int | None, progress) -> list[dict]:
    total = len(values)
    report(progress, 0, total)
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or total == 1:
        rows = []
        for done, value in enumerate(values, 1):
            rows.append(function(value))
            report(progress, done, total)
        return rows
    results: dict[int, dict] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(function, value): position for position, value in enumerate(values)}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[pending.pop(future)] = future.result()
                report(progress, len(results), total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [results[position] for position in range(total)]


def _measure_object(
    labels, arrays, value, box, spacing, affine, groups, bin_width, two_d
) -> dict[str, float]:
    mask = _padded(labels[box] == value)
    inside = np.flatnonzero(mask)
    row: dict[str, float] = {}
    if "shape" in groups:
        if two_d:
            planes = np.flatnonzero(mask.any(axis=(1, 2)))
            if len(planes) == 1:
                row.update(_prefixed("shape2D_", shape_2d(mask[planes[0]], spacing[1:])))
        else:
            row.update(_prefixed("shape_", shape_3d(mask, spacing)))
        row.update(_world_position(np.unravel_index(inside, mask.shape), box, affine))
    intensity_groups = [g for g in groups if g != "shape"]
    if intensity_groups:
        prefix = len(arrays) > 1
        voxel_volume = float(np.prod(spacing))
        texture_groups = [g for g in intensity_groups if g in TEXTURE_GROUPS]
        for name, array in arrays.items():
            start = f"{name}_" if prefix else ""
            values = _padded(np.asarray(array[box])).reshape(-1)[inside].astype(np.float64)
            if not np.all(np.isfinite(values)):
                raise ValueError(f"image {name!r} has NaN or infinite values inside label {value}")
            bins = discretize(values, bin_width)
            if "firstorder" in groups:
                row.update(_prefixed(f"{start}firstorder_", firstorder(values, bins, voxel_volume)))
            if texture_groups:
                levels, ranks = _kernels.rank_levels(bins)
                index = np.zeros(mask.shape, np.int32)
                index.reshape(-1)[inside] = ranks
                gray = texture.GrayLevels(index, levels, two_d, positions=inside)
                for group in texture_groups:
                    row.update(_prefixed(f"{start}{group}_", _TEXTURE_FUNCTIONS[group](gray)))
    return row


def _padded(array: np.ndarray) -> np.ndarray:
    """``np.pad(array, 1)`` (zeros), without its per-call bookkeeping."""
    out = np.zeros(tuple(n + 2 for n in array.shape), array.dtype)
    out[(slice(1, -1),) * array.ndim] = array
    return out


@lru_cache(maxsize=256)
def _prefixed_names(prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(prefix + name for name in names)


def _prefixed(prefix: str, features: dict[str, float]):
    """``(prefix + name, value)`` pairs of a family's features (column names built once per family)."""
    return zip(_prefixed_names(prefix, tuple(features)), features.values(), strict=True)


def _world_position(
    coords: tuple[np.ndarray, ...], box: tuple[slice, ...], affine: np.ndarray
) -> dict[str, float]:
    """Centroid and bounding box (voxel boundaries included) of the object in LPS mm.

    ``coords`` are the object's indices in its zero-bordered crop of ``box`` (the object's own bounding box).
    """
    offset = np.array([s.start for s in box], float)
    centroid = affine[:3, :3] @ (np.array([c.mean() for c in coords]) - 1 + offset) + affine[:3, 3]
    low = offset - 0.5
    high = np.array([s.stop for s in box], float) - 0.5
    corners = np.array(list(itertools.product(*zip(low, high, strict=False))))
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    return {
        "shape_CentroidX_mm": centroid[0],
        "shape_CentroidY_mm": centroid[1],
        "shape_CentroidZ_mm": centroid[2],
        "shape_BBoxMinX_mm": lo[0],
        "shape_BBoxMinY_mm": lo[1],
        "shape_BBoxMinZ_mm": lo[2],
        "shape_BBoxMaxX_mm": hi[0],
        "shape_BBoxMaxY_mm": hi[1],
        "shape_BBoxMaxZ_mm": hi[2],
    }
