"""Gray-level discretisation and first-order (histogram) features, as pyradiomics defines them.

Discretisation is computed on float64 copies of the intensities: pyradiomics under numpy 2 adds to a uint8
maximum in the image's own dtype, which wraps around and silently collapses the bins; we never do that.
"""

from __future__ import annotations

import numpy as np

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
    return np.digitize(values, bin_edges(values, bin_width)).astype(np.int64)


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
    """
    x = np.asarray(values, np.float64)
    n = x.size
    mean = x.mean()
    deviation = x - mean
    m2 = np.mean(deviation**2)
    m3 = np.mean(deviation**3)
    m4 = np.mean(deviation**4)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    energy = float(np.sum(x**2))
    counts = np.unique(bins, return_counts=True)[1]
    p = counts / n
    f = {
        "10Percentile": p10,
        "90Percentile": p90,
        "Energy": energy,
        "TotalEnergy": energy * voxel_volume,
        "Entropy": -np.sum(p * np.log2(p + EPS)),
        "Uniformity": np.sum(p**2),
        "InterquartileRange": p75 - p25,
        "Kurtosis": m4 / m2**2 if m2 != 0 else 0.0,
        "Skewness": m3 / m2**1.5 if m2 != 0 else 0.0,
        "Maximum": x.max(),
        "Minimum": x.min(),
        "Range": x.max() - x.min(),
        "Mean": mean,
        "Median": p50,
        "MeanAbsoluteDeviation": np.mean(np.abs(deviation)),
        "RobustMeanAbsoluteDeviation": np.mean(np.abs(robust - robust.mean())),
        "RootMeanSquared": np.sqrt(energy / n),
        "Variance": m2,
        "StandardDeviation": np.sqrt(m2),
    }
    return {name: float(f[name]) for name in FIRSTORDER_FEATURES}
