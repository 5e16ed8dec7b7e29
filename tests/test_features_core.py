"""Hand-checkable tests of the feature table: analytic shapes, edge cases, units, naming, progress and cancel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_medimg.geometry import Volume
from napari_medimg.measure import compute_features, feature_columns
from napari_medimg.measure.firstorder import bin_edges, discretize
from napari_medimg.progress import Cancelled


def ball(radius_mm: float, spacing, centre_mm=None) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of the centre (physical distance)."""
    spacing = np.asarray(spacing, float)
    shape = tuple(int(np.ceil(2 * radius_mm / s)) + 5 for s in spacing)
    centre = np.array([(n - 1) / 2 for n in shape]) * spacing if centre_mm is None else np.asarray(centre_mm)
    grid = np.indices(shape).reshape(3, -1).T * spacing
    inside = np.sum((grid - centre) ** 2, axis=1) <= radius_mm**2
    return inside.reshape(shape).astype(np.uint8)


def test_sphere_in_anisotropic_spacing_matches_geometry():
    radius = 10.0
    spacing = (2.0, 0.8, 0.6)
    row = compute_features(ball(radius, spacing), spacing=spacing, groups="shape").iloc[0]
    volume, surface = 4 / 3 * np.pi * radius**3, 4 * np.pi * radius**2
    assert row["shape_VoxelVolume"] == pytest.approx(volume, rel=0.02)
    assert row["shape_MeshVolume"] == pytest.approx(volume, rel=0.03)
    # marching cubes on a binary mask overestimates a sphere's area by ~8-13 % (staircase), as in pyradiomics
    assert 1.05 * surface < row["shape_SurfaceArea"] < 1.15 * surface
    assert 0.85 < row["shape_Sphericity"] < 0.95
    # a uniform ball has variance r^2 / 5 along every axis: axis length 4 sqrt(r^2 / 5)
    for name in ("MajorAxisLength", "MinorAxisLength", "LeastAxisLength"):
        assert row[f"shape_{name}"] == pytest.approx(4 * radius / np.sqrt(5), rel=0.03)
    assert row["shape_Elongation"] == pytest.approx(1.0, abs=0.02)
    assert row["shape_Maximum3DDiameter"] == pytest.approx(2 * radius, abs=2.0)
    assert 0.9 < row["shape_Solidity"] < 1.0


def test_same_sphere_at_two_spacings_gives_the_same_physical_values():
    fine = compute_features(ball(8.0, (1.0, 0.5, 0.5)), spacing=(1.0, 0.5, 0.5), groups="shape").iloc[0]
    coarse = compute_features(ball(8.0, (2.0, 1.0, 0.5)), spacing=(2.0, 1.0, 0.5), groups="shape").iloc[0]
    for name in ("MeshVolume", "VoxelVolume", "MajorAxisLength"):
        assert coarse[f"shape_{name}"] == pytest.approx(fine[f"shape_{name}"], rel=0.05)


def test_box_axis_lengths_and_volume_are_exact():
    labels = np.zeros((7, 8, 10), np.uint8)
    labels[2:5, 2:6, 2:8] = 1  # 3 x 4 x 6 voxels
    spacing = (2.0, 1.0, 0.5)
    row = compute_features(labels, spacing=spacing, groups="shape").iloc[0]
    assert row["shape_VoxelVolume"] == pytest.approx(3 * 4 * 6 * 2.0 * 1.0 * 0.5)
    # variance of n equally spaced centres: s^2 (n^2 - 1) / 12
    variances = sorted([4 * (9 - 1) / 12, 1 * (16 - 1) / 12, 0.25 * (36 - 1) / 12])
    assert row["shape_LeastAxisLength"] == pytest.approx(4 * np.sqrt(variances[0]))
    assert row["shape_MinorAxisLength"] == pytest.approx(4 * np.sqrt(variances[1]))
    assert row["shape_MajorAxisLength"] == pytest.approx(4 * np.sqrt(variances[2]))
    # the mesh lies on the voxel faces except for chamfered edges and corners
    assert row["shape_MeshVolume"] < row["shape_VoxelVolume"]
    assert row["shape_MeshVolume"] > (3 - 1) * 2.0 * (4 - 1) * 1.0 * (6 - 1) * 0.5
    # vertices lie on the face planes (half a voxel out) at voxel-centre positions in the other two axes:
    # the farthest pair spans n * s along one axis and (n - 1) * s along the two others
    n, s = np.array([3, 4, 6]), np.array(spacing)
    candidates = [np.linalg.norm((n - 1) * s + np.eye(3)[a] * s) for a in range(3)]
    assert row["shape_Maximum3DDiameter"] == pytest.approx(max(candidates))


