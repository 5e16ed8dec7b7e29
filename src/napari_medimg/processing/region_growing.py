"""Region growing from seed points given in world millimetres.

Seeds of a 3D volume are LPS millimetres ``(x, y, z)``, the world of :class:`~napari_medimg.geometry.Volume`;
seeds of a 2D image are ``(y, x)`` millimetres from the image's origin (napari's 2D world).  Three verbs:

* :func:`connected_threshold` — voxels connected to a seed whose value lies in a range (given, or mean ± k·sd
  of a ball around the seeds);
* :func:`confidence_connected` — the same range re-estimated from the grown region a few times (ITK's
  ConfidenceConnected);
* :func:`grow_from_seeds` — several seeded labels compete (watershed on the gradient magnitude, or random
  walker), like 3D Slicer's "Grow from seeds".
"""

from __future__ import annotations

import typing
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import segmentation

from ..geometry import Volume
from ..progress import ProgressCallback, report, sub_progress
from ._chunks import ellipsoid_footprint, mm_to_voxels, slabwise
from .morphology import compact_labels, keep_selected

__all__ = [
    "GROW_METHODS",
    "seed_indices",
    "seed_statistics",
    "connected_threshold",
    "confidence_connected",
    "markers_from_points",
    "grow_from_seeds",
]

GrowMethod = Literal["watershed", "random_walker"]
GROW_METHODS = typing.get_args(GrowMethod)


def seed_indices(volume: Volume, points) -> np.ndarray:
    """Integer array indices (N, ndim) of world seed points; a seed outside the volume is an error.

    Parameters
    ----------
    volume : Volume
        The image the seeds belong to.
    points : array_like
        LPS mm ``(x, y, z)`` per seed for 3D; ``(y, x)`` mm for 2D.

    Returns
    -------
    numpy.ndarray
        Integer indices, shape ``(N, ndim)``.

    Raises
    ------
    ValueError
        For no seeds, seeds of the wrong dimension or seeds outside the image.
    """
    points = np.atleast_2d(np.asarray(points, float))
    if points.size == 0:
        raise ValueError("at least one seed point is needed")
    if volume.ndim == 3:
        if points.shape[1] != 3:
            raise ValueError("seeds of a 3D volume are LPS (x, y, z) millimetres")
        index = volume.world_to_index(points)
    else:
        if points.shape[1] != 2:
            raise ValueError("seeds of a 2D image are (y, x) millimetres")
        index = (points - volume.origin[:2]) / volume.spacing
    index = np.rint(index).astype(int)
    outside = np.any((index < 0) | (index >= np.asarray(volume.shape)), axis=1)
    if outside.any():
        raise ValueError(f"seed point(s) {points[outside].round(2).tolist()} lie outside the image")
    return index


def _ball_values(volume: Volume, index: np.ndarray, radius_mm: float) -> np.ndarray:
    footprint = ellipsoid_footprint(radius_mm, volume.spacing)
    half = np.asarray(footprint.shape) // 2
    array = np.asarray(volume.array)
    values = []
    for centre in index:
        lo = centre - half
        box = tuple(
            slice(max(0, a), min(n, a + f)) for a, f, n in zip(lo, footprint.shape, array.shape, strict=False)
        )
        fbox = tuple(slice(b.start - a, b.stop - a) for b, a in zip(box, lo, strict=False))
        values.append(array[box][footprint[fbox]])
    return np.concatenate(values).astype(np.float64)


def seed_statistics(volume: Volume, points, *, radius_mm: float = 2.0) -> tuple[float, float]:
    """Mean and standard deviation of the image in balls of ``radius_mm`` around the seeds.

    Parameters
    ----------
    volume : Volume
        The image.
    points : array_like
        World seed points (see :func:`seed_indices`).
    radius_mm : float
        Ball radius in mm.

    Returns
    -------
    tuple of float
        ``(mean, sd)``.
    """
    values = _ball_values(volume, seed_indices(volume, points), radius_mm)
    return float(values.mean()), float(values.std())


def _grow(array, index: np.ndarray, low: float, high: float, connectivity: int) -> np.ndarray:
    return keep_selected((array >= low) & (array <= high), index, connectivity=connectivity)


