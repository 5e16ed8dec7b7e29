"""Fusion operations: resample one volume onto another's grid, and rigid/affine registration."""

from __future__ import annotations

from typing import Literal

from ..geometry import Volume
from ..processing import registration as _registration
from ..progress import ProgressCallback
from . import register

__all__ = ["register_volumes", "resample_onto"]


@register("register", inputs=("image", "image"), output="image")
def register_volumes(
    fixed: Volume,
    moving: Volume,
    *,
    transform: Literal["rigid", "affine", "none"] = "rigid",
    sampling_fraction: float = 0.1,
    iterations: int = 100,
    progress: ProgressCallback | None = None,
) -> Volume:
    """``moving`` registered to ``fixed`` and resampled onto the fixed grid.

    Parameters
    ----------
    fixed : Volume
        The reference volume (its grid is the result's grid).
    moving : Volume
        The volume to align.
    transform : {"rigid", "affine", "none"}
        Kind of registration; ``none`` resamples from the world geometry only.
    sampling_fraction : float
        Fraction of fixed voxels the Mattes metric samples.
    iterations : int
        Most optimizer iterations per resolution level.
    progress : callable, optional
        ``progress(done, total)``; raise from it to cancel.

    Returns
    -------
    Volume
        The resampled moving volume; ``metadata["registration"]`` holds ``matrix`` (fixed world → moving world,
        LPS mm), ``rotation_deg``, ``translation_mm`` and ``metric``.
    """
    result = _registration.register(
        fixed,
        moving,
        transform=transform,
        sampling_fraction=sampling_fraction,
        iterations=iterations,
        progress=progress,
    )
    out = _registration.resample(moving, fixed, transform=result.matrix)
    out.metadata["registration"] = result.as_dict()
    return out


@register("resample_onto", inputs=("image", "image"), output="image")
def resample_onto(
    moving: Volume,
    reference: Volume,
    *,
    interpolation: Literal["linear", "nearest", "bspline"] = "linear",
    progress: ProgressCallback | None = None,
) -> Volume:
    """``moving`` resampled onto ``reference``'s grid from their world geometry (same frame of reference).

    Parameters
    ----------
    moving : Volume
        The volume whose values are read.
    reference : Volume
        The grid of the result.
    interpolation : {"linear", "nearest", "bspline"}
        ``nearest`` for labels.
    progress : callable, optional
        Accepted for the registry's calling convention (resampling reports no steps).

    Returns
    -------
    Volume
        Moving's values on the reference grid.
    """
    return _registration.resample(moving, reference, interpolation=interpolation)