def test_one_voxel_object_is_an_octahedron():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 5
    spacing = np.array([3.0, 2.0, 1.0])
    row = compute_features(labels, spacing=spacing, groups="shape").iloc[0]
    a, b, c = spacing / 2
    assert row["label"] == 5
    assert row["shape_VoxelVolume"] == pytest.approx(6.0)
    assert row["shape_MeshVolume"] == pytest.approx(4 / 3 * a * b * c)
    assert row["shape_SurfaceArea"] == pytest.approx(
        4 * np.sqrt(a * a * b * b + b * b * c * c + a * a * c * c)
    )
    assert row["shape_Maximum3DDiameter"] == pytest.approx(3.0)
    assert row["shape_MajorAxisLength"] == 0.0
    assert np.isnan(row["shape_Elongation"]) and np.isnan(row["shape_Flatness"])


def test_flat_object_has_zero_flatness_and_exact_in_plane_diameter():
    labels = np.zeros((4, 9, 9), np.uint8)
    labels[1, 2:7, 2:7] = 1  # one slice, 5 x 5
    row = compute_features(labels, spacing=(3.0, 1.0, 1.0), groups="shape", force_2d=False).iloc[0]
    assert row["shape_VoxelVolume"] == pytest.approx(75.0)
    assert row["shape_Flatness"] == 0.0 and row["shape_LeastAxisLength"] == 0.0
    assert row["shape_Elongation"] == pytest.approx(1.0)
    assert row["shape_MeshVolume"] > 0
    # in-plane vertices: voxel-face midpoints, from (-0.5, 0) to (4.5, 4): sqrt(5^2 + 4^2)
    assert row["shape_Maximum2DDiameterSlice"] == pytest.approx(np.sqrt(41))


def test_empty_labels_give_an_empty_table_with_all_columns():
    table = compute_features(np.zeros((4, 5, 6), np.uint16), np.ones((4, 5, 6)), spacing=(1, 1, 1))
    assert len(table) == 0
    assert list(table.columns) == feature_columns(None, ["image"])
    assert "glcm_Contrast" in table.columns and table["label"].dtype == np.int64


def test_2d_labels_give_shape2d_in_mm():
    yy, xx = np.mgrid[:40, :40]
    labels = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2).astype(np.uint8)
    row = compute_features(labels, spacing=(0.5, 0.5), groups="shape").iloc[0]
    assert row["shape2D_PixelSurface"] == pytest.approx(labels.sum() * 0.25)
    assert row["shape2D_MeshSurface"] == pytest.approx(np.pi * 7.5**2, rel=0.02)
    # marching squares follows the pixel staircase with 45° cuts: a digital circle's perimeter is ~8 % too long
    assert 1.0 < row["shape2D_Perimeter"] / (2 * np.pi * 7.5) < 1.1
    assert row["shape2D_MaximumDiameter"] == pytest.approx(15.0, abs=0.6)


def test_world_centroid_and_bounding_box_follow_the_geometry():
    labels = np.zeros((5, 6, 7), np.uint8)
    labels[2, 3, 4] = 1
    direction = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], float).T  # z -> -S, y -> +P, x -> +L
    volume = Volume(labels, (2.0, 1.0, 0.5), origin=(10.0, 20.0, 30.0), direction=direction)
    row = compute_features(volume, groups="shape").iloc[0]
    expected = volume.index_to_world([2, 3, 4])
    assert [row[f"shape_Centroid{a}_mm"] for a in "XYZ"] == pytest.approx(expected.tolist())
    low = [row[f"shape_BBoxMin{a}_mm"] for a in "XYZ"]
    high = [row[f"shape_BBoxMax{a}_mm"] for a in "XYZ"]
    assert np.subtract(high, low) == pytest.approx([0.5, 1.0, 2.0])  # one voxel: x 0.5, y 1, z 2 mm


