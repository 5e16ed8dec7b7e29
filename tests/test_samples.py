"""The generated CT phantom and pydicom's bundled real slices."""

import numpy as np
import pytest

from napari_medimg.io.dicom import read_dicom_file
from napari_medimg.samples import TISSUE_LABELS, make_ct_phantom, pydicom_test_file


def test_phantom_geometry_and_dtype(phantom):
    image = phantom.image
    assert image.shape == (64, 256, 256)
    np.testing.assert_allclose(image.spacing, (2.5, 0.7, 0.7))
    assert image.array.dtype == np.int16
    assert image.metadata["units"] == "HU"
    for labels in (phantom.tissues, phantom.lesions):
        assert labels.shape == image.shape
        np.testing.assert_allclose(labels.affine, image.affine)


@pytest.mark.parametrize(
    "tissue, expected_hu", [("lung", -800), ("soft tissue", 40), ("bone", 700), ("liver", 60)]
)
def test_phantom_tissues_have_their_hu(phantom, tissue, expected_hu):
    inside = phantom.tissues.array == TISSUE_LABELS[tissue]
    # away from edges (erode) the median equals the tissue's HU within a few HU of noise
    from scipy import ndimage

    core = ndimage.binary_erosion(inside, iterations=2)
    assert abs(float(np.median(phantom.image.array[core])) - expected_hu) < 3
    assert 8 < float(np.std(phantom.image.array[core])) < 16  # realistic noise, about 12 HU


def test_phantom_lesions_have_known_volume_and_hu(phantom):
    table = phantom.lesion_table
    assert len(table) == 6
    voxel = phantom.lesions.voxel_volume
    for row in table.itertuples():
        mask = phantom.lesions.array == row.label
        assert mask.sum() * voxel == pytest.approx(row.voxel_volume_mm3)
        # the voxelised ground truth is within 4 % of the analytic ellipsoid volume
        assert row.voxel_volume_mm3 == pytest.approx(row.volume_mm3, rel=0.04)
        assert abs(float(np.median(phantom.image.array[mask])) - row.hu) < 12


def test_phantom_anatomy_is_upright_in_patient_space(phantom):
    """Lungs above the liver, the 'upper' nodule above the 'lower' one, the liver on the patient's right
    (LPS −x), the spine posterior; lesion centres are the LPS coordinates napari's cursor shows."""
    tissues, image = phantom.tissues, phantom.image

    def centre(mask):  # LPS mm of a mask's centroid
        return image.index_to_world(np.argwhere(mask).mean(axis=0))

    lung = centre(tissues.array == TISSUE_LABELS["lung"])
    liver = centre(tissues.array == TISSUE_LABELS["liver"])
    spine = centre(tissues.array == TISSUE_LABELS["bone"])
    assert lung[2] > liver[2] + 30  # S: lungs well above the liver
    assert liver[0] < 0  # L: liver on the patient's right
    assert spine[1] > 0  # P: spine posterior
    table = phantom.lesion_table.set_index("name")
    assert (
        table.loc["lung nodule right upper", "centre_z_mm"]
        > table.loc["lung nodule right lower", "centre_z_mm"]
    )
    assert (
        table.loc["lung nodule right upper", "centre_x_mm"] < 0 < table.loc["lung nodule left", "centre_x_mm"]
    )
    for row in phantom.lesion_table.itertuples():
        measured = centre(phantom.lesions.array == row.label)
        np.testing.assert_allclose(measured, [row.centre_x_mm, row.centre_y_mm, row.centre_z_mm], atol=1.0)


def test_phantom_is_deterministic_and_seeded():
    first = make_ct_phantom(shape=(16, 64, 64), spacing=(10.0, 2.8, 2.8), seed=3)
    again = make_ct_phantom(shape=(16, 64, 64), spacing=(10.0, 2.8, 2.8), seed=3)
    other = make_ct_phantom(shape=(16, 64, 64), spacing=(10.0, 2.8, 2.8), seed=4)
    np.testing.assert_array_equal(first.image.array, again.image.array)
    assert not np.array_equal(first.image.array, other.image.array)
    np.testing.assert_array_equal(first.lesions.array, other.lesions.array)


def test_pydicom_ct_small_reads_in_hu_with_spacing():
    volume = read_dicom_file(pydicom_test_file("CT_small.dcm"))
    assert volume.shape == (1, 128, 128)
    np.testing.assert_allclose(volume.spacing[1:], (0.661468, 0.661468))
    assert volume.metadata["modality"] == "CT"
    # RescaleIntercept -1024 applied: air outside the body is near -1000 HU, not near 0
    assert volume.array.min() < -800


def test_pydicom_mr_small_reads_with_spacing():
    volume = read_dicom_file(pydicom_test_file("MR_small.dcm"))
    assert volume.shape == (1, 64, 64)
    np.testing.assert_allclose(volume.spacing[1:], (0.3125, 0.3125))
    assert volume.metadata["modality"] == "MR"
