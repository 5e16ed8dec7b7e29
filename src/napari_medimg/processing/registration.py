"""Resampling from world geometry and rigid/affine registration (SimpleITK).

Transforms are 4x4 matrices in LPS mm that map a point of the *fixed* (reference) image's world to the point of
the same anatomy in the *moving* image's world — ITK's fixed-to-moving convention, the one
``ResampleImageFilter`` uses.  ``resample(moving, fixed, transform=M)`` therefore reads the moving image at
``M @ p`` for every voxel centre ``p`` of the fixed grid.

Conversions to SimpleITK: our arrays are ``(z, y, x)`` with spacing ``(dz, dy, dx)`` and direction columns for
axes ``z, y, x``; a SimpleITK image built from the same array has spacing ``(dx, dy, dz)`` and direction
columns for ``x, y, z``.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..geometry import Volume, _frame
from ..progress import ProgressCallback, report

__all__ = [
    "to_sitk",
    "from_sitk",
    "frame_grid",
    "resample",
    "resample_to_frame",
    "rigid_matrix",
    "rotation_angle_deg",
    "register",
    "RegistrationResult",
]


def to_sitk(volume: Volume):
    """A SimpleITK image with the volume's voxels and LPS geometry.

    Parameters
    ----------
    volume : Volume
        A 3D volume (numpy or dask array; a dask array is computed).

    Returns
    -------
    SimpleITK.Image
    """
    import SimpleITK as sitk

    if volume.ndim != 3:
        raise ValueError(f"registration and resampling need a 3D volume, got {volume.ndim}D")
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    image.SetDirection(tuple(float(d) for d in volume.direction[:, ::-1].ravel()))
    return image


def from_sitk(image, metadata: dict | None = None) -> Volume:
    """The Volume of a 3D SimpleITK image (inverse of :func:`to_sitk`).

    Parameters
    ----------
    image : SimpleITK.Image
    metadata : dict, optional
        Metadata of the new volume.

    Returns
    -------
    Volume
    """
    import SimpleITK as sitk

    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)[:, ::-1]
    return Volume(
        sitk.GetArrayFromImage(image),
        np.asarray(image.GetSpacing(), float)[::-1],
        np.asarray(image.GetOrigin(), float),
        direction,
        dict(metadata or {}),
    )


def frame_grid(volume: Volume, frame=None, spacing_mm=None) -> Volume:
    """An empty grid aligned with the display ``frame`` that covers ``volume``'s voxels (as Slicer reslices).

    Parameters
    ----------
    volume : Volume
        The (oblique) volume to cover.
    frame : array_like, shape (3, 3), optional
        Display frame (columns: LPS unit vectors of the grid axes z, y, x); default S, P, L.
    spacing_mm : sequence of 3 float, optional
        Grid spacing; default: the volume's spacing along the closest frame axis (after ``canonical``).

    Returns
    -------
    Volume
        A volume with a zero-strided placeholder array (no memory) carrying the grid's shape and geometry.
    """
    frame = _frame(frame)
    near = volume.canonical(frame)
    spacing = np.asarray(spacing_mm if spacing_mm is not None else near.spacing, float)
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in volume.shape])), float)
    world = volume.index_to_world(corners) @ frame  # corner positions along the frame axes
    low, high = world.min(axis=0), world.max(axis=0)
    shape = tuple(int(n) for n in np.floor((high - low) / spacing + 1e-6).astype(int) + 1)
    placeholder = np.broadcast_to(np.zeros((), np.uint8), shape)
    return Volume(placeholder, spacing, frame @ low, frame.copy(), {})


def resample(
    moving: Volume,
    reference: Volume,
    *,
    transform=None,
    interpolation: Literal["linear", "nearest", "bspline"] = "linear",
    fill_value: float | None = None,
) -> Volume:
    """``moving`` resampled onto ``reference``'s grid from their world geometry.

    Parameters
    ----------
    moving : Volume
        The volume whose values are read.
    reference : Volume
        The grid (shape, spacing, origin, direction) of the result; its array is not read.
    transform : array_like, shape (4, 4), optional
        LPS mm matrix from the reference's world to the moving image's world (ITK fixed-to-moving);
        default identity (both volumes in one frame of reference).
    interpolation : {"linear", "nearest", "bspline"}
        Use ``nearest`` for labels and masks.
    fill_value : float, optional
        Value outside the moving image; default its minimum (e.g. -1024 HU for CT, 0 for labels).

    Returns
    -------
    Volume
        Moving values on the reference grid, with moving's dtype and metadata.

    Examples
    --------
    >>> same = resample(volume, volume)   # doctest: +SKIP  (identity: same grid, same values)
    """
    import SimpleITK as sitk

    source = to_sitk(moving)
    grid = to_sitk(reference.with_array(np.zeros(reference.shape, np.uint8)))
    matrix = np.eye(4) if transform is None else np.asarray(transform, float)
    if matrix.shape != (4, 4):
        raise ValueError("transform must be a 4x4 matrix")
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(tuple(matrix[:3, :3].ravel()))
    affine.SetTranslation(tuple(matrix[:3, 3]))
    methods = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}
    if interpolation not in methods:
        raise ValueError(f"interpolation must be one of {sorted(methods)}, got {interpolation!r}")
    if fill_value is None:
        array = np.asarray(moving.array)
        fill_value = float(array.min()) if array.size else 0.0
    dtype = np.asarray(moving.array[:1, :1, :1]).dtype
    integer = np.issubdtype(dtype, np.integer) or dtype.kind == "b"
    # integers are interpolated in float64 and rounded (ITK would truncate -1023.9999 to -1023)
    pixel = sitk.sitkFloat64 if integer and interpolation != "nearest" else source.GetPixelID()
    out = sitk.Resample(source, grid, affine, methods[interpolation], float(fill_value), pixel)
    result = from_sitk(out, moving.metadata)
    if pixel != source.GetPixelID():
        info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.uint8)
        values = np.clip(np.rint(result.array), info.min, info.max).astype(dtype)
        result = result.with_array(values)
    return result


def resample_to_frame(volume: Volume, frame=None, *, interpolation: Literal["linear", "nearest"] = "linear"):
    """``volume`` resampled onto a grid aligned with ``frame`` (see :func:`frame_grid`).

    Parameters
    ----------
    volume : Volume
        An oblique or tilted volume.
    frame : array_like, shape (3, 3), optional
        Display frame, default S, P, L (patient axes).
    interpolation : {"linear", "nearest"}
        ``nearest`` for labels.

    Returns
    -------
    Volume
        The resampled volume (its axes follow ``frame``; ``metadata["resampled_from"]`` keeps the source
        geometry).
    """
    grid = frame_grid(volume, frame)
    result = resample(volume, grid, interpolation=interpolation)
    result.metadata["resampled_from"] = {
        "spacing": volume.spacing.tolist(),
        "origin": volume.origin.tolist(),
        "direction": volume.direction.tolist(),
        "shape": list(volume.shape),
    }
    return result


def rigid_matrix(rotation_deg=(0.0, 0.0, 0.0), translation_mm=(0.0, 0.0, 0.0), center_mm=(0.0, 0.0, 0.0)):
    """4x4 LPS matrix of a rotation about ``center_mm`` (angles about x, y, z, applied x then y then z)
    followed by a translation.

    Parameters
    ----------
    rotation_deg : sequence of 3 float
        Rotation angles about the LPS x, y and z axes.
    translation_mm : sequence of 3 float
        Translation in LPS mm.
    center_mm : sequence of 3 float
        Centre of rotation (LPS mm).

    Returns
    -------
    numpy.ndarray
        The 4x4 matrix ``p -> R (p - c) + c + t``.
    """
    ax, ay, az = np.radians(np.asarray(rotation_deg, float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    center = np.asarray(center_mm, float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = center - rotation @ center + np.asarray(translation_mm, float)
    return matrix


def rotation_angle_deg(matrix) -> float:
    """Angle of the rotation closest to the linear part of ``matrix`` (3x3 or 4x4), in degrees.

    Parameters
    ----------
    matrix : array_like
        A rotation, rigid or affine matrix.

    Returns
    -------
    float
    """
    linear = np.asarray(matrix, float)[:3, :3]
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    cosine = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))


@dataclass
class RegistrationResult:
    """What :func:`register` found.

    Attributes
    ----------
    matrix : numpy.ndarray
        4x4 LPS mm, fixed world → moving world (ITK convention).
    transform : str
        ``rigid``, ``affine`` or ``none``.
    metric : float
        Final Mattes mutual information (negative: lower is better), NaN for ``none``.
    iterations : int
        Optimizer iterations at the last resolution level.
    stop : str
        The optimizer's stop condition.
    center_mm : numpy.ndarray
        Centre of the fixed image (LPS), where ``translation_mm`` is measured.
    """

    matrix: np.ndarray
    transform: str
    metric: float
    iterations: int = 0
    stop: str = ""
    center_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def rotation_deg(self) -> float:
        """Rotation angle of the matrix (degrees)."""
        return rotation_angle_deg(self.matrix)

    @property
    def translation_mm(self) -> np.ndarray:
        """Displacement of the fixed image's centre: ``matrix @ c - c`` (LPS mm)."""
        c = np.append(self.center_mm, 1.0)
        return (self.matrix @ c)[:3] - self.center_mm

    def as_dict(self) -> dict:
        """JSON-ready summary: ``matrix``, ``rotation_deg``, ``translation_mm``, ``metric`` and details."""
        return {
            "transform": self.transform,
            "matrix": np.round(self.matrix, 8).tolist(),
            "rotation_deg": round(self.rotation_deg, 6),
            "translation_mm": np.round(self.translation_mm, 6).tolist(),
            "metric": None if not np.isfinite(self.metric) else float(self.metric),
            "iterations": int(self.iterations),
            "stop": self.stop,
        }


