"""Texture matrices (GLCM, GLRLM, GLSZM, GLDM, NGTDM) and their features, as pyradiomics / IBSI define them.

Every function takes a :class:`GrayLevels` value: the discretised object (gray levels 1..n in a wide integer
type, 0 outside the object) cropped to its bounding box plus a one-voxel zero border, so that a shift by one
voxel never leaves the array.  Matrices and their features are computed by compiled kernels
(:mod:`napari_medimg.measure._kernels`, numba): one pass over the object voxels and their neighbours (flat
index ± stride) per family, then every feature of every direction in the same compiled call.  Default
pyradiomics settings are reproduced: distance 1, symmetrical GLCM, no weighting, GLDM alpha 0, 26-connectivity
in 3D (13 directions) and 8-connectivity in-plane in 2D (4 directions, pyradiomics' ``force2D`` with
``force2Ddimension 0``).

Features are averaged over the directions whose matrix is not empty (pyradiomics drops empty angles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import _kernels

__all__ = ["GrayLevels", "TEXTURE_FEATURES", "directions", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]

EPS = np.spacing(1)

TEXTURE_FEATURES: dict[str, tuple[str, ...]] = {
    "glcm": (
        "Autocorrelation",
        "ClusterProminence",
        "ClusterShade",
        "ClusterTendency",
        "Contrast",
        "Correlation",
        "DifferenceAverage",
        "DifferenceEntropy",
        "DifferenceVariance",
        "Id",
        "Idm",
        "Idmn",
        "Idn",
        "Imc1",
        "Imc2",
        "InverseVariance",
        "JointAverage",
        "JointEnergy",
        "JointEntropy",
        "MCC",
        "MaximumProbability",
        "SumAverage",
        "SumEntropy",
        "SumSquares",
    ),
    "glrlm": (
        "GrayLevelNonUniformity",
        "GrayLevelNonUniformityNormalized",
        "GrayLevelVariance",
        "HighGrayLevelRunEmphasis",
        "LongRunEmphasis",
        "LongRunHighGrayLevelEmphasis",
        "LongRunLowGrayLevelEmphasis",
        "LowGrayLevelRunEmphasis",
        "RunEntropy",
        "RunLengthNonUniformity",
        "RunLengthNonUniformityNormalized",
        "RunPercentage",
        "RunVariance",
        "ShortRunEmphasis",
        "ShortRunHighGrayLevelEmphasis",
        "ShortRunLowGrayLevelEmphasis",
    ),
    "glszm": (
        "GrayLevelNonUniformity",
        "GrayLevelNonUniformityNormalized",
        "GrayLevelVariance",
        "HighGrayLevelZoneEmphasis",
        "LargeAreaEmphasis",
        "LargeAreaHighGrayLevelEmphasis",
        "LargeAreaLowGrayLevelEmphasis",
        "LowGrayLevelZoneEmphasis",
        "SizeZoneNonUniformity",
        "SizeZoneNonUniformityNormalized",
        "SmallAreaEmphasis",
        "SmallAreaHighGrayLevelEmphasis",
        "SmallAreaLowGrayLevelEmphasis",
        "ZoneEntropy",
        "ZonePercentage",
        "ZoneVariance",
    ),
    "gldm": (
        "DependenceEntropy",
        "DependenceNonUniformity",
        "DependenceNonUniformityNormalized",
        "DependenceVariance",
        "GrayLevelNonUniformity",
        "GrayLevelVariance",
        "HighGrayLevelEmphasis",
        "LargeDependenceEmphasis",
        "LargeDependenceHighGrayLevelEmphasis",
        "LargeDependenceLowGrayLevelEmphasis",
        "LowGrayLevelEmphasis",
        "SmallDependenceEmphasis",
        "SmallDependenceHighGrayLevelEmphasis",
        "SmallDependenceLowGrayLevelEmphasis",
    ),
    "ngtdm": ("Busyness", "Coarseness", "Complexity", "Contrast", "Strength"),
}


def directions(two_d: bool) -> np.ndarray:
    """One offset of each ± pair at distance 1: 13 in 3D, 4 in the (y, x) plane in 2D.

    Parameters
    ----------
    two_d : bool
        In-plane directions only.

    Returns
    -------
    numpy.ndarray
        (k, 3) offsets as (dz, dy, dx) rows.
    """
    offsets = [
        (dz, dy, dx)
        for dz in (-1, 0, 1)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dz, dy, dx) > (0, 0, 0) and not (two_d and dz != 0)
    ]
    return np.array(offsets, dtype=int)


@dataclass
class GrayLevels:
    """A discretised object: ``index`` holds 1..n (rank of the voxel's gray level among those present), 0 outside.

    ``levels[r - 1]`` is the gray level (bin number, starting at 1) of rank ``r``; ``max_level`` is pyradiomics'
    ``Ng`` (the highest bin number present).  The array has a zero border of at least one voxel, so the flat
    position of a neighbour of an object voxel (``positions + stride``) is always inside the array.

    Parameters
    ----------
    index : numpy.ndarray
        (z, y, x) ranks 1..n inside the object, 0 outside, with a zero border.
    levels : numpy.ndarray
        Bin number of each rank (ascending).
    two_d : bool
        In-plane texture (pyradiomics' force2D).
    positions : numpy.ndarray, optional
        ``np.flatnonzero(index)`` when the caller has it already.
    """

    index: np.ndarray
    levels: np.ndarray
    two_d: bool
    positions: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.flat = np.ascontiguousarray(self.index, dtype=np.int32).reshape(-1)
        if self.positions is None:
            self.positions = np.flatnonzero(self.flat)
        self.ranks = self.flat[self.positions]
        _, ny, nx = self.index.shape
        self.strides = _strides(self.two_d, ny, nx)
        self.level_values = np.asarray(self.levels, np.float64)
        self.neighbourhood = None

    @property
    def n(self) -> int:
        """Number of grey levels present."""
        return len(self.levels)

    @property
    def max_level(self) -> int:
        """Highest bin number present (pyradiomics' ``Ng``)."""
        return int(self.levels[-1])

    @property
    def voxel_count(self) -> int:
        """Number of object voxels."""
        return len(self.positions)


@lru_cache(maxsize=256)
def _strides(two_d: bool, ny: int, nx: int) -> np.ndarray:
    strides = directions(two_d) @ np.array([ny * nx, nx, 1], np.int64)
    strides.flags.writeable = False  # shared between objects of the same crop shape
    return strides


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    """Mean over directions (rows) of each feature (column), NaN rows skipped per feature (pyradiomics)."""
    return _kernels.nanmean_rows(np.ascontiguousarray(values))


def _named(names, values) -> dict[str, float]:
    return {name: value for name, value in zip(names, values.tolist(), strict=True) if name is not None}


# ---- GLCM ---------------------------------------------------------------------------------------------------
def glcm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLCM features of a discretised object, averaged over directions where pyradiomics does.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["glcm"]``) → value.
    """
    P, values = _kernels.glcm_kernel(
        gray.flat, gray.positions, gray.strides, gray.level_values, gray.max_level
    )
    valid = ~np.isnan(values[:, 0])  # directions without any pair (pyradiomics drops them)
    if not valid.any():
        return {name: float("nan") for name in TEXTURE_FEATURES["glcm"]}
    P = P[valid]
    means = _nanmean_columns(values[valid])
    means[TEXTURE_FEATURES["glcm"].index("MCC")] = _kernels.mcc_kernel(np.ascontiguousarray(P))
    return _named(TEXTURE_FEATURES["glcm"], means)


# ---- GLRLM, GLSZM, GLDM, NGTDM ------------------------------------------------------------------------------
#: the 16 outputs of ``_kernels.size_features`` (GLN, GLNN, GLV, HGLE, LE, LHGLE, LLGLE, LGLE, Entropy, SN,
#: SNN, Percentage, Variance, SE, SHGLE, SLGLE) under each family's names; None: not a feature of the family
_SIZE_NAMES = {
    "glrlm": TEXTURE_FEATURES["glrlm"],  # already in this order
    "glszm": (
        "GrayLevelNonUniformity",
        "GrayLevelNonUniformityNormalized",
        "GrayLevelVariance",
        "HighGrayLevelZoneEmphasis",
        "LargeAreaEmphasis",
        "LargeAreaHighGrayLevelEmphasis",
        "LargeAreaLowGrayLevelEmphasis",
        "LowGrayLevelZoneEmphasis",
        "ZoneEntropy",
        "SizeZoneNonUniformity",
        "SizeZoneNonUniformityNormalized",
        "ZonePercentage",
        "ZoneVariance",
        "SmallAreaEmphasis",
        "SmallAreaHighGrayLevelEmphasis",
        "SmallAreaLowGrayLevelEmphasis",
    ),
    "gldm": (
        "GrayLevelNonUniformity",
        None,
        "GrayLevelVariance",
        "HighGrayLevelEmphasis",
        "LargeDependenceEmphasis",
        "LargeDependenceHighGrayLevelEmphasis",
        "LargeDependenceLowGrayLevelEmphasis",
        "LowGrayLevelEmphasis",
        "DependenceEntropy",
        "DependenceNonUniformity",
        "DependenceNonUniformityNormalized",
        None,
        "DependenceVariance",
        "SmallDependenceEmphasis",
        "SmallDependenceHighGrayLevelEmphasis",
        "SmallDependenceLowGrayLevelEmphasis",
    ),
}


def _size_features(P: np.ndarray, gray: GrayLevels) -> np.ndarray:
    """The 16 (angle × gray level × size) matrix features, averaged over the angles."""
    return _kernels.nanmean_rows(_kernels.size_features(P, gray.level_values, float(gray.voxel_count)))


def glrlm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLRLM features of a discretised object, averaged over directions where pyradiomics does.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["glrlm"]``) → value.
    """
    P = _kernels.run_matrix(gray.flat, gray.positions, gray.strides, gray.n, int(max(gray.index.shape)))
    return _named(_SIZE_NAMES["glrlm"], _size_features(P, gray))


def glszm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLSZM features of a discretised object (zones: 26-connected in 3D, 8-connected in-plane).

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["glszm"]``) → value.
    """
    P = _kernels.zone_matrix(gray.flat, gray.positions, gray.strides, gray.n)
    return _named(_SIZE_NAMES["glszm"], _size_features(P[None], gray))


def _neighbourhood(gray: GrayLevels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GLDM matrix and NGTDM counts / summed differences per rank, computed once per object (kept on ``gray``)."""
    if gray.neighbourhood is None:
        gray.neighbourhood = _kernels.neighbourhood_kernel(
            gray.flat, gray.positions, gray.strides, gray.level_values
        )
    return gray.neighbourhood


def gldm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLDM features of a discretised object (alpha 0, 26 or 8 neighbours).

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["gldm"]``) → value.
    """
    P, _, _ = _neighbourhood(gray)
    return _named(_SIZE_NAMES["gldm"], _size_features(P[None], gray))


def ngtdm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics NGTDM features of a discretised object.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["ngtdm"]``) → value.
    """
    _, counts, differences = _neighbourhood(gray)
    values = _kernels.ngtdm_features(counts, differences, gray.level_values)
    return _named(TEXTURE_FEATURES["ngtdm"], values)
