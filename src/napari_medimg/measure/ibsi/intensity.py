"""IBSI 1 local intensity, intensity statistics, intensity histogram and intensity-volume histogram features."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

__all__ = ["local_intensity", "statistics", "histogram", "volume_histogram"]

#: radius (mm) of the 1 cm³ sphere of the local intensity peaks
PEAK_RADIUS_MM = (3.0 / (4.0 * np.pi) * 1000.0) ** (1.0 / 3.0)


def local_intensity(image: np.ndarray, intensity: np.ndarray, spacing) -> dict[str, float]:
    """Local and global intensity peak: the highest mean intensity in a 1 cm³ sphere.

    Parameters
    ----------
    image : numpy.ndarray
        (z, y, x) intensities (the whole image, or a crop with at least 6.2 mm around the ROI).
    intensity : numpy.ndarray
        Intensity mask (bool) of the image's shape.
    spacing : sequence of float
        (dz, dy, dx) mm.

    Returns
    -------
    dict
        ``loc_peak_loc`` (sphere mean around the ROI's brightest voxel(s)) and ``loc_peak_glob`` (highest
        sphere mean over the ROI).  Image voxels whose centres lie in the sphere count, inside the ROI or not.
    """
    spacing = np.asarray(spacing, float)
    reach = np.floor(PEAK_RADIUS_MM / spacing).astype(int)
    axes = [np.arange(-r, r + 1) * s for r, s in zip(reach, spacing, strict=True)]
    dz, dy, dx = np.meshgrid(*axes, indexing="ij")
    kernel = ((dz**2 + dy**2 + dx**2) <= PEAK_RADIUS_MM**2 + 1e-9).astype(np.float64)
    sums = fftconvolve(image, kernel, mode="same")
    counts = fftconvolve(np.ones_like(image), kernel, mode="same")
    means = sums / np.rint(counts)
    values = image[intensity]
    peaks = means[intensity]
    brightest = values == values.max()
    return {"loc_peak_loc": float(peaks[brightest].max()), "loc_peak_glob": float(peaks.max())}


def _moments(values: np.ndarray, prefix: str) -> dict[str, float]:
    mean = values.mean()
    centred = values - mean
    m2 = (centred**2).mean()
    p10, p25, p75, p90 = np.percentile(values, [10, 25, 75, 90])
    median = np.median(values)
    robust = values[(values >= p10) & (values <= p90)]
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = (centred**3).mean() / m2**1.5 if m2 > 0 else 0.0
        kurt = (centred**4).mean() / m2**2 - 3.0 if m2 > 0 else 0.0
        cov = np.sqrt(m2) / mean if mean != 0 else float("nan")
        qcod = (p75 - p25) / (p75 + p25) if (p75 + p25) != 0 else float("nan")
    return {
        f"{prefix}_mean": float(mean),
        f"{prefix}_var": float(m2),
        f"{prefix}_skew": float(skew),
        f"{prefix}_kurt": float(kurt),
        f"{prefix}_median": float(median),
        f"{prefix}_min": float(values.min()),
        f"{prefix}_p10": float(p10),
        f"{prefix}_p90": float(p90),
        f"{prefix}_max": float(values.max()),
        f"{prefix}_iqr": float(p75 - p25),
        f"{prefix}_range": float(values.max() - values.min()),
        f"{prefix}_mad": float(np.abs(centred).mean()),
        f"{prefix}_rmad": float(np.abs(robust - robust.mean()).mean()),
        f"{prefix}_medad": float(np.abs(values - median).mean()),
        f"{prefix}_cov": float(cov),
        f"{prefix}_qcod": float(qcod),
    }


def statistics(values: np.ndarray) -> dict[str, float]:
    """Intensity-based statistical features (``stat_*``) of the intensity-mask voxels.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities of the ROI voxels.

    Returns
    -------
    dict
        ``stat_mean`` … ``stat_rms`` (variance, skewness and excess kurtosis with the population moments).
    """
    values = np.asarray(values, np.float64)
    out = _moments(values, "stat")
    out["stat_energy"] = float((values**2).sum())
    out["stat_rms"] = float(np.sqrt((values**2).mean()))
    return out


def histogram(levels: np.ndarray) -> dict[str, float]:
    """Intensity histogram features (``ih_*``) of the discretised ROI.

    Parameters
    ----------
    levels : numpy.ndarray
        Grey levels of the ROI voxels.

    Returns
    -------
    dict
        The statistics of the grey levels, ``ih_mode``, ``ih_entropy``, ``ih_uniformity`` and the histogram
        gradient features (``ih_max_grad``, ``ih_max_grad_g``, ``ih_min_grad``, ``ih_min_grad_g``) over the
        consecutive grey levels from the lowest to the highest present.
    """
    levels = np.asarray(levels)
    values = levels.astype(np.float64)
    out = _moments(values, "ih")
    low = int(levels.min())
    counts = np.bincount(levels - low).astype(np.float64)
    grey = np.arange(counts.size) + low
    mean = values.mean()
    modes = grey[counts == counts.max()]
    out["ih_mode"] = float(modes[np.argmin(np.abs(modes - mean))])
    p = counts / counts.sum()
    nonzero = p[p > 0]
    out["ih_entropy"] = float(-(nonzero * np.log2(nonzero)).sum())
    out["ih_uniformity"] = float((p**2).sum())
    gradient = np.gradient(counts) if counts.size > 1 else np.zeros(1)
    out["ih_max_grad"] = float(gradient.max())
    out["ih_max_grad_g"] = float(grey[np.argmax(gradient)])
    out["ih_min_grad"] = float(gradient.min())
    out["ih_min_grad_g"] = float(grey[np.argmin(gradient)])
    return out


def volume_histogram(
    values: np.ndarray,
    *,
    step: float = 1.0,
    value_range: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Intensity-volume histogram features (``ivh_*``).

    Parameters
    ----------
    values : numpy.ndarray
        Intensities (or grey levels) of the ROI voxels, on a grid of spacing ``step``.
    step : float
        Distance between consecutive intensities of the histogram (1 for integer intensities and grey levels;
        the bin width for fixed bin size).
    value_range : tuple of float or None
        (min, max) for the intensity fraction (the re-segmentation range where it is finite); default the
        ROI's minimum and maximum.

    Returns
    -------
    dict
        ``ivh_v10``, ``ivh_v90`` (volume fraction at 10/90 % intensity fraction), ``ivh_i10``, ``ivh_i90``
        (intensity at 10/90 % volume fraction), their differences and ``ivh_auc``.
    """
    values = np.asarray(values, np.float64)
    low, high = values.min(), values.max()
    if value_range is not None:
        low = value_range[0] if np.isfinite(value_range[0]) else low
        high = value_range[1] if np.isfinite(value_range[1]) else high
    grey = low + step * np.arange(int(np.rint((high - low) / step)) + 1)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, grey - 1e-9 * step, side="left")
    volume = 1.0 - below / values.size
    fraction = (grey - low) / (high - low) if high > low else np.zeros_like(grey)

    def v_at(x):
        hit = np.flatnonzero(fraction >= x)
        return float(volume[hit[0]]) if hit.size else 0.0

    def i_at(x):
        hit = np.flatnonzero(volume <= x)
        return float(grey[hit[0]]) if hit.size else float(high + step)

    v10, v90, i10, i90 = v_at(0.1), v_at(0.9), i_at(0.1), i_at(0.9)
    auc = float(np.trapezoid(volume, fraction)) if grey.size > 1 else 0.0
    return {
        "ivh_v10": v10,
        "ivh_v90": v90,
        "ivh_i10": i10,
        "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90,
        "ivh_diff_i10_i90": i10 - i90,
        "ivh_auc": auc,
    }