def connected_threshold(
    volume: Volume,
    points,
    *,
    low: float | None = None,
    high: float | None = None,
    radius_mm: float = 2.0,
    multiplier: float = 2.5,
    connectivity: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """uint8 mask of the voxels in ``[low, high]`` connected to a seed (face connectivity by default).

    Without a range, it is mean ± ``multiplier`` · sd of the image in balls of ``radius_mm`` around the seeds.

    Parameters
    ----------
    volume : Volume
        The image.
    points : array_like
        World seed points (see :func:`seed_indices`).
    low, high : float, optional
        The range in image units; None: from the seed statistics.
    radius_mm : float
        Radius of the balls around the seeds whose statistics give a missing bound, in mm.
    multiplier : float
        Half-width of the range in standard deviations.
    connectivity : int
        1 (faces) … ndim.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.

    Raises
    ------
    ValueError
        For bad seeds or ``low`` above ``high``.
    """
    index = seed_indices(volume, points)
    if low is None or high is None:
        mean, sd = seed_statistics(volume, points, radius_mm=radius_mm)
        low = mean - multiplier * sd if low is None else low
        high = mean + multiplier * sd if high is None else high
    if low > high:
        raise ValueError(f"range low {low} is above high {high}")
    out = _grow(np.asarray(volume.array), index, low, high, connectivity)
    report(progress, 1, 1)
    return out


def confidence_connected(
    volume: Volume,
    points,
    *,
    multiplier: float = 2.5,
    iterations: int = 4,
    radius_mm: float = 2.0,
    connectivity: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Connected threshold whose range (mean ± ``multiplier`` · sd) is re-estimated ``iterations`` times
    from the region grown so far, starting from balls of ``radius_mm`` around the seeds.

    Parameters
    ----------
    volume : Volume
        The image.
    points : array_like
        World seed points (see :func:`seed_indices`).
    multiplier : float
        Half-width of the range in standard deviations.
    iterations : int
        Re-estimations of the range.
    radius_mm : float
        Radius of the initial balls around the seeds, in mm.
    connectivity : int
        1 (faces) … ndim.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        uint8 mask.
    """
    index = seed_indices(volume, points)
    array = np.asarray(volume.array)
    mean, sd = seed_statistics(volume, points, radius_mm=radius_mm)
    seed_values = array[tuple(index.T)].astype(np.float64)
    region = None
    for step in range(iterations + 1):
        # the seeds always belong to their region: the range is widened to their own values if needed
        low = min(mean - multiplier * sd, float(seed_values.min()))
        high = max(mean + multiplier * sd, float(seed_values.max()))
        region = _grow(array, index, low, high, connectivity)
        values = array[region != 0].astype(np.float64)
        report(progress, step + 1, iterations + 1)
        if values.size < 2:
            break
        new_mean, new_sd = float(values.mean()), float(values.std())
        if np.isclose(new_mean, mean) and np.isclose(new_sd, sd):
            break
        mean, sd = new_mean, new_sd
    report(progress, iterations + 1, iterations + 1)
    return region


def markers_from_points(volume: Volume, points, *, values, radius_mm: float = 0.0) -> np.ndarray:
    """A marker label image with ``values[n]`` painted at seed ``points[n]`` (a ball of ``radius_mm``).

    Parameters
    ----------
    volume : Volume
        The image whose grid the markers use.
    points : array_like
        World seed points (see :func:`seed_indices`).
    values : int or sequence of int
        Positive label per point (or one for all).
    radius_mm : float
        Ball painted around each point, in mm.

    Returns
    -------
    numpy.ndarray
        Compact marker labels.

    Raises
    ------
    ValueError
        For non-positive label values.
    """
    index = seed_indices(volume, points)
    values = np.broadcast_to(np.asarray(values, int), (index.shape[0],))
    if np.any(values <= 0):
        raise ValueError("seed label values must be positive")
    markers = np.zeros(volume.shape, compact_labels(np.asarray(values)).dtype)
    footprint = ellipsoid_footprint(radius_mm, volume.spacing)
    half = np.asarray(footprint.shape) // 2
    for centre, value in zip(index, values, strict=False):
        lo = centre - half
        box = tuple(
            slice(max(0, a), min(n, a + f))
            for a, f, n in zip(lo, footprint.shape, volume.shape, strict=False)
        )
        fbox = tuple(slice(b.start - a, b.stop - a) for b, a in zip(box, lo, strict=False))
        markers[box][footprint[fbox]] = value
    return markers


def _gradient_magnitude(volume: Volume, sigma_mm: float, progress) -> np.ndarray:
    """|∇I| in image units per mm: Gaussian smoothing of ``sigma_mm`` then central differences (which stay
    meaningful along a coarse axis where the sigma is a fraction of a voxel)."""
    spacing = volume.spacing
    sigma = mm_to_voxels(sigma_mm, spacing)

    def run(block):
        smooth = ndimage.gaussian_filter(block, sigma, mode="nearest") if sigma_mm > 0 else block
        total = np.zeros(smooth.shape, np.float32)
        for axis, step in enumerate(spacing):
            if smooth.shape[axis] > 1:  # a single slice has no gradient across it
                total += np.gradient(smooth, step, axis=axis) ** 2
        return np.sqrt(total)

    return slabwise(
        run, np.asarray(volume.array, np.float32), int(np.ceil(4 * sigma[0])) + 2, progress, dtype=np.float32
    )


#: the random walker solves one linear system over every voxel it works on: above this it takes minutes
RANDOM_WALKER_MAX_VOXELS = 3_000_000


def seed_box(markers, spacing, margin_mm: float) -> tuple[slice, ...]:
    """The box around every seeded voxel of ``markers``, widened by ``margin_mm`` on each side.

    Parameters
    ----------
    markers : numpy.ndarray
        Seed labels (0 = unlabelled).
    spacing : array_like
        Voxel spacing in mm, one value per axis.
    margin_mm : float
        Margin added on every side, in mm.

    Returns
    -------
    tuple of slice
        The box, clipped to the array.
    """
    seeded = np.argwhere(markers > 0)
    margin = np.ceil(margin_mm / np.asarray(spacing, float)).astype(int)
    low = np.maximum(seeded.min(axis=0) - margin, 0)
    high = np.minimum(seeded.max(axis=0) + margin + 1, markers.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def grow_from_seeds(
    volume: Volume,
    markers,
    *,
    method: GrowMethod = "watershed",
    sigma_mm: float = 1.0,
    mask=None,
    beta: float = 130.0,
    margin_mm: float | None = 20.0,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Grow every seeded label of ``markers`` (0 = unlabelled) until they meet, like Slicer's "Grow from
    seeds": ``watershed`` on the gradient magnitude (Gaussian derivatives of ``sigma_mm``) or
    ``random_walker`` (``beta`` edge weight, anisotropic spacing honoured).  Voxels outside ``mask`` stay 0.

    As in Slicer, the labels grow within the box around the seeds widened by ``margin_mm`` (None: the whole
    image); voxels outside the box stay 0.  The random walker refuses a box of more than
    :data:`RANDOM_WALKER_MAX_VOXELS` voxels (it would run for minutes in one uninterruptible solve): place
    the seeds closer together, lower the margin, or use the watershed.

    Without a mask, at least two labels must be seeded (one of them usually the background).

    Parameters
    ----------
    volume : Volume
        The image.
    markers : array_like
        Seed labels on the image's grid (0 = unlabelled).
    method : {"watershed", "random_walker"}
        How the labels grow.
    sigma_mm : float
        Gaussian smoothing before the gradient (watershed) or the walk, in mm.
    mask : array_like, optional
        Region the labels may grow into.
    beta : float
        Random-walker edge weight.
    margin_mm : float, optional
        Margin of the working box around the seeds, in mm; None works on the whole image.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    numpy.ndarray
        Compact labels.

    Raises
    ------
    ValueError
        For an unknown method, markers of another shape, too few seeded labels, or a random walker over
        more than :data:`RANDOM_WALKER_MAX_VOXELS` voxels.
    """
    if method not in GROW_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {GROW_METHODS}")
    markers = np.asarray(markers)
    if markers.shape != volume.shape:
        raise ValueError(f"markers shape {markers.shape} differs from the image's {volume.shape}")
    seeded = np.unique(markers[markers > 0])
    if seeded.size == 0:
        raise ValueError("no seeds: paint or place at least one seed")
    if seeded.size < 2 and mask is None:
        raise ValueError("grow from seeds needs seeds of at least two labels (e.g. object and background)")
    box = (
        tuple(slice(0, n) for n in markers.shape)
        if margin_mm is None
        else seed_box(markers, volume.spacing, margin_mm)
    )
    full_shape = markers.shape
    markers = markers[box]
    volume = Volume(
        np.asarray(volume.array[box]),
        volume.spacing,
        volume.index_to_world([b.start for b in box]),
        volume.direction,
    )
    region = None if mask is None else np.asarray(mask)[box] != 0
    if method == "random_walker" and markers.size > RANDOM_WALKER_MAX_VOXELS:
        raise ValueError(
            f"the random walker would work on {markers.size / 1e6:.1f} M voxels (limit "
            f"{RANDOM_WALKER_MAX_VOXELS / 1e6:.0f} M) and run for minutes without a way to stop it; place the "
            f"seeds closer together, lower the margin ({margin_mm} mm) or use the watershed"
        )
    if method == "watershed":
        gradient = _gradient_magnitude(volume, sigma_mm, sub_progress(progress, 0.0, 0.5))
        out = segmentation.watershed(gradient, markers.astype(np.int32), mask=region)
    else:
        array = np.asarray(volume.array, np.float32)
        if sigma_mm > 0:
            array = ndimage.gaussian_filter(array, mm_to_voxels(sigma_mm, volume.spacing))
        low, high = float(array.min()), float(array.max())
        data = (array - low) / ((high - low) or 1.0)
        seeds = markers.astype(np.int32)
        if region is not None:
            seeds[~region] = -1
        report(progress, 1, 2)
        out = segmentation.random_walker(
            data, seeds, beta=beta, mode="cg_j", tol=1e-3, spacing=volume.spacing / volume.spacing.min()
        )
        out[out < 0] = 0
    report(progress, 2, 2)
    grown = np.zeros(full_shape, np.asarray(out).dtype)
    grown[box] = out
    return compact_labels(grown)
