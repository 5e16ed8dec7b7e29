"""Texture matrices (GLCM, GLRLM, GLSZM, GLDM, NGTDM) and their features, as pyradiomics / IBSI define them.

Every function takes a :class:`GrayLevels` value: the discretised object (gray levels 1..n in a wide integer
type, 0 outside the object) cropped to its bounding box plus a one-voxel zero border, so that a shift by one
voxel never leaves the array.  Matrices are built from vectorised gathers of every object voxel's neighbours
(flat index ± stride; no per-voxel Python loop).  Default pyradiomics settings are reproduced: distance 1,
symmetrical GLCM, no weighting, GLDM alpha 0, 26-connectivity in 3D (13 directions) and 8-connectivity in-plane
in 2D (4 directions, pyradiomics' ``force2D`` with ``force2Ddimension 0``).

Features are averaged over the directions whose matrix is not empty (pyradiomics drops empty angles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import label as connected_components

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
    """

    index: np.ndarray
    levels: np.ndarray
    two_d: bool

    def __post_init__(self):
        self.flat = self.index.reshape(-1)
        self.positions = np.flatnonzero(self.flat)
        self.ranks = self.flat[self.positions]
        self.coords = np.stack(np.unravel_index(self.positions, self.index.shape)).astype(np.int64)
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

    def stride(self, offset) -> int:
        """Flat-index step of a (dz, dy, dx) offset.

        Parameters
        ----------
        offset : sequence of int
            (dz, dy, dx).

        Returns
        -------
        int
            The step in the flattened array.
        """
        _, ny, nx = self.index.shape
        return int((offset[0] * ny + offset[1]) * nx + offset[2])

    def neighbours(self, offset) -> np.ndarray:
        """Rank (0 outside the object) of each object voxel's neighbour at ``offset``.

        Parameters
        ----------
        offset : sequence of int
            (dz, dy, dx).

        Returns
        -------
        numpy.ndarray
            One rank per object voxel.
        """
        return self.flat[self.positions + self.stride(offset)]


