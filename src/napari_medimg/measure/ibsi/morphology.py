"""IBSI 1 morphological features (``morph_*``) from the marching-cubes mesh and the voxel point sets."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist
from skimage.measure import marching_cubes

__all__ = ["morphology", "spatial_autocorrelation", "mesh"]

MESH_METHOD = "lewiner"


def mesh(morph: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes mesh (level 0.5) of a mask padded with one empty voxel, in mm.

    Parameters
    ----------
    morph : numpy.ndarray
        Morphological mask (bool), (z, y, x).
    spacing : sequence of float
        (dz, dy, dx) mm.

    Returns
    -------
    vertices : numpy.ndarray
        (n, 3) vertex positions in mm.
    faces : numpy.ndarray
        (m, 3) vertex indices of the consistently oriented triangles.
    """
    padded = np.pad(np.asarray(morph, np.float32), 1)
    vertices, faces, _, _ = marching_cubes(
        padded, level=0.5, spacing=tuple(float(s) for s in spacing), method=MESH_METHOD
    )
    return vertices, faces


def _ellipsoid_area(a: float, b: float, c: float, terms: int = 20) -> float:
    """Surface area of an ellipsoid with semi-axes a ≥ b ≥ c (IBSI's Legendre series)."""
    from scipy.special import eval_legendre

    alpha = np.sqrt(max(0.0, 1 - b**2 / a**2))
    beta = np.sqrt(max(0.0, 1 - c**2 / a**2))
    if alpha == 0 and beta == 0:
        return 4 * np.pi * a**2
    total = 0.0
    x = (alpha**2 + beta**2) / (2 * alpha * beta) if alpha * beta > 0 else 1.0
    for nu in range(terms + 1):
        total += (alpha * beta) ** nu / (1 - 4 * nu**2) * eval_legendre(nu, x)
    return float(4 * np.pi * a * b * total)


def _mvee(points: np.ndarray, tolerance: float = 1e-5, iterations: int = 1000) -> np.ndarray:
    """Semi-axes (descending) of the minimum-volume enclosing ellipsoid (Khachiyan's algorithm)."""
    n, d = points.shape
    q = np.vstack([points.T, np.ones(n)])
    u = np.full(n, 1.0 / n)
    for _ in range(iterations):
        x = q @ (u[:, None] * q.T)
        m = np.einsum("ij,ji->i", q.T, np.linalg.solve(x, q))
        j = int(np.argmax(m))
        step = (m[j] - d - 1) / ((d + 1) * (m[j] - 1))
        new = (1 - step) * u
        new[j] += step
        if np.linalg.norm(new - u) < tolerance:
            u = new
            break
        u = new
    centre = points.T @ u
    shape = np.linalg.inv(points.T @ (u[:, None] * points) - np.outer(centre, centre)) / d
    eigenvalues = np.linalg.eigvalsh(shape)
    return np.sort(1 / np.sqrt(eigenvalues))[::-1]


def _ombb(points: np.ndarray, hull: ConvexHull, faces: int = 96) -> tuple[float, float]:
    """Volume and area of an oriented minimum bounding box, searched over the hull's face orientations.

    Each hull face normal fixes one box axis; in the plane the smallest-area rectangle follows from the
    projected 2D hull's edges (rotating calipers).  This is exact for boxes with a face flush with a hull face;
    the search is limited to the ``faces`` largest hull faces (IBSI gives no reference value for this feature).
    """
    best = (np.inf, np.inf)
    corners = hull.points[hull.simplices]
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    normals = hull.equations[np.argsort(areas)[::-1][:faces], :3]
    normals = normals * np.where(normals[:, :1] < 0, -1.0, 1.0)  # n and -n give the same box
    normals = np.unique(np.round(normals, 3), axis=0)
    for normal in normals:
        normal = normal / np.linalg.norm(normal)
        helper = np.array([1.0, 0, 0]) if abs(normal[0]) < 0.9 else np.array([0, 1.0, 0])
        u = np.cross(normal, helper)
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        height = np.ptp(points @ normal)
        plane = np.column_stack([points @ u, points @ v])
        try:
            flat = plane[ConvexHull(plane).vertices]
        except QhullError:  # degenerate projection
            continue
        edges = np.roll(flat, -1, axis=0) - flat
        angles = np.unique(np.round(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2), 9))
        for angle in angles:
            c, s = np.cos(angle), np.sin(angle)
            rotated = flat @ np.array([[c, -s], [s, c]])
            w, h = np.ptp(rotated, axis=0)
            volume = w * h * height
            if volume < best[0]:
                best = (volume, 2 * (w * h + w * height + h * height))
    return best


