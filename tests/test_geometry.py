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
        Volume(np.zeros((2, 2, 2, 2, 2)))
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


# ---- 2D images (grey and RGB) and the one permute/flip helper ---------------------------------------------


def test_2d_affine_is_the_image_plane_in_mm():
    volume = Volume(np.zeros((8, 9)), spacing=(0.5, 0.7))
    np.testing.assert_array_equal(volume.affine, [[0.5, 0, 0], [0, 0.7, 0], [0, 0, 1]])
    assert volume.spatial_ndim == 2 and volume.spatial_shape == (8, 9)
    assert volume.origin.tolist() == [0.0, 0.0, 0.0]
    shifted = Volume(np.zeros((8, 9)), (0.5, 0.7), (10.0, -4.0))  # origin (y, x) of pixel (0, 0)
    np.testing.assert_allclose(shifted.index_to_world([[2, 3], [0, 0]]), [[11.0, -1.9], [10.0, -4.0]])
    np.testing.assert_allclose(shifted.world_to_index([11.0, -1.9]), [2, 3], atol=1e-12)
    assert shifted.voxel_volume == pytest.approx(0.35)
    kwargs = shifted.napari_geometry()
    assert kwargs["scale"] == (0.5, 0.7) and kwargs["translate"] == (10.0, -4.0)
    assert shifted.canonical() is shifted and shifted.obliquity_degrees == 0.0
    with pytest.raises(ValueError, match="origin"):
        Volume(np.zeros((8, 9)), (0.5, 0.7), (1.0, 2.0, 3.0, 4.0))


def test_2d_world_matches_napari_layer_world():
    """The plane world is napari's 2D world: a point maps to the same pixel in both."""
    from napari import layers as napari_layers

    volume = Volume(np.zeros((20, 30)), (0.5, 0.25), (3.0, 7.0))
    layer = napari_layers.Image(volume.array, **volume.napari_geometry())
    for index in ([0, 0], [5, 9], [19, 29]):
        world = volume.index_to_world(index)
        np.testing.assert_allclose(layer.data_to_world(index), world)


def test_rgb_image_geometry_and_its_labels():
    rgb = Volume(np.zeros((6, 7, 3), np.uint8), spacing=(0.4, 0.3), metadata={"rgb": True})
    assert rgb.is_rgb and rgb.spatial_ndim == 2 and rgb.spatial_shape == (6, 7)
    np.testing.assert_array_equal(rgb.spacing, [0.4, 0.3, 1.0])  # one value per array axis
    np.testing.assert_array_equal(rgb.spatial_spacing, [0.4, 0.3])
    assert rgb.affine.shape == (3, 3) and rgb.voxel_volume == pytest.approx(0.12)
    assert rgb.napari_geometry()["scale"] == (0.4, 0.3)
    assert rgb.canonical() is rgb  # the channel axis is never moved
    labels = rgb.with_array(np.ones((6, 7), np.uint8))
    assert labels.ndim == 2 and not labels.is_rgb and labels.spacing.tolist() == [0.4, 0.3]
    np.testing.assert_allclose(labels.affine, rgb.affine)
    same = rgb.with_array(np.zeros((6, 7, 3), np.uint8))
    assert same.is_rgb
    with pytest.raises(ValueError, match="shape"):
        rgb.with_array(np.zeros((7, 6)))
    with pytest.raises(ValueError, match="RGB"):
        Volume(np.zeros((6, 7, 5)), (0.4, 0.3, 1.0), metadata={"rgb": True})
    three = Volume(np.zeros((6, 7, 3)), spacing=(0.4, 0.3, 1.0), metadata={"rgb": True})
    np.testing.assert_array_equal(three.spacing, rgb.spacing)


def test_2d_volumes_run_through_the_registry():
    from napari_medimg import ops

    y, x = np.mgrid[0:40, 0:50]
    image = Volume(((y - 20) ** 2 + (x - 25) ** 2 < 100).astype(np.float32) * 100, (0.5, 0.5), (2.0, 3.0))
    mask = ops.run("threshold", image, method="otsu")
    assert mask.array.sum() == np.count_nonzero(image.array)
    grown = ops.run("region_growing", image, seeds=[image.index_to_world([20, 25]).tolist()], low=50.0)
    np.testing.assert_array_equal(grown.array != 0, mask.array != 0)
    dilated = ops.run("morphology", mask, operation="dilate", radius_mm=1.0)
    assert dilated.array.sum() > mask.array.sum() and dilated.affine.tolist() == image.affine.tolist()
    resampled = ops.run("resample", image, spacing_mm=1.0)
    assert resampled.shape == (20, 25)
    # the first pixel's outer corner stays where it was
    np.testing.assert_allclose(resampled.index_to_world([-0.5, -0.5]), image.index_to_world([-0.5, -0.5]))


def test_permute_axes_keeps_every_voxel_in_place():
    direction = np.stack([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1)
    volume = Volume(np.arange(60).reshape(3, 4, 5), (2.0, 0.5, 0.75), (4.0, -2.0, 9.0), direction)
    moved = volume.permute_axes((2, 0, 1), flips=(0, 2))
    assert moved.shape == (5, 3, 4)
    for index in [(0, 0, 0), (1, 2, 3), (2, 3, 4)]:
        k, j, i = index
        new = (4 - i, k, 3 - j)
        assert moved.array[new] == volume.array[index]
        np.testing.assert_allclose(moved.index_to_world(new), volume.index_to_world(index))
    np.testing.assert_allclose(moved.canonical().affine, volume.canonical().affine)
    with pytest.raises(ValueError, match="permutation"):
        volume.permute_axes((0, 0, 1))
    with pytest.raises(ValueError, match="3D"):
        Volume(np.zeros((4, 5)), (1.0, 1.0)).permute_axes((1, 0))
