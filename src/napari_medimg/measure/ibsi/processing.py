"""The IBSI 1 image-processing chain: interpolation, intensity rounding, mask thresholding, re-segmentation and
discretisation, with the diagnostic tags of the IBSI reference tables.

Arrays are (z, y, x); IBSI's ``x``, ``y``, ``z`` tags are array axes 2, 1, 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = [
    "EmptyRoiError",
    "IBSISettings",
    "Roi",
    "interpolate",
    "resegment",
    "discretise",
    "prepare_roi",
    "processed_image",
]

Interpolation = Literal["linear", "cubic"]


class EmptyRoiError(ValueError):
    """A ROI with no voxel left (empty mask, or emptied by interpolation or re-segmentation)."""


@dataclass(frozen=True)
class IBSISettings:
    """Settings of the IBSI processing chain and feature computation.

    Parameters
    ----------
    by_slice : bool
        Compute by slice (IBSI "2D"): interpolation in-plane only, texture in 2D and 2.5D aggregation.
        Otherwise texture is computed in 2D, 2.5D and 3D aggregation.
    resample_mm : float or None
        New isotropic voxel spacing in mm (in-plane only when ``by_slice``); None keeps the grid.
    interpolation : {"linear", "cubic"}
        Image interpolation (the mask is always interpolated linearly and thresholded at 0.5).
    round_intensities : bool or None
        Round intensities to integers after interpolation (CT); None: when the input image holds integers.
    reseg_range : tuple of float or None
        Re-segmentation range (low, high) of the intensity mask; either end may be ``-inf``/``inf``.
    reseg_sigma : float or None
        Outlier re-segmentation: keep intensities within mean ± ``reseg_sigma`` standard deviations.
    bin_width : float or None
        Fixed bin size discretisation (anchored at the lower re-segmentation bound, else the ROI minimum).
    bin_count : int or None
        Fixed bin number discretisation.  Without ``bin_width`` and ``bin_count`` the intensities are the grey
        levels (they must be integers).
    ivh_bin_width, ivh_bin_count : float or int or None
        Discretisation of the intensity-volume histogram; none: the (integer) intensities themselves.
    """

    by_slice: bool = False
    resample_mm: float | None = None
    interpolation: Interpolation = "linear"
    round_intensities: bool | None = None
    reseg_range: tuple[float, float] | None = None
    reseg_sigma: float | None = None
    bin_width: float | None = None
    bin_count: int | None = None
    ivh_bin_width: float | None = None
    ivh_bin_count: int | None = None

    def __post_init__(self):
        if self.interpolation not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {self.interpolation!r}")
        if self.resample_mm is not None and not self.resample_mm > 0:
            raise ValueError(f"resample_mm must be positive, got {self.resample_mm}")
        if self.bin_width is not None and self.bin_count is not None:
            raise ValueError("choose a bin width or a bin count, not both")
        if self.ivh_bin_width is not None and self.ivh_bin_count is not None:
            raise ValueError("choose an IVH bin width or an IVH bin count, not both")
        for name in ("bin_width", "ivh_bin_width"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("bin_count", "ivh_bin_count"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.reseg_range is not None:
            low, high = self.reseg_range
            if not low <= high:
                raise ValueError(f"re-segmentation range {low}:{high} is empty")
        if self.reseg_sigma is not None and not self.reseg_sigma > 0:
            raise ValueError(f"reseg_sigma must be positive, got {self.reseg_sigma}")

    def as_dict(self) -> dict:
        """The settings as a JSON-ready mapping.

        Returns
        -------
        dict
            Field name → value (tuples as lists).
        """
        values = asdict(self)
        if values["reseg_range"] is not None:
            values["reseg_range"] = [float(v) for v in values["reseg_range"]]
        return values


@dataclass
class Roi:
    """One region of interest after the processing chain, cropped to its bounding box plus a margin.

    Attributes
    ----------
    image : numpy.ndarray
        Intensities (float64) of the processed image over the crop.
    morph : numpy.ndarray
        Morphological mask (bool) over the crop.
    intensity : numpy.ndarray
        Intensity mask (bool) over the crop: ``morph`` after re-segmentation.
    spacing : numpy.ndarray
        (dz, dy, dx) mm of the processed grid.
    diagnostics : dict
        IBSI diagnostic tags (``img_dim_x_init_img``, ``int_mask_vox_count_reseg_roi`` …).
    """

    image: np.ndarray
    morph: np.ndarray
    intensity: np.ndarray
    spacing: np.ndarray
    diagnostics: dict


def _grid(n_old: int, s_old: float, s_new: float) -> tuple[int, np.ndarray]:
    """Size and old-index positions of a new grid aligned with the old one by its centre."""
    n_new = max(1, math.ceil(round(n_old * s_old / s_new, 6)))
    step = s_new / s_old
    start = 0.5 * (n_old - 1) - 0.5 * (n_new - 1) * step
    return n_new, start + step * np.arange(n_new)


def interpolate(
    array: np.ndarray,
    spacing,
    *,
    new_spacing,
    order: int = 1,
) -> np.ndarray:
    """Resample ``array`` to ``new_spacing`` on a grid aligned by centre (IBSI), mode ``nearest`` at the edges.

    Parameters
    ----------
    array : numpy.ndarray
        (z, y, x) values.
    spacing : sequence of float
        (dz, dy, dx) mm of ``array``.
    new_spacing : sequence of float
        (dz, dy, dx) mm of the result; an axis whose spacing does not change is not interpolated.
    order : int
        Spline order: 1 linear, 3 cubic.

    Returns
    -------
    numpy.ndarray
        The resampled values (float64).
    """
    array = np.asarray(array, np.float64)
    axes = [_grid(n, s, t) for n, s, t in zip(array.shape, spacing, new_spacing, strict=True)]
    same = [np.isclose(s, t) for s, t in zip(spacing, new_spacing, strict=True)]
    if all(same):
        return array.copy()
    grid = np.meshgrid(*[positions for _, positions in axes], indexing="ij", sparse=True)
    coordinates = [np.broadcast_to(g, tuple(n for n, _ in axes)) for g in grid]
    result = ndimage.map_coordinates(array, coordinates, order=order, mode="nearest", prefilter=order > 1)
    return np.ascontiguousarray(result)


def resegment(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    value_range: tuple[float, float] | None = None,
    sigma: float | None = None,
) -> np.ndarray:
    """The intensity mask: ``mask`` voxels within ``value_range`` and, after that, within mean ± ``sigma`` SD.

    Parameters
    ----------
    image : numpy.ndarray
        Intensities.
    mask : numpy.ndarray
        Morphological mask (bool) of the image's shape.
    value_range : tuple of float or None
        Inclusive (low, high) range.
    sigma : float or None
        Outlier limit in standard deviations (population SD of the ROI after the range step).

    Returns
    -------
    numpy.ndarray
        The re-segmented mask (bool).
    """
    keep = np.asarray(mask, bool).copy()
    if value_range is not None:
        low, high = value_range
        keep &= (image >= low) & (image <= high)
    if sigma is not None and keep.any():
        values = image[keep]
        mean, sd = values.mean(), values.std()
        keep &= (image >= mean - sigma * sd) & (image <= mean + sigma * sd)
    return keep


def discretise(
    values: np.ndarray,
    *,
    bin_width: float | None = None,
    bin_count: int | None = None,
    low: float | None = None,
) -> tuple[np.ndarray, int]:
    """IBSI discretisation of ROI intensities into grey levels 1, 2, …

    Parameters
    ----------
    values : numpy.ndarray
        Intensities of the ROI voxels.
    bin_width : float or None
        Fixed bin size: ``floor((x - low) / w) + 1`` with ``low`` the lower re-segmentation bound or the
        ROI minimum.
    bin_count : int or None
        Fixed bin number: ``floor(N (x - min) / (max - min)) + 1``, the maximum in bin ``N``.
    low : float or None
        Anchor of fixed bin size (default: minimum of ``values``).

    Returns
    -------
    levels : numpy.ndarray
        Grey levels (int64).  Without a bin option, the intensities themselves (they must be integers).
    n_levels : int
        Number of grey levels ``N_g``: the bin count, or the highest level.

    Raises
    ------
    ValueError
        Without a bin option when the intensities are not integers.
    """
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return np.zeros(0, np.int64), 0
    if bin_width is not None:
        anchor = values.min() if low is None or not np.isfinite(low) else low
        levels = np.floor((values - anchor) / bin_width + 1e-9).astype(np.int64) + 1
        return levels, int(levels.max())
    if bin_count is not None:
        lo, hi = values.min(), values.max()
        if hi == lo:
            return np.ones(values.shape, np.int64), int(bin_count)
        levels = np.floor(bin_count * (values - lo) / (hi - lo)).astype(np.int64) + 1
        levels[values >= hi] = bin_count
        return levels, int(bin_count)
    rounded = np.rint(values)
    if not np.array_equal(rounded, values):
        raise ValueError("without a bin width or bin count the intensities must be integers")
    levels = rounded.astype(np.int64)
    return levels, int(levels.max())


def _box_dims(mask: np.ndarray) -> tuple[int, int, int]:
    """(x, y, z) size in voxels of the bounding box of ``mask`` (zeros when empty)."""
    if not mask.any():
        return 0, 0, 0
    size = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        size.append(int(present[-1] - present[0] + 1))
    return size[2], size[1], size[0]


def _roi_diagnostics(image, morph, intensity, stage: str) -> dict:
    row: dict = {}
    shape = morph.shape
    row.update({f"int_mask_dim_{a}_{stage}_roi": shape[i] for a, i in (("x", 2), ("y", 1), ("z", 0))})
    for prefix, mask in (("int_mask", intensity), ("morph_mask", morph)):
        row.update(
            {f"{prefix}_bb_dim_{a}_{stage}_roi": v for a, v in zip("xyz", _box_dims(mask), strict=True)}
        )
    row[f"int_mask_vox_count_{stage}_roi"] = int(intensity.sum())
    row[f"morph_mask_vox_count_{stage}_roi"] = int(morph.sum())
    values = image[intensity]
    row[f"int_mask_mean_int_{stage}_roi"] = float(values.mean()) if values.size else float("nan")
    row[f"int_mask_min_int_{stage}_roi"] = float(values.min()) if values.size else float("nan")
    row[f"int_mask_max_int_{stage}_roi"] = float(values.max()) if values.size else float("nan")
    return row


def _image_diagnostics(image, spacing, stage: str) -> dict:
    row = {f"img_dim_{a}_{stage}_img": image.shape[i] for a, i in (("x", 2), ("y", 1), ("z", 0))}
    row.update({f"vox_dim_{a}_{stage}_img": float(spacing[i]) for a, i in (("x", 2), ("y", 1), ("z", 0))})
    row[f"mean_int_{stage}_img"] = float(image.mean())
    row[f"min_int_{stage}_img"] = float(image.min())
    row[f"max_int_{stage}_img"] = float(image.max())
    return row


def processed_image(
    image: np.ndarray, spacing, settings: IBSISettings
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The image after interpolation and rounding, its spacing and the image diagnostic tags.

    Parameters
    ----------
    image : numpy.ndarray
        (z, y, x) intensities.
    spacing : sequence of float
        (dz, dy, dx) mm.
    settings : IBSISettings
        Chain settings.

    Returns
    -------
    image : numpy.ndarray
        Processed intensities (float64).
    spacing : numpy.ndarray
        The new spacing.
    diagnostics : dict
        ``*_init_img`` and ``*_interp_img`` tags.
    """
    image = np.asarray(image, np.float64)
    spacing = np.asarray(spacing, float)
    diagnostics = _image_diagnostics(image, spacing, "init")
    new_spacing = _new_spacing(spacing, settings)
    rounding = settings.round_intensities
    if rounding is None:
        rounding = bool(np.array_equal(np.rint(image), image))
    if not np.allclose(new_spacing, spacing):
        order = 1 if settings.interpolation == "linear" else 3
        image = interpolate(image, spacing, new_spacing=new_spacing, order=order)
        if rounding:
            image = np.rint(image)
    diagnostics.update(_image_diagnostics(image, new_spacing, "interp"))
    return image, new_spacing, diagnostics