def spatial_autocorrelation(image: np.ndarray, intensity: np.ndarray, spacing) -> tuple[float, float]:
    """Moran's I and Geary's C over the intensity mask with inverse-distance weights (all voxel pairs).

    The pair sums are exact convolutions of the masked (mean-centred) intensities with the 1/distance kernel,
    computed by FFT, instead of a loop over the N² voxel pairs.

    Parameters
    ----------
    image : numpy.ndarray
        (z, y, x) intensities.
    intensity : numpy.ndarray
        Intensity mask (bool).
    spacing : sequence of float
        (dz, dy, dx) mm.

    Returns
    -------
    tuple of float
        (Moran's I, Geary's C).
    """
    boxes = [np.flatnonzero(intensity.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    crop = tuple(slice(b[0], b[-1] + 1) for b in boxes)
    mask = intensity[crop].astype(np.float64)
    values = image[crop][intensity[crop]]
    n = values.size
    if n < 2:
        return float("nan"), float("nan")
    centred = np.zeros_like(mask)
    centred[intensity[crop]] = values - values.mean()
    shape = mask.shape
    axes = [np.arange(-(m - 1), m) * s for m, s in zip(shape, spacing, strict=True)]
    dz, dy, dx = np.meshgrid(*axes, indexing="ij")
    distance = np.sqrt(dz**2 + dy**2 + dx**2)
    kernel = np.zeros_like(distance)
    kernel[distance > 0] = 1.0 / distance[distance > 0]
    # circular convolution of size >= 2n - 1 per axis has no wrap-around on the n outputs needed
    size = [sfft.next_fast_len(2 * m - 1, real=True) for m in shape]
    kernel_fft = sfft.rfftn(kernel, size)
    needed = tuple(slice(m - 1, 2 * m - 1) for m in shape)

    def convolve(values):
        return sfft.irfftn(sfft.rfftn(values, size) * kernel_fft, size)[needed]

    weight_mask = convolve(mask)
    weight_centred = convolve(centred)
    total_weight = float((mask * weight_mask).sum())
    cross = float((centred * weight_centred).sum())
    squares = float((centred**2).sum())
    if squares == 0:
        return float("nan"), float("nan")
    moran = n / total_weight * cross / squares
    pair_squares = 2.0 * float((centred**2 * weight_mask).sum()) - 2.0 * cross
    geary = (n - 1) / (2.0 * total_weight) * pair_squares / squares
    return float(moran), float(geary)


def morphology(
    morph: np.ndarray,
    image: np.ndarray,
    intensity: np.ndarray,
    spacing,
    *,
    autocorrelation: bool = True,
) -> dict[str, float]:
    """All IBSI morphological features of one ROI.

    Parameters
    ----------
    morph : numpy.ndarray
        Morphological mask (bool), (z, y, x).
    image : numpy.ndarray
        Intensities of the same grid.
    intensity : numpy.ndarray
        Intensity mask (bool).
    spacing : sequence of float
        (dz, dy, dx) mm.
    autocorrelation : bool
        Compute Moran's I and Geary's C (FFT over the ROI's bounding box).

    Returns
    -------
    dict
        ``morph_volume`` … ``morph_geary_c`` (mm, mm², mm³).
    """
    spacing = np.asarray(spacing, float)
    vertices, faces = mesh(morph, spacing)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)
    area = float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2.0)
    n_voxels = int(morph.sum())
    voxel_volume = float(np.prod(spacing))
    points = np.argwhere(morph) * spacing
    int_points = np.argwhere(intensity) * spacing
    int_values = image[intensity]
    centre_morph = points.mean(axis=0)
    weights = int_values.sum()
    centre_intensity = (
        (int_points * int_values[:, None]).sum(axis=0) / weights if weights != 0 else centre_morph
    )
    hull = ConvexHull(vertices)
    hull_points = vertices[hull.vertices]
    diameter = float(pdist(hull_points).max()) if len(hull_points) > 1 else 0.0
    if n_voxels > 1:
        covariance = np.cov(points.T)
        eigen = np.sort(np.linalg.eigvalsh(covariance))[::-1]
        eigen = np.clip(eigen, 0, None)
    else:
        eigen = np.zeros(3)
    major, minor, least = (float(e) for e in eigen)
    extent = np.ptp(vertices, axis=0)
    aabb_volume = float(np.prod(extent))
    aabb_area = float(2 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2]))
    semi = 2.0 * np.sqrt(eigen)
    with np.errstate(divide="ignore", invalid="ignore"):
        aee_volume = 4.0 * np.pi / 3.0 * float(np.prod(semi))
        aee_area = _ellipsoid_area(*semi) if semi[0] > 0 else float("nan")
    try:
        ombb_volume, ombb_area = _ombb(hull_points, hull)
    except QhullError:  # degenerate hull
        ombb_volume, ombb_area = float("nan"), float("nan")
    try:
        mvee = _mvee(hull_points)
        mvee_volume = 4.0 * np.pi / 3.0 * float(np.prod(mvee))
        mvee_area = _ellipsoid_area(*mvee)
    except np.linalg.LinAlgError:
        mvee_volume, mvee_area = float("nan"), float("nan")
    out = {
        "morph_volume": volume,
        "morph_vol_approx": n_voxels * voxel_volume,
        "morph_area_mesh": area,
        "morph_av": area / volume,
        "morph_comp_1": volume / (np.sqrt(np.pi) * area**1.5),
        "morph_comp_2": 36 * np.pi * volume**2 / area**3,
        "morph_sph_dispr": area / (36 * np.pi * volume**2) ** (1 / 3),
        "morph_sphericity": (36 * np.pi * volume**2) ** (1 / 3) / area,
        "morph_asphericity": (area**3 / (36 * np.pi * volume**2)) ** (1 / 3) - 1,
        "morph_com": float(np.linalg.norm(centre_morph - centre_intensity)),
        "morph_diam": diameter,
        "morph_pca_maj_axis": 4 * np.sqrt(major),
        "morph_pca_min_axis": 4 * np.sqrt(minor),
        "morph_pca_least_axis": 4 * np.sqrt(least),
        "morph_pca_elongation": np.sqrt(minor / major) if major > 0 else float("nan"),
        "morph_pca_flatness": np.sqrt(least / major) if major > 0 else float("nan"),
        "morph_vol_dens_aabb": volume / aabb_volume,
        "morph_area_dens_aabb": area / aabb_area,
        "morph_vol_dens_ombb": volume / ombb_volume,
        "morph_area_dens_ombb": area / ombb_area,
        "morph_vol_dens_aee": volume / aee_volume if aee_volume > 0 else float("nan"),
        "morph_area_dens_aee": area / aee_area,
        "morph_vol_dens_mvee": volume / mvee_volume,
        "morph_area_dens_mvee": area / mvee_area,
        "morph_vol_dens_conv_hull": volume / hull.volume,
        "morph_area_dens_conv_hull": area / hull.area,
        "morph_integ_int": volume * float(int_values.mean()),
    }
    if autocorrelation:
        out["morph_moran_i"], out["morph_geary_c"] = spatial_autocorrelation(image, intensity, spacing)
    return {k: float(v) for k, v in out.items()}
