"""Preprocessing operations: window/level, normalisation, denoising, contrast, sharpening, top-hat,
resampling and vesselness, each a :class:`~napari_medimg.geometry.Volume` → Volume core function of
:mod:`napari_medimg.processing.preprocess` registered under its own name.
"""

from __future__ import annotations

from ..geometry import Volume
from ..processing import preprocess as _pp
from ..processing.preprocess import NormalizeMethod
from ..progress import ProgressCallback
from . import register

__all__ = ["normalize", "tophat"]

for _function in (
    _pp.window_level,
    _pp.denoise,
    _pp.clahe,
    _pp.gamma,
    _pp.brightness_contrast,
    _pp.unsharp_mask,
    _pp.resample,
    _pp.vesselness,
):
    register(_function.__name__, inputs=("image",), output="image")(_function)


@register("normalize", inputs=("image",), output="image")
def normalize(
    image: Volume,
    *,
    method: NormalizeMethod = "z_score",
    low_percentile: float = 1.0,
    high_percentile: float = 99.0,
) -> Volume:
    """Intensity normalisation: ``min_max`` → [0, 1], ``z_score`` → mean 0 / sd 1, ``percentile`` → [0, 1].

    Parameters
    ----------
    image : Volume
        The image.
    method : {"z_score", "min_max", "percentile"}
        The normalisation.
    low_percentile : float
        Lower percentile (0–100) of ``percentile``.
    high_percentile : float
        Upper percentile (0–100) of ``percentile``.

    Returns
    -------
    Volume
        float32 image.
    """
    return _pp.normalize(image, method=method, low_percentile=low_percentile, high_percentile=high_percentile)


@register("tophat", inputs=("image",), output="image")
def tophat(
    image: Volume,
    *,
    radius_mm: float = 4.0,
    bright: bool = True,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Morphological top-hat with a ball of ``radius_mm``: bright (white) or dark (black) small structures.

    Parameters
    ----------
    image : Volume
        The image.
    radius_mm : float
        Ball radius in mm.
    bright : bool
        White (True) or black (False) top-hat.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Volume
        float32 image.
    """
    return _pp.tophat(image, radius_mm=radius_mm, bright=bright, progress=progress)
