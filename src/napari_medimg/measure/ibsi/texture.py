"""IBSI 1 texture families: GLCM, GLRLM, GLSZM, GLDZM, NGTDM and NGLDM with their aggregation methods.

Aggregation suffixes are the IBSI reference tags: GLCM/GLRLM ``_2D_avg`` (per slice and direction, averaged),
``_2D_comb`` (directions merged per slice, averaged over slices), ``_2_5D_avg`` (slices merged per direction,
averaged over directions), ``_2_5D_comb`` (all merged), ``_3D_avg`` (13 directions, averaged), ``_3D_comb``
(merged); GLSZM/GLDZM/NGTDM/NGLDM ``_2D`` (per slice, averaged), ``_2_5D`` (slices merged) and ``_3D``.

Matrices are never built densely when not needed: run-length, zone, distance-zone and dependence features are
computed from the list of runs (zones, voxels) with grouped ``bincount`` sums, which is exact and independent
of the number of grey levels.  GLCM matrices are built per aggregation group over the grey levels present.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components

__all__ = ["TextureInput", "FAMILIES", "texture_features"]

#: IBSI texture families (tag prefixes)
FAMILIES = ("cm", "rlm", "szm", "dzm", "ngt", "ngl")

_CM_NAMES = (
    "joint_max",
    "joint_avg",
    "joint_var",
    "joint_entr",
    "diff_avg",
    "diff_var",
    "diff_entr",
    "sum_avg",
    "sum_var",
    "sum_entr",
    "energy",
    "contrast",
    "dissimilarity",
    "inv_diff",
    "inv_diff_norm",
    "inv_diff_mom",
    "inv_diff_mom_norm",
    "inv_var",
    "corr",
    "auto_corr",
    "clust_tend",
    "clust_shade",
    "clust_prom",
    "info_corr1",
    "info_corr2",
)
# generic event-matrix features → family names
_EVENT_KEYS = (
    "se", "le", "lg", "hg", "slg", "shg", "llg", "lhg",
    "glnu", "glnu_norm", "jnu", "jnu_norm", "perc", "gl_var", "j_var", "entr", "energy",
)  # fmt: skip
_FAMILY_NAMES = {
    "rlm": (
        "sre", "lre", "lgre", "hgre", "srlge", "srhge", "lrlge", "lrhge",
        "glnu", "glnu_norm", "rlnu", "rlnu_norm", "r_perc", "gl_var", "rl_var", "rl_entr", None,
    ),
    "szm": (
        "sze", "lze", "lgze", "hgze", "szlge", "szhge", "lzlge", "lzhge",
        "glnu", "glnu_norm", "zsnu", "zsnu_norm", "z_perc", "gl_var", "zs_var", "zs_entr", None,
    ),
    "dzm": (
        "sde", "lde", "lgze", "hgze", "sdlge", "sdhge", "ldlge", "ldhge",
        "glnu", "glnu_norm", "zdnu", "zdnu_norm", "z_perc", "gl_var", "zd_var", "zd_entr", None,
    ),
    "ngl": (
        "lde", "hde", "lgce", "hgce", "ldlge", "ldhge", "hdlge", "hdhge",
        "glnu", "glnu_norm", "dcnu", "dcnu_norm", "dc_perc", "gl_var", "dc_var", "dc_entr", "dc_energy",
    ),
}  # fmt: skip
_NGT_NAMES = ("coarseness", "contrast", "busyness", "complexity", "strength")


def _offsets(two_d: bool) -> np.ndarray:
    """One (dz, dy, dx) offset of each ± pair at Chebyshev distance 1: 4 in-plane or 13 in 3D."""
    return np.array(
        [
            (dz, dy, dx)
            for dz in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dz, dy, dx) > (0, 0, 0) and not (two_d and dz != 0)
        ],
        dtype=np.int64,
    )


class TextureInput:
    """Discretised ROI prepared for texture matrices.

    Parameters
    ----------
    levels : numpy.ndarray
        (z, y, x) grey levels (any integers) over the crop.
    intensity : numpy.ndarray
        Intensity mask (bool): the voxels whose grey levels are used.
    morph : numpy.ndarray
        Morphological mask (bool): the distance-to-edge map of the GLDZM.
    n_levels : int
        ``N_g`` used by the normalised GLCM features (bin count or highest grey level).
    """

    def __init__(self, levels: np.ndarray, intensity: np.ndarray, morph: np.ndarray, n_levels: int):
        intensity = np.pad(np.asarray(intensity, bool), 1)
        self.morph = np.pad(np.asarray(morph, bool), 1)
        full = np.pad(np.asarray(levels), 1)
        values, ranks = np.unique(full[intensity], return_inverse=True)
        self.values = values.astype(np.float64)  # grey level of rank r + 1
        self.n = len(values)
        self.n_levels = int(n_levels)
        index = np.zeros(intensity.shape, np.int64)
        index[intensity] = ranks.reshape(-1) + 1
        self.index = index
        self.shape = index.shape
        self.flat = index.reshape(-1)
        self.positions = np.flatnonzero(self.flat)
        self.ranks = self.flat[self.positions]  # 1..n
        self.grey = self.values[self.ranks - 1]
        self.z = self.positions // (self.shape[1] * self.shape[2])
        z_values, self.z_group = np.unique(self.z, return_inverse=True)
        self.n_slices = len(z_values)
        self.voxels_per_slice = np.bincount(self.z_group, minlength=self.n_slices)

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
        _, ny, nx = self.shape
        return int((offset[0] * ny + offset[1]) * nx + offset[2])

    def neighbour_ranks(self, offset) -> np.ndarray:
        """Rank (0 outside the ROI) of each ROI voxel's neighbour at ``offset``.

        Parameters
        ----------
        offset : sequence of int
            (dz, dy, dx).

        Returns
        -------
        numpy.ndarray
            One rank per ROI voxel.
        """
        return self.flat[self.positions + self.stride(offset)]


def _mean_finite(values) -> float:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# ---- GLCM ---------------------------------------------------------------------------------------------------
def _glcm_features(a: np.ndarray, b: np.ndarray, values: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLCM features of the symmetric co-occurrence matrix of rank pairs (a, b) (0-based ranks)."""
    if a.size == 0:
        return {}
    present, local = np.unique(np.concatenate([a, b]), return_inverse=True)
    la, lb = local[: a.size], local[a.size :]
    n = len(present)
    counts = np.bincount(la * n + lb, minlength=n * n).reshape(n, n).astype(np.float64)
    P = counts + counts.T
    P /= P.sum()
    g = values[present]
    i, j = g[:, None], g[None, :]
    pi = P.sum(axis=1)
    mu = float((pi * g).sum())
    var = float((pi * (g - mu) ** 2).sum())
    diff = np.abs(i - j)
    total = i + j
    k_diff = np.rint(diff).astype(np.int64).ravel()
    p_diff = np.bincount(k_diff, weights=P.ravel())
    kd = np.arange(p_diff.size, dtype=float)
    k_total = np.rint(total).astype(np.int64).ravel()
    low = k_total.min()
    p_sum = np.bincount(k_total - low, weights=P.ravel())
    ks = np.arange(p_sum.size, dtype=float) + low
    diff_avg = float((kd * p_diff).sum())
    sum_avg = float((ks * p_sum).sum())
    hxy = _entropy(P.ravel())
    hx = _entropy(pi)
    centred = i + j - 2 * mu
    off = diff > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = float(((i - mu) * (j - mu) * P).sum() / var) if var > 0 else float("nan")
        info1 = (hxy - 2 * hx) / hx if hx > 0 else float("nan")
    info2 = float(np.sqrt(max(0.0, 1.0 - np.exp(-2.0 * (2 * hx - hxy)))))
    return {
        "joint_max": float(P.max()),
        "joint_avg": mu,
        "joint_var": var,
        "joint_entr": hxy,
        "diff_avg": diff_avg,
        "diff_var": float(((kd - diff_avg) ** 2 * p_diff).sum()),
        "diff_entr": _entropy(p_diff),
        "sum_avg": sum_avg,
        "sum_var": float(((ks - sum_avg) ** 2 * p_sum).sum()),
        "sum_entr": _entropy(p_sum),
        "energy": float((P**2).sum()),
        "contrast": float((diff**2 * P).sum()),
        "dissimilarity": float((diff * P).sum()),
        "inv_diff": float((P / (1 + diff)).sum()),
        "inv_diff_norm": float((P / (1 + diff / n_levels)).sum()),
        "inv_diff_mom": float((P / (1 + diff**2)).sum()),
        "inv_diff_mom_norm": float((P / (1 + diff**2 / n_levels**2)).sum()),
        "inv_var": float((P[off] / diff[off] ** 2).sum()),
        "corr": corr,
        "auto_corr": float((i * j * P).sum()),
        "clust_tend": float((centred**2 * P).sum()),
        "clust_shade": float((centred**3 * P).sum()),
        "clust_prom": float((centred**4 * P).sum()),
        "info_corr1": float(info1),
        "info_corr2": info2,
    }


