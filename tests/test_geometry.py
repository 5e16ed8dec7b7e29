"""Volume geometry: affines, orientation codes and the napari layer keywords."""

import numpy as np
import pytest

from napari_medimg.geometry import Volume, affine_from_geometry, geometry_from_affine, orientation_code

AXIAL = np.eye(3)[:, ::-1]


def test_axial_affine_maps_indices_to_lps_mm():
    volume = Volume(np.zeros((4, 5, 6)), (2.5, 0.7, 0.8), (-10.0, 20.0, 30.0), AXIAL)
    # index (k, j, i) = (1, 2, 3) -> x = -10 + 3*0.8, y = 20 + 2*0.7, z = 30 + 1*2.5
    np.testing.assert_allclose(volume.index_to_world([1, 2, 3]), [-7.6, 21.4, 32.5])
    np.testing.assert_allclose(volume.world_to_index([-7.6, 21.4, 32.5]), [1, 2, 3], atol=1e-12)
    assert volume.voxel_volume == pytest.approx(2.5 * 0.7 * 0.8)
    assert orientation_code(volume.direction) == "SPL"


def test_split_affine_round_trip_with_oblique_direction():
    angle = np.deg2rad(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    direction = rotation @ AXIAL
    affine = affine_from_geometry((3.0, 1.0, 0.5), (1, 2, 3), direction)
    spacing, origin, recovered = geometry_from_affine(affine)
    np.testing.assert_allclose(spacing, (3.0, 1.0, 0.5))
    np.testing.assert_allclose(origin, (1, 2, 3))
    np.testing.assert_allclose(recovered, direction, atol=1e-12)


def test_napari_geometry_axis_aligned_uses_scale_and_translate():
    volume = Volume(np.zeros((4, 5, 6)), (2.5, 0.7, 0.8), (-10.0, 20.0, 30.0), AXIAL)
    kwargs = volume.napari_geometry()
    assert kwargs["scale"] == (2.5, 0.7, 0.8)
    assert kwargs["translate"] == (30.0, 20.0, -10.0)
    assert kwargs["units"] == ("mm", "mm", "mm")
    assert "affine" not in kwargs


def test_napari_geometry_oblique_places_voxels_at_reversed_lps():
    direction = np.stack([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]], axis=1)  # z->R, y->P, x->I
    volume = Volume(np.zeros((3, 4, 5)), (2.0, 1.0, 1.5), (5.0, -3.0, 7.0), direction)
    kwargs = volume.napari_geometry()
    scaled = np.array([2, 3, 4]) * np.array(kwargs["scale"])
    world = kwargs["affine"][:3, :3] @ scaled + kwargs["affine"][:3, 3]
    np.testing.assert_allclose(world, volume.index_to_world([2, 3, 4])[::-1])


def test_volume_rejects_bad_geometry():
    with pytest.raises(ValueError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        Volume(np.zeros((2, 2, 2, 2)))
    volume = Volume(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="shape"):
        volume.with_array(np.zeros((2, 3, 5)))


@pytest.mark.parametrize(
    "direction",
    [
        np.stack([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1),  # sagittal DICOM (IOP 0,1,0,0,0,-1)
        np.stack([[0, 1.0, 0], [0, 0, -1.0], [1.0, 0, 0]], axis=1),  # coronal
        np.stack([[0, 0, -1.0], [0, -1.0, 0], [-1.0, 0, 0]], axis=1),  # axial, feet first, flipped rows/cols
    ],
)
def test_canonical_reorders_without_moving_any_voxel(direction):
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(0, 1000, (3, 4, 5)), (2.0, 0.5, 0.75), (4.0, -2.0, 9.0), direction)
    canonical = volume.canonical()
    assert canonical.is_axis_aligned
    assert orientation_code(canonical.direction) == "SPL"
    for index in np.ndindex(volume.shape):
        target = np.round(canonical.world_to_index(volume.index_to_world(index))).astype(int)
        assert canonical.array[tuple(target)] == volume.array[index]


def test_obliquity_is_measured_and_kept_in_the_affine():
    angle = np.deg2rad(7.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    volume = Volume(np.zeros((3, 4, 5)), (2.0, 1.0, 1.0), (0, 0, 0), tilt @ AXIAL)
    assert volume.obliquity_degrees == pytest.approx(7.0)
    kwargs = volume.canonical().napari_geometry()
    assert "affine" not in kwargs  # napari cannot reslice obliquely: shown unrotated, the Volume keeps it
    np.testing.assert_allclose(volume.canonical().affine, volume.affine)
