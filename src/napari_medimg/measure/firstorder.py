"""Gray-level discretisation and first-order (histogram) features, as pyradiomics defines them.

Discretisation is computed on float64 copies of the intensities: pyradiomics under numpy 2 adds to a uint8
maximum in the image's own dtype, which wraps around and silently collapses the bins; we never do that.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

__all__ = ["FIRSTORDER_FEATURES", "bin_edges", "discretize", "firstorder"]

EPS = np.spacing(1)

FIRSTORDER_FEATURES = (
    "10Percentile",
    "90Percentile",
    "Energy",
    "Entropy",
    "InterquartileRange",
    "Kurtosis",
    "Maximum",
    "MeanAbsoluteDeviation",
    "Mean",
    "Median",
    "Minimum",
    "Range",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "Skewness",
    "TotalEnergy",
    "Uniformity",
    "Variance",
    # pyradiomics feature that is defined but not enabled by default
    "StandardDeviation",
)


def bin_edges(values: np.ndarray, bin_width: float) -> np.ndarray:
    """Fixed-bin-width edges: from the largest multiple of ``bin_width`` ≤ min up past max (pyradiomics rule).

    Parameters
    ----------
    values : numpy.ndarray
        Intensities.
    bin_width : float
        Bin width in image units.

    Returns
    -------
    numpy.ndarray
        Bin edges.

    Raises
    ------
    ValueError
        For a non-positive bin width.
    """
    if not bin_width > 0:
        raise ValueError(f"bin width must be positive, got {bin_width}")
    values = np.asarray(values, np.float64)
    low, high = float(values.min()), float(values.max())
    edges = np.arange(low - np.mod(low, bin_width), high + 2 * bin_width, bin_width, dtype=np.float64)
    if len(edges) == 1:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def discretize(values: np.ndarray, bin_width: float) -> np.ndarray:
    """Bin numbers (1 = the lowest bin) of ``values`` for a fixed bin width (pyradiomics' discretisation).

    Parameters
    ----------
    values : numpy.ndarray
        Intensities.
    bin_width : float
        Bin width in image units.

    Returns
    -------
    numpy.ndarray
        Bin numbers (int64).
    """
    values = np.asarray(values, np.float64)
    flat = np.ascontiguousarray(values).reshape(-1)
    return _kernels.digitize_edges(flat, bin_edges(flat, bin_width)).reshape(values.shape)


def firstorder(values: np.ndarray, bins: np.ndarray, voxel_volume: float) -> dict[str, float]:
    """pyradiomics first-order features of an object.

    Parameters
    ----------
    values : numpy.ndarray
        The object's intensities.
    bins : numpy.ndarray
        Their bin numbers (:func:`discretize`), for entropy and uniformity.
    voxel_volume : float
        Volume of one voxel in mm³ (total energy).

    Returns
    -------
    dict
        Feature name (``Mean``, ``Entropy`` …) → value.

    Notes
    -----
    One compiled pass (``_kernels.firstorder_kernel``); percentiles are numpy's default (linear).
    """
    x = np.ascontiguousarray(values, np.float64).reshape(-1)
    bins = np.ascontiguousarray(bins, np.int64).reshape(-1)
    values = _kernels.firstorder_kernel(x, np.sort(x), bins, float(voxel_volume))
    return dict(zip(FIRSTORDER_FEATURES, values.tolist(), strict=True))