def _glcm(t: TextureInput, dims: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}

    def aggregate(groups: list[tuple[np.ndarray, np.ndarray]], suffix: str):
        rows = [_glcm_features(a, b, t.values, t.n_levels) for a, b in groups if a.size]
        for name in _CM_NAMES:
            out[f"cm_{name}_{suffix}"] = _mean_finite([r[name] for r in rows]) if rows else float("nan")

    for dim in dims:
        pairs = []
        for offset in _offsets(dim != "3D"):
            b = t.neighbour_ranks(offset)
            valid = b > 0
            pairs.append((t.ranks[valid] - 1, b[valid] - 1, t.z_group[valid]))
        if dim == "3D":
            aggregate([(a, b) for a, b, _ in pairs], "3D_avg")
            aggregate(
                [(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))], "3D_comb"
            )
            continue
        per_slice = [[(a[z == s], b[z == s]) for a, b, z in pairs] for s in range(t.n_slices)]
        aggregate([pair for slice_pairs in per_slice for pair in slice_pairs], "2D_avg")
        aggregate(
            [
                (np.concatenate([p[0] for p in slice_pairs]), np.concatenate([p[1] for p in slice_pairs]))
                for slice_pairs in per_slice
            ],
            "2D_comb",
        )
        aggregate([(a, b) for a, b, _ in pairs], "2_5D_avg")
        aggregate(
            [(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))], "2_5D_comb"
        )
    return out