def _nanmean_angles(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


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
    n = gray.n
    matrices = []
    a = gray.ranks.astype(np.int64) - 1
    for offset in directions(gray.two_d):
        b = gray.neighbours(offset)
        valid = b > 0
        codes = a[valid] * n + (b[valid] - 1)
        matrix = np.bincount(codes, minlength=n * n).reshape(n, n).astype(float)
        if matrix.sum() > 0:
            matrices.append(matrix + matrix.T)
    if not matrices:
        return {name: float("nan") for name in TEXTURE_FEATURES["glcm"]}
    P = np.stack(matrices)
    P /= P.sum(axis=(1, 2), keepdims=True)
    g = gray.levels.astype(float)
    i, j = g[:, None], g[None, :]
    Ng = gray.max_level
    px = P.sum(axis=2)  # (A, n)
    py = P.sum(axis=1)
    ux = (px * g).sum(axis=1)[:, None, None]
    uy = (py * g).sum(axis=1)[:, None, None]
    level_sum = (i + j).astype(np.int64).ravel()
    level_diff = np.abs(i - j).astype(np.int64).ravel()
    p_sum = np.stack([np.bincount(level_sum, weights=m.ravel(), minlength=2 * Ng + 1) for m in P])
    p_diff = np.stack([np.bincount(level_diff, weights=m.ravel(), minlength=Ng) for m in P])
    k_sum = np.arange(p_sum.shape[1], dtype=float)
    k_diff = np.arange(p_diff.shape[1], dtype=float)

    def entropy(p, axes):
        return -np.sum(p * np.log2(p + EPS), axis=axes)

    HX = entropy(px, 1)
    HY = entropy(py, 1)
    HXY = entropy(P, (1, 2))
    pxpy = px[:, :, None] * py[:, None, :]
    HXY1 = -np.sum(P * np.log2(pxpy + EPS), axis=(1, 2))
    HXY2 = -np.sum(pxpy * np.log2(pxpy + EPS), axis=(1, 2))

    f = {}
    f["Autocorrelation"] = np.sum(P * i * j, axis=(1, 2))
    f["JointAverage"] = ux[:, 0, 0]
    cluster = i + j - ux - uy
    f["ClusterProminence"] = np.sum(P * cluster**4, axis=(1, 2))
    f["ClusterShade"] = np.sum(P * cluster**3, axis=(1, 2))
    f["ClusterTendency"] = np.sum(P * cluster**2, axis=(1, 2))
    f["Contrast"] = np.sum(P * (i - j) ** 2, axis=(1, 2))
    sigx = np.sqrt(np.sum(P * (i - ux) ** 2, axis=(1, 2)))
    sigy = np.sqrt(np.sum(P * (j - uy) ** 2, axis=(1, 2)))
    corm = np.sum(P * (i - ux) * (j - uy), axis=(1, 2))
    correlation = corm / (sigx * sigy + EPS)
    correlation[sigx * sigy == 0] = 1.0
    f["Correlation"] = correlation
    f["DifferenceAverage"] = np.sum(p_diff * k_diff, axis=1)
    f["DifferenceEntropy"] = entropy(p_diff, 1)
    diff_avg = f["DifferenceAverage"][:, None]
    f["DifferenceVariance"] = np.sum(p_diff * (k_diff - diff_avg) ** 2, axis=1)
    f["JointEnergy"] = np.sum(P**2, axis=(1, 2))
    f["JointEntropy"] = HXY
    div = np.fmax(HX, HY)
    imc1 = HXY - HXY1
    f["Imc1"] = np.where(div != 0, imc1 / np.where(div != 0, div, 1.0), 0.0)
    with np.errstate(over="ignore"):
        imc2 = 1 - np.exp(-2 * (HXY2 - HXY))
    imc2 = np.where(HXY2 == HXY, 0.0, imc2)
    with np.errstate(invalid="ignore"):  # pyradiomics: a (rounding-)negative argument gives NaN, skipped
        f["Imc2"] = np.sqrt(imc2)
    f["Idm"] = np.sum(p_diff / (1 + k_diff**2), axis=1)
    f["Idmn"] = np.sum(p_diff / (1 + k_diff**2 / Ng**2), axis=1)
    f["Id"] = np.sum(p_diff / (1 + k_diff), axis=1)
    f["Idn"] = np.sum(p_diff / (1 + k_diff / Ng), axis=1)
    f["InverseVariance"] = np.sum(p_diff[:, 1:] / k_diff[1:] ** 2, axis=1)
    f["MaximumProbability"] = P.max(axis=(1, 2))
    f["SumAverage"] = np.sum(p_sum * k_sum, axis=1)
    f["SumEntropy"] = entropy(p_sum, 1)
    f["SumSquares"] = np.sum(P * (i - ux) ** 2, axis=(1, 2))
    f["MCC"] = _mcc(P, px, py)
    return {name: _nanmean_angles(f[name]) if name != "MCC" else f[name] for name in TEXTURE_FEATURES["glcm"]}


def _mcc(P: np.ndarray, px: np.ndarray, py: np.ndarray) -> float:
    """Maximal correlation coefficient: sqrt of the second largest eigenvalue of Q (pyradiomics' definition)."""
    if P.shape[1] < 2:
        return 1.0  # flat region
    weight = 1.0 / (px[:, :, None] * py[:, None, :] + EPS)
    Q = np.matmul(P * weight, np.transpose(P, (0, 2, 1)))
    eigenvalues = np.sort(np.linalg.eigvals(Q), axis=1)
    with np.errstate(invalid="ignore"):
        mcc = np.sqrt(eigenvalues[:, -2])
    return float(np.real(_nanmean_complex(mcc)))


def _nanmean_complex(values: np.ndarray):
    keep = ~np.isnan(values)
    return values[keep].mean() if np.any(keep) else np.nan


# ---- GLRLM --------------------------------------------------------------------------------------------------
def _runs(gray: GrayLevels, offset) -> tuple[np.ndarray, np.ndarray]:
    """(rank, length) of every run of equal gray level along ``offset`` inside the object."""
    centre = gray.ranks
    starts = gray.flat[gray.positions - gray.stride(offset)] != centre
    ends = gray.flat[gray.positions + gray.stride(offset)] != centre
    step = np.asarray(offset)
    axis = int(np.flatnonzero(step)[0])
    size = int(max(gray.index.shape))
    # a run is keyed by its line (the point where it crosses the plane axis = 0; every component lies in
    # (-size, 2 * size)) and its position along the line: the end of the run that starts at key k is the first
    # end key >= k, and the key difference is the distance along the line.
    # key = (sum_k (c_k - t s_k + size) (3 size)^(2-k)) (2 size + 2) + t + size with t = c_axis s_axis: linear
    # in the coordinates, so it is one weighted sum (constant terms dropped)
    place = (3 * size) ** np.arange(2, -1, -1, dtype=np.int64) * (2 * size + 2)
    weights = place.copy()
    weights[axis] += step[axis] * (1 - int(np.dot(step, place)))
    key = weights @ gray.coords
    start_key = key[starts]
    end_key = np.sort(key[ends])
    lengths = end_key[np.searchsorted(end_key, start_key)] - start_key + 1
    return centre[starts], lengths


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
    n = gray.n
    runs = [_runs(gray, offset) for offset in directions(gray.two_d)]
    longest = max(int(lengths.max()) for _, lengths in runs)
    codes = np.concatenate(
        [
            (angle * n + ranks.astype(np.int64) - 1) * longest + (lengths - 1)
            for angle, (ranks, lengths) in enumerate(runs)
        ]
    )
    P = np.bincount(codes, minlength=len(runs) * n * longest).reshape(len(runs), n, longest).astype(float)
    j = np.arange(1, longest + 1, dtype=float)
    values = _size_features(
        P,
        gray.levels.astype(float),
        j,
        gray.voxel_count,
        (
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
    )
    return {name: _nanmean_angles(value) for name, value in values.items()}


def _size_features(P: np.ndarray, i: np.ndarray, j: np.ndarray, Np: int, names) -> dict[str, np.ndarray]:
    """The 16 features of (angle × gray level × size) matrices, one value per angle, under ``names``.

    ``names`` maps, in order: GLN, GLNN, GLV, HGLE, LE, LHGLE, LLGLE, LGLE, Entropy, SN, SNN, Percentage,
    Variance, SE, SHGLE, SLGLE (run, zone or dependence flavour; None skips one).  Sums over the matrix are
    written as products of its margins with the weight vectors wherever the weight separates.
    """
    present = P.sum(axis=(0, 1)) > 0  # sizes that occur (pyradiomics drops the others; they add nothing)
    P, j = P[:, :, present], j[present]
    Nz = P.sum(axis=(1, 2))
    pg = P.sum(axis=2)
    ps = P.sum(axis=1)
    i2, j2 = i**2, j**2
    ui = pg @ i / Nz
    uj = ps @ j / Nz
    p = P / Nz[:, None, None]
    values = (
        np.sum(pg**2, axis=1) / Nz,
        np.sum(pg**2, axis=1) / Nz**2,
        np.sum(pg * (i[None, :] - ui[:, None]) ** 2, axis=1) / Nz,
        pg @ i2 / Nz,
        ps @ j2 / Nz,
        np.einsum("n,anl,l->a", i2, P, j2) / Nz,
        np.einsum("n,anl,l->a", 1 / i2, P, j2) / Nz,
        pg @ (1 / i2) / Nz,
        -np.sum(p * np.log2(p + EPS), axis=(1, 2)),
        np.sum(ps**2, axis=1) / Nz,
        np.sum(ps**2, axis=1) / Nz**2,
        Nz / Np,
        np.sum(ps * (j[None, :] - uj[:, None]) ** 2, axis=1) / Nz,
        ps @ (1 / j2) / Nz,
        np.einsum("n,anl,l->a", i2, P, 1 / j2) / Nz,
        np.einsum("n,anl,l->a", 1 / i2, P, 1 / j2) / Nz,
    )
    return {name: value for name, value in zip(names, values, strict=False) if name is not None}


# ---- GLSZM --------------------------------------------------------------------------------------------------
def glszm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLSZM features of a discretised object, averaged over directions where pyradiomics does.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["glszm"]``) → value.
    """
    index = gray.index.astype(np.int64)
    if gray.two_d:
        # keep zones in-plane: neighbouring slices never share a value after this offset
        index = np.where(index > 0, index + (np.arange(index.shape[0]) % 2)[:, None, None] * (gray.n + 1), 0)
    zones = connected_components(index, background=0, connectivity=index.ndim).reshape(-1)[gray.positions]
    sizes = np.bincount(zones)[1:]
    zone_rank = np.zeros(len(sizes) + 1, np.int64)
    zone_rank[zones] = gray.ranks
    zone_rank = zone_rank[1:]
    largest = int(sizes.max())
    n = gray.n
    P = (
        np.bincount((zone_rank - 1) * largest + (sizes - 1), minlength=n * largest)
        .reshape(n, largest)
        .astype(float)
    )
    j = np.arange(1, largest + 1, dtype=float)
    out = _size_features(
        P[None],
        gray.levels.astype(float),
        j,
        gray.voxel_count,
        (
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
    )
    return {name: float(value[0]) for name, value in out.items()}


# ---- GLDM and NGTDM -----------------------------------------------------------------------------------------
def _neighbourhood(gray: GrayLevels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per object voxel: neighbours in the object with the same level, sum of their levels, neighbour count.

    Computed once per object and kept on ``gray``: GLDM and NGTDM share it.
    """
    if gray.neighbourhood is None:
        centre = gray.ranks
        level_of_rank = np.concatenate([[0], gray.levels]).astype(np.int64)
        equal = np.zeros(len(centre), np.int16)
        count = np.zeros(len(centre), np.int16)
        total = np.zeros(len(centre), np.int64)
        for offset in directions(gray.two_d):
            for sign in (1, -1):
                neighbour = gray.flat[gray.positions + sign * gray.stride(offset)]
                equal += neighbour == centre
                count += neighbour > 0
                total += level_of_rank[neighbour]
        gray.neighbourhood = (equal, total, count)
    return gray.neighbourhood


def gldm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics GLDM features of a discretised object, averaged over directions where pyradiomics does.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["gldm"]``) → value.
    """
    equal, _, _ = _neighbourhood(gray)
    ranks = gray.ranks.astype(np.int64)
    dependence = equal.astype(np.int64)  # neighbours in the object with the same level (alpha = 0)
    size = int(dependence.max()) + 1
    n = gray.n
    P = np.bincount((ranks - 1) * size + dependence, minlength=n * size).reshape(n, size).astype(float)
    j = np.arange(1, size + 1, dtype=float)
    out = _size_features(
        P[None],
        gray.levels.astype(float),
        j,
        gray.voxel_count,
        (
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
    )
    return {name: float(value[0]) for name, value in out.items()}


def ngtdm(gray: GrayLevels) -> dict[str, float]:
    """pyradiomics NGTDM features of a discretised object, averaged over directions where pyradiomics does.

    Parameters
    ----------
    gray : GrayLevels
        The discretised object.

    Returns
    -------
    dict
        Feature name (as in :data:`TEXTURE_FEATURES` ``["ngtdm"]``) → value.
    """
    _, total, count = _neighbourhood(gray)
    valid = count > 0  # voxels without any neighbour in the object are left out (pyradiomics)
    ranks = gray.ranks[valid].astype(np.int64)
    diff = np.abs(gray.levels[ranks - 1] - total[valid] / count[valid])
    n = gray.n
    counts = np.bincount(ranks - 1, minlength=n).astype(float)
    s = np.bincount(ranks - 1, weights=diff, minlength=n)
    keep = counts > 0
    counts, s, g = counts[keep], s[keep], gray.levels.astype(float)[keep]
    if counts.size == 0:
        return {"Busyness": 0.0, "Coarseness": 1e6, "Complexity": 0.0, "Contrast": 0.0, "Strength": 0.0}
    Nvp = counts.sum()
    p = counts / Nvp
    Ngp = len(p)
    f = {}
    weighted = np.sum(p * s)
    f["Coarseness"] = 1.0 / weighted if weighted != 0 else 1e6
    gi, gj = g[:, None], g[None, :]
    div = Ngp * (Ngp - 1)
    contrast = np.sum(p[:, None] * p[None, :] * (gi - gj) ** 2) * np.sum(s) / Nvp
    f["Contrast"] = contrast / div if div != 0 else 0.0
    ip = np.abs(g * p)
    absdiff = np.sum(np.abs(ip[:, None] - ip[None, :]))
    f["Busyness"] = weighted / absdiff if absdiff != 0 else 0.0
    ps = p * s
    f["Complexity"] = np.sum(np.abs(gi - gj) * (ps[:, None] + ps[None, :]) / (p[:, None] + p[None, :])) / Nvp
    sum_s = np.sum(s)
    f["Strength"] = np.sum((p[:, None] + p[None, :]) * (gi - gj) ** 2) / sum_s if sum_s != 0 else 0.0
    return {name: float(f[name]) for name in TEXTURE_FEATURES["ngtdm"]}