def test_uint8_images_are_binned_in_a_wide_type():
    rng = np.random.default_rng(1)
    labels = np.zeros((6, 12, 12), np.uint8)
    labels[1:5, 1:11, 1:11] = 1
    image = rng.integers(0, 256, labels.shape).astype(np.uint8)
    image[1, 1, 1], image[1, 1, 2] = 255, 0
    edges = bin_edges(image[labels > 0], 25)
    # pyradiomics under numpy 2 computes 255 + 2 * 25 in uint8 (= 49) and gets the edges [0, 25]: one bin
    assert edges[0] == 0 and edges[-1] == 300 and len(edges) == 13
    assert len(np.unique(discretize(image[labels > 0], 25))) == 11
    ours = compute_features(labels, image, spacing=(1, 1, 1), groups="firstorder,glcm,glszm")
    wide = compute_features(
        labels, image.astype(np.float64), spacing=(1, 1, 1), groups="firstorder,glcm,glszm"
    )
    pd.testing.assert_frame_equal(ours, wide)


def test_mirror_image_gives_identical_features():
    rng = np.random.default_rng(2)
    labels = ball(5.0, (1.0, 1.0, 1.0))
    labels[:, :, : labels.shape[2] // 2 - 1] = 0  # a half ball: not symmetric itself
    image = rng.normal(100, 30, labels.shape)
    first = compute_features(labels, image, spacing=(1, 1, 1), workers=1)
    mirrored = compute_features(labels[:, :, ::-1], image[:, :, ::-1], spacing=(1, 1, 1), workers=1)
    value_columns = [c for c in first.columns if "Centroid" not in c and "BBox" not in c]
    pd.testing.assert_frame_equal(first[value_columns], mirrored[value_columns], rtol=1e-9)


def test_several_labels_several_images_threads_and_progress():
    labels = np.zeros((10, 20, 20), np.uint16)
    labels[1:4, 2:8, 2:8] = 3
    labels[5:9, 10:18, 4:12] = 7
    labels[6, 2, 2] = 9
    rng = np.random.default_rng(3)
    images = {"CT": rng.normal(40, 20, labels.shape), "PET": rng.gamma(2.0, 3.0, labels.shape)}
    calls = []
    table = compute_features(
        labels,
        images,
        spacing=(2.0, 1.0, 1.0),
        bin_width=5,
        workers=3,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert table["label"].tolist() == [3, 7, 9]
    assert "CT_firstorder_Mean" in table.columns and "PET_ngtdm_Busyness" in table.columns
    assert "firstorder_Mean" not in table.columns and "shape_Sphericity" in table.columns
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    mean_7 = images["CT"][labels == 7].mean()
    assert table.set_index("label").loc[7, "CT_firstorder_Mean"] == pytest.approx(mean_7)
    serial = compute_features(labels, images, spacing=(2.0, 1.0, 1.0), bin_width=5, workers=1)
    pd.testing.assert_frame_equal(table, serial)


def test_huge_sparse_label_values_keep_their_value():
    labels = np.zeros((3, 6, 6), np.uint32)
    labels[1, 1:3, 1:3] = 2**30
    labels[1, 4, 4] = 5
    table = compute_features(labels, spacing=(1, 1, 1), groups="shape")
    assert table["label"].tolist() == [5, 2**30]
    assert table["shape_VoxelCount"].tolist() == [1.0, 4.0]
    full = compute_features(np.full((2, 3, 3), 2**30, np.uint32), spacing=(1, 1, 1), groups="shape")
    assert full["label"].tolist() == [2**30] and full.loc[0, "shape_VoxelCount"] == 18


def test_cancel_through_the_progress_callback_stops_the_run():
    labels = np.zeros((4, 40, 40), np.uint8)
    for k in range(10):
        labels[1:3, 2 + 3 * k : 4 + 3 * k, 2:10] = k + 1

    def cancel(done, total):
        if done >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        compute_features(labels, np.ones(labels.shape), spacing=(1, 1, 1), progress=cancel, workers=2)


def test_bad_inputs_raise_clear_errors():
    labels = np.ones((3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="spacing"):
        compute_features(labels)
    with pytest.raises(ValueError, match="unknown feature group"):
        compute_features(labels, spacing=(1, 1, 1), groups="shape,colour")
    with pytest.raises(ValueError, match="intensity image"):
        compute_features(labels, spacing=(1, 1, 1), groups="glcm")
    with pytest.raises(ValueError, match="shape"):
        compute_features(labels, np.ones((3, 3, 4)), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="integers"):
        compute_features(labels.astype(float), spacing=(1, 1, 1))
    image = np.ones((3, 3, 3))
    image[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values inside label 1"):
        compute_features(labels, {"PET": image}, spacing=(1, 1, 1), groups="firstorder")