# ---- event matrices (runs, zones, distance zones, dependences) ----------------------------------------------
def _event_features(
    group: np.ndarray,
    rank: np.ndarray,
    j: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    n_voxels: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-group features of a matrix given as events (grey-level rank 1..n, second index j ≥ 1)."""
    n = len(values)
    i = values[rank - 1]
    jf = j.astype(np.float64)
    ns = np.bincount(group, minlength=n_groups).astype(np.float64)

    def gsum(weights):
        return np.bincount(group, weights=weights, minlength=n_groups)

    with np.errstate(divide="ignore", invalid="ignore"):
        i2, j2 = i**2, jf**2
        out = {
            "se": gsum(1 / j2),
            "le": gsum(j2),
            "lg": gsum(1 / i2),
            "hg": gsum(i2),
            "slg": gsum(1 / (i2 * j2)),
            "shg": gsum(i2 / j2),
            "llg": gsum(j2 / i2),
            "lhg": gsum(i2 * j2),
        }
        out = {k: v / ns for k, v in out.items()}
        level_counts = np.bincount(group * n + (rank - 1), minlength=n_groups * n).reshape(n_groups, n)
        out["glnu"] = (level_counts.astype(np.float64) ** 2).sum(axis=1) / ns
        out["glnu_norm"] = out["glnu"] / ns
        jmax = int(j.max()) + 1
        j_counts = np.bincount(group * jmax + j, minlength=n_groups * jmax).reshape(n_groups, jmax)
        out["jnu"] = (j_counts.astype(np.float64) ** 2).sum(axis=1) / ns
        out["jnu_norm"] = out["jnu"] / ns
        out["perc"] = ns / n_voxels
        mean_i = gsum(i) / ns
        out["gl_var"] = gsum((i - mean_i[group]) ** 2) / ns
        mean_j = gsum(jf) / ns
        out["j_var"] = gsum((jf - mean_j[group]) ** 2) / ns
        cells, cell_counts = np.unique((group * n + (rank - 1)) * jmax + j, return_counts=True)
        cell_group = cells // (n * jmax)
        p = cell_counts / ns[cell_group]
        out["entr"] = -np.bincount(cell_group, weights=p * np.log2(p), minlength=n_groups)
        out["energy"] = np.bincount(cell_group, weights=p**2, minlength=n_groups)
    return out


def _named(family: str, features: dict[str, np.ndarray], suffix: str, reduce: bool) -> dict[str, float]:
    out = {}
    for key, name in zip(_EVENT_KEYS, _FAMILY_NAMES[family], strict=True):
        if name is None:
            continue
        values = features[key]
        out[f"{family}_{name}_{suffix}"] = _mean_finite(values) if reduce else float(values[0])
    return out


def _runs(t: TextureInput, offset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs along ``offset``: rank, length and slice group of each run."""
    s = t.stride(offset)
    previous = t.flat[t.positions - s]
    start = previous != t.ranks
    starts = t.positions[start]
    rank = t.ranks[start]
    length = np.ones(starts.size, np.int64)
    alive = np.arange(starts.size)
    step = 1
    while alive.size:
        same = t.flat[starts[alive] + step * s] == rank[alive]
        alive = alive[same]
        length[alive] += 1
        step += 1
    return rank, length, t.z_group[start]


def _glrlm(t: TextureInput, dims: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    total = t.positions.size
    for dim in dims:
        runs = [_runs(t, offset) for offset in _offsets(dim != "3D")]
        n_dir = len(runs)
        rank = np.concatenate([r[0] for r in runs])
        length = np.concatenate([r[1] for r in runs])
        direction = np.concatenate([np.full(r[0].size, d) for d, r in enumerate(runs)])
        z = np.concatenate([r[2] for r in runs])

        def add(group, n_groups, voxels, suffix, reduce=True, rank=rank, length=length):
            out.update(
                _named(
                    "rlm", _event_features(group, rank, length, t.values, n_groups, voxels), suffix, reduce
                )
            )

        if dim == "3D":
            add(direction, n_dir, np.full(n_dir, total, float), "3D_avg")
            add(np.zeros_like(direction), 1, np.array([n_dir * total], float), "3D_comb", reduce=False)
            continue
        ns = t.n_slices
        per_slice = t.voxels_per_slice.astype(float)
        add(direction * ns + z, n_dir * ns, np.tile(per_slice, n_dir), "2D_avg")
        add(z, ns, n_dir * per_slice, "2D_comb")
        add(direction, n_dir, np.full(n_dir, total, float), "2_5D_avg")
        add(np.zeros_like(direction), 1, np.array([n_dir * total], float), "2_5D_comb", reduce=False)
    return out


def _zones(t: TextureInput, two_d: bool) -> tuple[np.ndarray, np.ndarray]:
    """Connected zones of equal grey level: zone id of each ROI voxel (0-based) and the number of zones."""
    index = t.index
    if two_d:  # zero planes between slices: 26-connectivity then never joins two slices
        spread = np.zeros((2 * index.shape[0],) + index.shape[1:], index.dtype)
        spread[::2] = index
        zones = connected_components(spread, background=0, connectivity=3)[::2]
    else:
        zones = connected_components(index, background=0, connectivity=3)
    ids = zones.reshape(-1)[t.positions] - 1
    return ids, int(ids.max()) + 1


def _zone_table(t: TextureInput, two_d: bool, distance: np.ndarray | None):
    ids, n_zones = _zones(t, two_d)
    first = np.full(n_zones, -1, np.int64)
    order = np.arange(ids.size)[::-1]
    first[ids[order]] = order  # any member: its rank and slice are the zone's
    size = np.bincount(ids, minlength=n_zones)
    rank = t.ranks[first]
    z = t.z_group[first]
    zone_distance = None
    if distance is not None:
        zone_distance = np.full(n_zones, np.iinfo(np.int64).max)
        np.minimum.at(zone_distance, ids, distance)
    return rank, size, z, zone_distance


def _edge_distance(t: TextureInput, two_d: bool) -> np.ndarray:
    """Distance (4-/6-connected steps, 1 on the edge) of each ROI voxel to the outside of the morphological mask."""
    if two_d:
        structure = np.zeros((3, 3, 3), bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
    else:
        structure = ndimage.generate_binary_structure(3, 1)
    distance = ndimage.distance_transform_cdt(t.morph, metric=structure)
    return distance.reshape(-1)[t.positions].astype(np.int64)


def _zone_families(t: TextureInput, dims: tuple[str, ...], families: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    total = t.positions.size
    for dim in dims:
        two_d = dim != "3D"
        distance = _edge_distance(t, two_d) if "dzm" in families else None
        rank, size, z, zone_distance = _zone_table(t, two_d, distance)
        for family, j in (("szm", size), ("dzm", zone_distance)):
            if family not in families:
                continue
            if dim == "3D":
                features = _event_features(
                    np.zeros_like(rank), rank, j, t.values, 1, np.array([total], float)
                )
                out.update(_named(family, features, "3D", reduce=False))
                continue
            per_slice = _event_features(z, rank, j, t.values, t.n_slices, t.voxels_per_slice.astype(float))
            out.update(_named(family, per_slice, "2D", reduce=True))
            merged = _event_features(np.zeros_like(rank), rank, j, t.values, 1, np.array([total], float))
            out.update(_named(family, merged, "2_5D", reduce=False))
    return out


def _neighbour_sums(t: TextureInput, two_d: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ROI voxel: number of ROI neighbours, sum of their grey levels, number with the same grey level."""
    count = np.zeros(t.positions.size, np.int64)
    total = np.zeros(t.positions.size, np.float64)
    same = np.zeros(t.positions.size, np.int64)
    for offset in _offsets(two_d):
        for sign in (1, -1):
            b = t.neighbour_ranks(sign * offset)
            inside = b > 0
            count += inside
            total[inside] += t.values[b[inside] - 1]
            same += b == t.ranks
    return count, total, same


def _ngtdm_features(rank, s, n, values) -> dict[str, float]:
    """NGTDM features of one matrix from valid voxels' ranks and |i - mean neighbour| values."""
    if rank.size == 0:
        return {}
    nv = rank.size
    counts = np.bincount(rank - 1, minlength=n).astype(np.float64)
    s_i = np.bincount(rank - 1, weights=s, minlength=n)
    present = counts > 0
    p = counts[present] / nv
    si = s_i[present]
    g = values[present]
    ngp = p.size
    sum_ps = float((p * si).sum())
    gi, gj = g[:, None], g[None, :]
    pi, pj = p[:, None], p[None, :]
    coarseness = 1.0 / sum_ps if sum_ps > 0 else 1e6
    if ngp > 1:
        contrast = float((pi * pj * (gi - gj) ** 2).sum() / (ngp * (ngp - 1)) * si.sum() / nv)
        denominator = float(np.abs(gi * pi - gj * pj).sum())
        busyness = sum_ps / denominator if denominator > 0 else 0.0
    else:
        contrast, busyness = 0.0, 0.0
    complexity = float((np.abs(gi - gj) * (pi * si[:, None] + pj * si[None, :]) / (pi + pj)).sum() / nv)
    strength = float(((pi + pj) * (gi - gj) ** 2).sum() / si.sum()) if si.sum() > 0 else 0.0
    return {
        "coarseness": coarseness,
        "contrast": contrast,
        "busyness": busyness,
        "complexity": complexity,
        "strength": strength,
    }


def _neighbourhood_families(t: TextureInput, dims: tuple[str, ...], families: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    total = t.positions.size
    for dim in dims:
        two_d = dim != "3D"
        count, sums, same = _neighbour_sums(t, two_d)
        if "ngt" in families:
            valid = count > 0
            mean = np.zeros_like(sums)
            mean[valid] = sums[valid] / count[valid]
            s = np.abs(t.grey - mean)
            groups = [np.ones(total, bool)] if dim == "3D" else [t.z_group == g for g in range(t.n_slices)]
            suffixes = ["3D"] if dim == "3D" else ["2D", "2_5D"]
            rows = [_ngtdm_features(t.ranks[v & valid], s[v & valid], t.n, t.values) for v in groups]
            rows = [r for r in rows if r]
            if dim == "3D":
                out.update({f"ngt_{k}_3D": rows[0][k] if rows else float("nan") for k in _NGT_NAMES})
            else:
                out.update({f"ngt_{k}_2D": _mean_finite([r[k] for r in rows]) for k in _NGT_NAMES})
                merged = _ngtdm_features(t.ranks[valid], s[valid], t.n, t.values)
                out.update({f"ngt_{k}_2_5D": merged.get(k, float("nan")) for k in _NGT_NAMES})
            del suffixes
        if "ngl" in families:
            dependence = same + 1
            if dim == "3D":
                f = _event_features(
                    np.zeros(total, np.int64), t.ranks, dependence, t.values, 1, np.array([total], float)
                )
                out.update(_named("ngl", f, "3D", reduce=False))
            else:
                f = _event_features(
                    t.z_group, t.ranks, dependence, t.values, t.n_slices, t.voxels_per_slice.astype(float)
                )
                out.update(_named("ngl", f, "2D", reduce=True))
                f = _event_features(
                    np.zeros(total, np.int64), t.ranks, dependence, t.values, 1, np.array([total], float)
                )
                out.update(_named("ngl", f, "2_5D", reduce=False))
    return out


def texture_features(t: TextureInput, *, by_slice: bool = False, families=FAMILIES) -> dict[str, float]:
    """All IBSI texture features of a discretised ROI, keyed by reference tag.

    Parameters
    ----------
    t : TextureInput
        The discretised ROI.
    by_slice : bool
        Only the 2D and 2.5D aggregations (IBSI "2D" configurations); otherwise also 3D.
    families : iterable of str
        Subset of :data:`FAMILIES`.

    Returns
    -------
    dict
        Tag → value (``cm_joint_max_2D_avg``, ``szm_sze_3D`` …).
    """
    families = set(families)
    dims = ("2D",) if by_slice else ("2D", "3D")
    out: dict[str, float] = {}
    if "cm" in families:
        out.update(_glcm(t, dims))
    if "rlm" in families:
        out.update(_glrlm(t, dims))
    if families & {"szm", "dzm"}:
        out.update(_zone_families(t, dims, families))
    if families & {"ngt", "ngl"}:
        out.update(_neighbourhood_families(t, dims, families))
    return out
