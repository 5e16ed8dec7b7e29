"""Thresholds (multi-Otsu, local), morphology/islands/margin/logical ops and region growing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medimg import ops
from napari_medimg.geometry import Volume
from napari_medimg.processing import morphology as mo
from napari_medimg.processing import region_growing as rg
from napari_medimg.processing import threshold as th
from napari_medimg.processing._chunks import ellipsoid_footprint

SPACING = (2.0, 0.5, 0.5)


def _balls(shape, spacing, centres_mm, radii_mm):
    grid = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=False)], indexing="ij", sparse=True
    )
    mask = np.zeros(shape, bool)
    for centre, radius in zip(centres_mm, radii_mm, strict=False):
        mask |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=False)) <= radius**2
    return mask


def test_multi_otsu_labels_three_classes():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 20 * 30 * 10).reshape(20, 30, 30).astype(np.uint8)
    image = truth * 100.0 + rng.normal(0, 8, truth.shape)
    labels = th.multi_otsu_labels(image, classes=3)
    assert labels.dtype == np.uint8 and np.mean(labels == truth) > 0.99
    thresholds = th.multi_otsu_thresholds(image, classes=3)
    assert 15 < thresholds[0] < 85 and 115 < thresholds[1] < 185
    mask = truth > 0
    inside = th.multi_otsu_labels(image, classes=2, mask=mask)
    assert set(np.unique(inside[~mask])) == {0}
    assert np.mean(inside[mask] == truth[mask]) > 0.99
    with pytest.raises(ValueError):
        th.multi_otsu_labels(np.zeros((4, 4)), classes=3)


@pytest.mark.parametrize("method", th.LOCAL_METHODS)
def test_local_threshold_handles_uneven_background(method):
    y, x = np.mgrid[0:80, 0:80]
    background = x * 2.0  # a ramp from 0 to 158
    spots = ((y % 20 - 10) ** 2 + (x % 20 - 10) ** 2) < 9
    image = background + 40.0 * spots + 10.0
    # Sauvola and Niblack: k < 0 puts the threshold above the local mean (bright objects)
    mask = th.local_threshold(image, spacing=(1.0, 1.0), block_mm=15, method=method, offset=-5.0, k=-0.2)
    # a single global threshold cannot separate the spots on the left from the background on the right
    assert np.mean(mask[spots]) > 0.9 and np.mean(mask[~spots]) < 0.15
    dark_spots = 250.0 - image
    dark = th.local_threshold(
        dark_spots, spacing=(1.0, 1.0), block_mm=15, method=method, offset=-5.0, k=0.1, bright=False
    )
    assert np.mean(dark[spots]) > 0.9 and np.mean(dark[~spots]) < 0.15
    if method in ("gaussian", "mean", "median"):
        assert np.array_equal(dark, mask)


def test_ball_morphology_is_round_in_mm_and_slab_exact():
    mask = np.zeros((50, 60, 60), np.uint8)
    mask[25, 30, 30] = 1
    dilated = mo.binary_morphology(mask, operation="dilate", radius_mm=3.0, spacing=SPACING)
    zs, ys, xs = np.nonzero(dilated)
    # ±1 slice of 2 mm (2 mm ≤ 3 mm < 4 mm), ±6 rows of 0.5 mm
    assert np.ptp(zs) * 2.0 == pytest.approx(4.0) and np.ptp(ys) * 0.5 == pytest.approx(6.0)
    blobs = _balls((50, 60, 60), SPACING, [(40, 10, 10), (60, 15, 20)], [8, 3])
    noisy = blobs.copy()
    noisy[::7, ::5, ::5] = True  # isolated specks
    opened = mo.binary_morphology(noisy, operation="open", radius_mm=1.5, spacing=SPACING)
    footprint = ellipsoid_footprint(1.5, SPACING)
    expected = ndimage.binary_opening(noisy, footprint)
    assert np.array_equal(opened.astype(bool), expected)  # slabs with halo give the whole-volume result
    assert not opened[::7, ::5, ::5][~blobs[::7, ::5, ::5]].any()
    holes = blobs.copy()
    holes[20, 20, 20] = False
    closed = mo.binary_morphology(holes, operation="close", radius_mm=1.0, spacing=SPACING)
    assert closed[20, 20, 20] == 1
    edge = np.zeros((10, 10, 10), bool)
    edge[:, :, :5] = True
    assert np.array_equal(
        mo.binary_morphology(edge, operation="close", radius_mm=1.0, spacing=(1, 1, 1)).astype(bool), edge
    )
    eroded = mo.binary_morphology(blobs, operation="erode", radius_mm=1.0, spacing=SPACING)
    assert eroded.sum() < blobs.sum() and not (eroded.astype(bool) & ~blobs).any()
    with pytest.raises(ValueError):
        mo.binary_morphology(blobs, operation="melt", radius_mm=1.0, spacing=SPACING)


def test_fill_holes_3d_and_per_slice():
    shell = _balls((30, 40, 40), (1, 1, 1), [(15, 20, 20)], [10]) & ~_balls(
        (30, 40, 40), (1, 1, 1), [(15, 20, 20)], [7]
    )
    filled = mo.fill_holes(shell)
    assert filled[15, 20, 20] == 1
    cup = shell.copy()
    cup[:15] = False  # an open bowl: no 3D hole, but every axial ring has a 2D hole
    assert mo.fill_holes(cup)[20, 20, 20] == 0
    assert mo.fill_holes(cup, per_slice=True, axis=0)[20, 20, 20] == 1
    assert mo.fill_holes(cup, per_slice=True, axis=2)[20, 20, 20] == 0


def test_islands_components_and_watershed_split():
    spacing = (1.0, 1.0, 1.0)
    mask = _balls((30, 60, 60), spacing, [(15, 15, 15), (15, 40, 40), (15, 50, 10)], [8, 5, 2])
    assert mo.connected_components(mask).max() == 3
    largest = mo.keep_largest(mask)
    assert largest[15, 15, 15] and not largest[15, 40, 40]
    small_volume = 4 / 3 * np.pi * 2**3
    kept = mo.remove_small(mask, min_size_mm3=small_volume * 2, spacing=spacing)
    assert kept[15, 40, 40] and not kept[15, 50, 10]
    split = mo.split_islands(mask, spacing=spacing)
    assert split[15, 15, 15] == 1 and split[15, 40, 40] == 2 and split[15, 50, 10] == 3
    assert split.dtype == np.uint8
    touching = _balls((30, 60, 60), spacing, [(15, 30, 20), (15, 30, 34)], [8, 8])
    assert mo.connected_components(touching).max() == 1
    parts = mo.watershed_split(touching, spacing=spacing, h_mm=1.0)
    assert parts.max() == 2 and parts[15, 30, 18] != parts[15, 30, 36]
    assert np.array_equal(parts > 0, touching)


def test_margin_exact_in_mm():
    mask = np.zeros((40, 80, 80), bool)
    mask[20, 40, 40] = True
    grown = mo.margin(mask, margin_mm=5.0, spacing=SPACING)
    expected = _balls(mask.shape, SPACING, [(40, 20, 20)], [5.0])
    assert np.array_equal(grown.astype(bool), expected)
    big = _balls(mask.shape, SPACING, [(40, 20, 20)], [12.0])
    shrunk = mo.margin(big, margin_mm=-4.0, spacing=SPACING)
    inner = _balls(mask.shape, SPACING, [(40, 20, 20)], [8.0])
    # shrinking by a distance is erosion by the ball of that radius, exactly
    assert np.array_equal(shrunk.astype(bool), ndimage.binary_erosion(big, ellipsoid_footprint(4.0, SPACING)))
    assert mo.logical(shrunk, inner, operation="xor").sum() < 0.1 * inner.sum()
    assert np.array_equal(mo.margin(big, margin_mm=0, spacing=SPACING).astype(bool), big)


def test_smoothing_and_logical_ops_and_edit_label():
    ball = _balls((30, 40, 40), (1, 1, 1), [(15, 20, 20)], [10])
    rough = ball.copy()
    rough[15, 20, 30] = rough[15, 20, 29] = False  # a pit two voxels deep
    rough[15, 20, 9] = True  # a one-voxel spike
    for method in mo.SMOOTHING_METHODS:
        smooth = mo.smooth(rough, method=method, radius_mm=1.5, spacing=(1, 1, 1)).astype(bool)
        if method != "close":  # closing fills pits but keeps spikes, opening the reverse
            assert not smooth[15, 20, 9], method
        if method != "open":
            assert smooth[15, 20, 29], method
        assert abs(int(smooth.sum()) - int(ball.sum())) < 0.1 * ball.sum(), method
    cube = np.zeros((20, 40, 40), bool)
    cube[5:15, 10:30, 10:30] = True
    a, b = cube, np.roll(cube, 5, axis=2)
    assert mo.logical(a, b, operation="union").sum() == (a | b).sum()
    assert mo.logical(a, b, operation="intersect").sum() == (a & b).sum()
    assert mo.logical(a, b, operation="subtract").sum() == (a & ~b).sum()
    assert mo.logical(a, operation="invert").sum() == (~a).sum()
    assert np.array_equal(mo.logical(a, operation="copy"), a.view(np.uint8))
    with pytest.raises(ValueError):
        mo.logical(a, operation="union")
    labels = np.zeros((20, 40, 40), np.uint8)
    labels[:, :, :12] = 2
    labels[5:15, 10:30, 10:20] = 1
    edited = mo.edit_label(labels, cube, value=1)
    assert np.array_equal(edited == 2, labels == 2)  # other label kept
    assert np.array_equal(edited == 1, cube & (labels != 2))
    overwrite = mo.edit_label(labels, cube, value=1, overwrite=True)
    assert np.array_equal(overwrite == 1, cube)
    with pytest.raises(ValueError):
        mo.edit_label(labels, cube, value=300)


@pytest.fixture(scope="module")
def two_blobs():
    spacing = (2.0, 0.8, 0.8)
    shape = (24, 64, 64)
    rng = np.random.default_rng(3)
    a = _balls(shape, spacing, [(24, 20, 20)], [9])
    b = _balls(shape, spacing, [(24, 30, 34)], [8])  # touches a, brighter
    image = np.where(a, 100.0, 0.0) + np.where(b & ~a, 160.0, 0.0) + rng.normal(0, 5, shape)
    volume = Volume(image.astype(np.float32), spacing, (-10.0, 20.0, 5.0), np.eye(3)[:, ::-1])
    return volume, a, b & ~a


def _world(volume, index):
    return volume.index_to_world(np.asarray(index, float))


def test_connected_threshold_and_confidence_connected(two_blobs):
    volume, a, b = two_blobs
    seed = _world(volume, [12, 25, 25])
    grown = rg.connected_threshold(volume, [seed], radius_mm=2.0, multiplier=3.0)
    assert np.mean(grown[a]) > 0.97 and grown[b].mean() < 0.02
    manual = rg.connected_threshold(volume, [seed], low=130, high=200)
    assert manual.sum() == 0  # the seed itself is outside the range
    confident = rg.confidence_connected(volume, [seed], multiplier=2.5, iterations=3)
    assert np.mean(confident[a]) > 0.97 and confident[b].mean() < 0.02
    with pytest.raises(ValueError, match="outside"):
        rg.connected_threshold(volume, [[1000.0, 0.0, 0.0]])


def test_grow_from_seeds_competing_labels(two_blobs):
    volume, a, b = two_blobs
    points = [_world(volume, i) for i in ([12, 25, 25], [12, 37, 42], [2, 2, 2], [20, 60, 60])]
    markers = rg.markers_from_points(volume, points, values=[1, 2, 3, 3], radius_mm=1.0)
    labels = rg.grow_from_seeds(volume, markers, method="watershed", sigma_mm=1.0)
    assert np.mean(labels[a] == 1) > 0.9
    assert np.mean(labels[b] == 2) > 0.85
    assert np.mean(labels[~(a | b)] == 3) > 0.95
    # the random walker on the middle slice (2D keeps the test fast)
    plane = Volume(volume.array[12], volume.spacing[1:], (0.0, 0.0, 0.0))
    seeds = markers[12].copy()
    seeds[2, 2] = seeds[60, 60] = 3
    walked = rg.grow_from_seeds(plane, seeds, method="random_walker", sigma_mm=0.5)
    assert np.mean(walked[a[12]] == 1) > 0.9
    assert np.mean(walked[b[12]] == 2) > 0.85
    assert np.mean(walked[~(a[12] | b[12])] == 3) > 0.9
    with pytest.raises(ValueError, match="two labels"):
        rg.grow_from_seeds(volume, (markers == 1).astype(np.uint8))


def test_region_growing_2d_seeds_in_mm():
    image = np.zeros((50, 50), np.float32)
    image[10:20, 10:20] = 100
    image[30:40, 30:40] = 100
    volume = Volume(image, (0.5, 0.5), (5.0, 5.0, 0.0))
    grown = rg.connected_threshold(volume, [[5.0 + 15 * 0.5, 5.0 + 15 * 0.5]], low=50, high=150)
    assert grown.sum() == 100 and grown[15, 15] == 1 and grown[35, 35] == 0


def test_percentile_and_hysteresis_thresholds():
    values = np.arange(100, dtype=float).reshape(10, 10)
    assert th.percentile_threshold(values, fraction_above=0.1) == pytest.approx(89.1)
    inside = values < 50
    assert th.percentile_threshold(values, fraction_above=0.5, mask=inside) == pytest.approx(24.5)
    image = np.zeros((20, 20))
    image[2, 2:10] = [9, 5, 5, 5, 5, 5, 5, 5]  # a weak line touching a strong pixel
    image[10, 2:10] = 5  # a weak line alone
    mask = ops.run("hysteresis_threshold", Volume(image, (1.0, 1.0)), low=4, high=8).array
    assert mask[2, 2:10].all() and not mask[10].any() and mask.sum() == 8
    with pytest.raises(ValueError):
        ops.run("hysteresis_threshold", Volume(image, (1.0, 1.0)), low=9, high=8)
    with pytest.raises(ValueError):
        th.percentile_threshold(values, fraction_above=1.5)