def _new_spacing(spacing: np.ndarray, settings: IBSISettings) -> np.ndarray:
    if settings.resample_mm is None:
        return spacing.copy()
    new = np.full(3, float(settings.resample_mm))
    if settings.by_slice:
        new[0] = spacing[0]
    return new


def prepare_roi(
    image: np.ndarray,
    mask: np.ndarray,
    spacing,
    settings: IBSISettings,
    *,
    processed: tuple[np.ndarray, np.ndarray, dict] | None = None,
    margin_mm: float = 7.0,
) -> Roi:
    """Run the IBSI chain on one ROI: interpolate image and mask, threshold the mask at 0.5, re-segment.

    Parameters
    ----------
    image : numpy.ndarray
        (z, y, x) intensities on the mask's grid.
    mask : numpy.ndarray
        ROI mask (bool or 0/1) of the image's shape.
    spacing : sequence of float
        (dz, dy, dx) mm.
    settings : IBSISettings
        Chain settings.
    processed : tuple or None
        The result of :func:`processed_image` for this image (reuse it for several ROIs).
    margin_mm : float
        Image margin kept around the ROI (the local-intensity sphere needs 6.2 mm).

    Returns
    -------
    Roi
        Cropped image and masks with the diagnostic tags.

    Raises
    ------
    ValueError
        When the mask is empty before or after processing.
    """
    mask = np.asarray(mask) > 0
    image0 = np.asarray(image, np.float64)
    spacing = np.asarray(spacing, float)
    if not mask.any():
        raise EmptyRoiError("the ROI mask is empty")
    if processed is None:
        processed = processed_image(image0, spacing, settings)
    image1, new_spacing, diagnostics = processed
    diagnostics = dict(diagnostics)
    diagnostics.update(_roi_diagnostics(image0, mask, mask, "init"))
    if not np.allclose(new_spacing, spacing):
        mask1 = interpolate(mask.astype(np.float64), spacing, new_spacing=new_spacing, order=1) >= 0.5
    else:
        mask1 = mask
    diagnostics.update(_roi_diagnostics(image1, mask1, mask1, "interp"))
    if not mask1.any():
        raise EmptyRoiError("the ROI mask is empty after interpolation")
    intensity = resegment(image1, mask1, value_range=settings.reseg_range, sigma=settings.reseg_sigma)
    diagnostics.update(_roi_diagnostics(image1, mask1, intensity, "reseg"))
    if not intensity.any():
        raise EmptyRoiError("no ROI voxel is left after re-segmentation")
    box = ndimage.find_objects(mask1.astype(np.uint8))[0]
    pad = np.ceil(margin_mm / new_spacing).astype(int)
    crop = tuple(
        slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(box, pad, mask1.shape, strict=True)
    )
    return Roi(
        image=np.ascontiguousarray(image1[crop]),
        morph=np.ascontiguousarray(mask1[crop]),
        intensity=np.ascontiguousarray(intensity[crop]),
        spacing=new_spacing,
        diagnostics=diagnostics,
    )
