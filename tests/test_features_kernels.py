"""The compiled feature kernels equal the library computations they replace, on random objects.

The pyradiomics reference tests (test_features_reference.py) check the end result on real ROIs; these check
each kernel against an independent computation (scikit-image contours, scipy hull, numpy digitize / unique /
percentile / general eigenvalues, scikit-image connected components) on shapes those ROIs may not exercise:
holes, saddle cells, several components, values exactly on bin edges.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.measure import find_contours
from skimage.measure import label as connected_components

from napari_medimg.measure import _kernels, texture
from napari_medimg.measure.firstorder import bin_edges, discretize, firstorder
from napari_medimg.measure.shape import shape_2d


def _blobs(seed: int, shape=(40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5  # several components, holes, saddles
    mask[[0, -1], :] = False
    mask[:, [0, -1]] = False
    return mask


@pytest.mark.parametrize("seed", range(6))
def test_shape2d_matches_contours_and_hull(seed):
    mask = _blobs(seed)
    assert mask.any(), "the blob seeds must draw objects"
    spacing = np.array([0.7, 1.3])
    contours = [c * spacing for c in find_contours(mask.astype(np.float32), 0.5, fully_connected="low")]
    signed = sum(
        0.5 * np.sum(c[:, 1] * np.roll(c[:, 0], -1) - np.roll(c[:, 1], -1) * c[:, 0]) for c in contours
    )
    perimeter = sum(np.sum(np.linalg.norm(np.diff(c, axis=0), axis=1)) for c in contours)
    vertices = np.concatenate(contours)
    hull = ConvexHull(vertices)
    hull_points = vertices[hull.vertices]
    diameter = np.sqrt(np.max(np.sum((hull_points[:, None] - hull_points[None]) ** 2, axis=-1)))
    f = shape_2d(mask, spacing)
    assert f["MeshSurface"] == pytest.approx(abs(signed), rel=1e-12)
    assert f["Perimeter"] == pytest.approx(perimeter, rel=1e-12)
    assert f["ConvexHullArea"] == pytest.approx(hull.volume, rel=1e-12)
    assert f["MaximumDiameter"] == pytest.approx(diameter, rel=1e-12)
    coordinates = np.argwhere(mask) * spacing
    lam = np.linalg.eigvalsh(np.cov(coordinates.T, bias=True))
    assert f["MajorAxisLength"] == pytest.approx(4 * np.sqrt(lam[1]), rel=1e-9)
    assert f["MinorAxisLength"] == pytest.approx(4 * np.sqrt(lam[0]), rel=1e-9)


def test_discretisation_and_ranks_match_numpy():
    rng = np.random.default_rng(1)
    values = np.r_[rng.normal(0, 300, 5000).round(1), np.arange(-500, 501, 25.0)]  # many exactly on edges
    for width in (25.0, 0.1, 7.3):
        edges = bin_edges(values, width)
        np.testing.assert_array_equal(discretize(values, width), np.digitize(values, edges))
    bins = discretize(values, 25.0)
    levels, ranks = _kernels.rank_levels(bins)
    expected_levels, inverse = np.unique(bins, return_inverse=True)
    np.testing.assert_array_equal(levels, expected_levels)
    np.testing.assert_array_equal(ranks, inverse + 1)
    assert discretize(values.reshape(-1, 1), 25.0).shape == (values.size, 1)


def test_firstorder_percentiles_and_moments_match_numpy():
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 1000):
        x = rng.gamma(2.0, 40.0, n)
        f = firstorder(x, discretize(x, 25.0), 2.0)
        p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
        assert (f["10Percentile"], f["Median"], f["90Percentile"]) == pytest.approx(
            (p10, p50, p90), rel=1e-12
        )
        assert f["InterquartileRange"] == pytest.approx(p75 - p25, rel=1e-9, abs=1e-9)
        assert f["Variance"] == pytest.approx(np.var(x), rel=1e-9, abs=1e-12)
        robust = x[(x >= p10) & (x <= p90)]
        if robust.size:
            expected = np.mean(np.abs(robust - robust.mean()))
            assert f["RobustMeanAbsoluteDeviation"] == pytest.approx(expected, abs=1e-9)
        else:  # two values: none lies between the 10th and 90th percentiles
            assert np.isnan(f["RobustMeanAbsoluteDeviation"])


def _gray(index: np.ndarray, two_d: bool) -> texture.GrayLevels:
    levels = np.unique(index[index > 0])
    ranks = np.searchsorted(levels, index) + 1
    return texture.GrayLevels(np.where(index > 0, ranks, 0).astype(np.int32), levels, two_d)


def test_zones_match_connected_components():
    rng = np.random.default_rng(3)
    index = np.pad(rng.integers(0, 4, (6, 9, 11)), 1)
    for two_d in (False, True):
        gray = _gray(index, two_d)
        P = _kernels.zone_matrix(gray.flat, gray.positions, gray.strides, gray.n)
        expected = np.zeros_like(P)
        for rank in range(1, gray.n + 1):
            planes = [gray.index == rank] if not two_d else [p[None] for p in gray.index == rank]
            for plane in planes:
                zones = connected_components(plane, connectivity=3, background=0)
                for size in np.bincount(zones.ravel())[1:]:
                    expected[rank - 1, size - 1] += 1
        np.testing.assert_array_equal(P, expected)


def test_mcc_matches_the_general_eigenvalue_definition():
    rng = np.random.default_rng(4)
    for n in (2, 5, 30):
        M = rng.random((3, n, n)) * (rng.random((3, n, n)) > 0.4)
        M[:, 0, :] = 0  # a level without pairs in these directions: zero marginal
        P = M + np.transpose(M, (0, 2, 1))
        P /= P.sum(axis=(1, 2), keepdims=True)
        px, py = P.sum(axis=2), P.sum(axis=1)
        Q = np.matmul(P / (px[:, :, None] * py[:, None, :] + texture.EPS), np.transpose(P, (0, 2, 1)))
        second = np.sort(np.linalg.eigvals(Q).real, axis=1)[:, -2]
        assert _kernels.mcc_kernel(P) == pytest.approx(np.mean(np.sqrt(np.clip(second, 0, None))), rel=1e-8)


@pytest.mark.slow  # two fresh processes that compile kernels: ~15 s each on a loaded machine
@pytest.mark.parametrize("locator", ["UserWideCacheLocator", "ZipCacheLocator"])
def test_kernels_work_without_a_writable_package_folder(tmp_path, locator):
    """Read-only site-packages: the kernel cache goes to the user's cache folder (numba's user-wide locator);
    with no usable cache folder at all (only the zip locator, which does not apply), the kernels are compiled in
    the process instead of failing at import."""
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": locator, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    code = (
        "import numpy as np; from napari_medimg.measure import compute_features; "
        "labels = np.pad(np.ones((3, 3, 3), np.uint8), 1); image = np.arange(125.0).reshape(5, 5, 5); "
        "print(compute_features(labels, image, (1, 1, 1), groups='firstorder')['firstorder_Mean'][0])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(result.stdout) == pytest.approx(62.0)  # the centre voxel of a symmetric block
    assert bool(list(tmp_path.rglob("*.nbi"))) == (locator == "UserWideCacheLocator")