#: upper end of the conjugate gradient's line search, in estimated learning-rate steps (ITK's default 5 lets a
#: trial step carry the masked anatomy out of the moving image at the coarse level)
LINE_SEARCH_UPPER = 2.0


def _foreground(image):
    """Mask of the fixed image's anatomy (Otsu threshold, closed and dilated by 2 voxels): the metric samples
    there, not in the air around the patient."""
    import SimpleITK as sitk

    mask = sitk.OtsuThreshold(image, 0, 1)
    mask = sitk.BinaryDilate(mask, [2, 2, 2])
    array = sitk.GetArrayViewFromImage(mask)
    return mask if 0.02 < float(array.mean()) < 0.98 else None


def _quiet_hook(*args) -> None:
    """An excepthook that prints nothing (see :func:`register`)."""


def _center(volume: Volume) -> np.ndarray:
    return volume.index_to_world((np.asarray(volume.shape, float) - 1) / 2)


def register(
    fixed: Volume,
    moving: Volume,
    *,
    transform: Literal["rigid", "affine", "none"] = "rigid",
    bins: int = 50,
    sampling_fraction: float = 0.1,
    shrink_factors: tuple[int, ...] = (4, 2, 1),
    smoothing_mm: tuple[float, ...] = (4.0, 2.0, 0.0),
    iterations: int = 100,
    initialization: Literal["geometry", "moments"] = "geometry",
    seed: int = 20261201,
    optimizer: Literal["gradient", "conjugate"] = "conjugate",
    foreground_mask: bool = True,
    progress: ProgressCallback | None = None,
) -> RegistrationResult:
    """Rigid or affine registration of ``moving`` to ``fixed`` (Mattes mutual information, multi-resolution).

    SimpleITK's ``ImageRegistrationMethod``: centred initialisation, Mattes MI on a random sample of voxels,
    regular-step gradient descent with scales from physical shifts, a coarse-to-fine pyramid, then for
    ``affine`` a second affine stage started from the rigid result.

    Parameters
    ----------
    fixed, moving : Volume
        3D volumes in LPS mm (any modality pair: mutual information).
    transform : {"rigid", "affine", "none"}
        ``none`` returns the identity (resample from world geometry only).
    bins : int
        Histogram bins of the Mattes metric.
    sampling_fraction : float
        Fraction of fixed voxels sampled at each level (0 < f ≤ 1).
    shrink_factors : tuple of int
        Pyramid shrink factors, coarse to fine.
    smoothing_mm : tuple of float
        Gaussian smoothing sigma at each level, in mm.
    iterations : int
        Most optimizer iterations per level.
    optimizer : {"gradient", "conjugate"}
        Gradient descent with a learning rate estimated at each iteration, or conjugate gradient with a line
        search (default: fewer iterations, the most accurate here).
    foreground_mask : bool
        Sample the metric only inside the fixed image's anatomy (Otsu threshold, dilated); ignored when the
        threshold finds no clear foreground.
    initialization : {"geometry", "moments"}
        Centre the moving image on the fixed one by their geometric centres or their intensity centroids.
    seed : int
        Seed of the metric's random sampling (results are reproducible).
    progress : callable, optional
        ``progress(done, total)`` per iteration; raise :class:`~napari_medimg.progress.Cancelled` from it to
        stop (the registration is aborted).

    Returns
    -------
    RegistrationResult

    Raises
    ------
    ValueError
        For a bad option; :class:`~napari_medimg.progress.Cancelled` when cancelled.
    """
    import SimpleITK as sitk

    if transform not in ("rigid", "affine", "none"):
        raise ValueError(f"transform must be rigid, affine or none, got {transform!r}")
    if not 0 < sampling_fraction <= 1:
        raise ValueError(f"sampling_fraction must be in (0, 1], got {sampling_fraction}")
    if len(shrink_factors) != len(smoothing_mm):
        raise ValueError("shrink_factors and smoothing_mm need one value per level")
    center = _center(fixed)
    if transform == "none":
        return RegistrationResult(np.eye(4), "none", float("nan"), center_mm=center)
    fixed_image = sitk.Cast(to_sitk(fixed), sitk.sitkFloat32)
    moving_image = sitk.Cast(to_sitk(moving), sitk.sitkFloat32)
    mask = _foreground(fixed_image) if foreground_mask else None
    stages = ["rigid"] if transform == "rigid" else ["rigid", "affine"]
    total = iterations * len(shrink_factors) * len(stages)
    done = [0]
    current = None
    method = None
    for stage in stages:
        if stage == "rigid":
            mode = (
                sitk.CenteredTransformInitializerFilter.GEOMETRY
                if initialization == "geometry"
                else sitk.CenteredTransformInitializerFilter.MOMENTS
            )
            initial = sitk.CenteredTransformInitializer(
                fixed_image, moving_image, sitk.Euler3DTransform(), mode
            )
        else:
            initial = sitk.AffineTransform(3)
            initial.SetCenter(current.GetCenter())
            initial.SetMatrix(current.GetMatrix())
            initial.SetTranslation(current.GetTranslation())
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(bins))
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(float(sampling_fraction), int(seed))
        if mask is not None:
            method.SetMetricFixedMask(mask)
        method.SetInterpolator(sitk.sitkLinear)
        if optimizer == "conjugate":
            method.SetOptimizerAsConjugateGradientLineSearch(
                learningRate=1.0,
                numberOfIterations=int(iterations),
                convergenceMinimumValue=1e-6,
                convergenceWindowSize=10,
                lineSearchUpperLimit=LINE_SEARCH_UPPER,
            )
        else:
            method.SetOptimizerAsGradientDescent(
                learningRate=1.0,
                numberOfIterations=int(iterations),
                convergenceMinimumValue=1e-6,
                convergenceWindowSize=10,
                estimateLearningRate=method.EachIteration,
            )
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetShrinkFactorsPerLevel(list(shrink_factors))
        method.SetSmoothingSigmasPerLevel(list(smoothing_mm))
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        method.SetInitialTransform(initial, inPlace=False)
        failure: list[BaseException] = []

        def on_iteration(failure=failure):
            done[0] += 1
            try:
                report(progress, min(done[0], total), total)
            except Exception as error:  # noqa: BLE001 (SimpleITK wraps it: keep it to re-raise it as it was)
                failure.append(error)
                # SimpleITK prints the callback's error through sys.excepthook (napari would show it as a crash)
                # before Execute raises: silence that one print; restored right after Execute
                sys.excepthook = _quiet_hook
                raise  # stops Execute at once

        def on_level(method=method, stage=stage):
            # the next level starts: count the iterations the previous level did not use
            level = method.GetCurrentLevel()
            done[0] = max(
                done[0], level * iterations + stages.index(stage) * iterations * len(shrink_factors)
            )

        method.AddCommand(sitk.sitkIterationEvent, on_iteration)
        method.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
        hook = sys.excepthook
        try:
            current = method.Execute(fixed_image, moving_image)
        except RuntimeError as error:
            if failure:
                raise failure[0] from None
            raise ValueError(f"registration failed: {error}") from None
        finally:
            sys.excepthook = hook
        if isinstance(current, sitk.CompositeTransform):
            current = current.GetNthTransform(0)
        current = sitk.AffineTransform(current) if stage == "affine" else sitk.Euler3DTransform(current)
    report(progress, total, total)
    linear = np.asarray(current.GetMatrix(), float).reshape(3, 3)
    c = np.asarray(current.GetCenter(), float)
    t = np.asarray(current.GetTranslation(), float)
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = c + t - linear @ c
    return RegistrationResult(
        matrix,
        transform,
        float(method.GetMetricValue()),
        int(method.GetOptimizerIteration()),
        method.GetOptimizerStopConditionDescription(),
        center,
    )
