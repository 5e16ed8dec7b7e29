"""``medimg features``: NIfTI and DICOM in, one CSV row per label out, clean errors, no overwrite by default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_medimg.cli import main
from napari_medimg.io.dicom import read_dicom_file
from napari_medimg.io.nifti import write_nifti
from napari_medimg.samples import pydicom_test_file


@pytest.fixture(scope="module")
def phantom_files(small_phantom, tmp_path_factory):
    folder = tmp_path_factory.mktemp("features_cli")
    image = write_nifti(small_phantom.image, folder / "ct.nii.gz")
    labels = write_nifti(small_phantom.lesions, folder / "lesions.nii.gz")
    return image, labels


def test_phantom_lesions_to_csv(phantom_files, small_phantom, tmp_path):
    image, labels = phantom_files
    out = tmp_path / "table.csv"
    assert (
        main(
            [
                "features",
                str(image),
                str(labels),
                "--out",
                str(out),
                "--groups",
                "shape,firstorder,glcm",
                "--bin-width",
                "10",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    truth = small_phantom.lesion_table
    assert table["label"].tolist() == truth["label"].tolist()
    assert (
        table.columns[0] == "label" and "glcm_Contrast" in table.columns and "glrlm_RunVariance" not in table
    )
    np.testing.assert_allclose(
        table["shape_VoxelVolume"], truth["voxel_volume_mm3"], rtol=1e-6
    )  # float32 pixdim
    np.testing.assert_allclose(table["shape_MeshVolume"], truth["volume_mm3"], rtol=0.15)
    # world centroid (LPS) against the analytic centres (the lesion table's LPS world coordinates)
    np.testing.assert_allclose(table["shape_CentroidZ_mm"], truth["centre_z_mm"], atol=1.5)
    hu, lesions = np.asarray(small_phantom.image.array), np.asarray(small_phantom.lesions.array)
    means = [hu[lesions == value].mean() for value in truth["label"]]
    np.testing.assert_allclose(table["firstorder_Mean"], means, rtol=1e-12)


def test_refuses_to_overwrite_and_rejects_unknown_groups(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    out = tmp_path / "table.csv"
    out.write_text("precious")
    assert main(["features", str(image), str(labels), "--out", str(out), "--groups", "shape"]) == 2
    assert out.read_text() == "precious"
    assert "exists" in capsys.readouterr().err
    assert (
        main(["features", str(image), str(labels), "--out", str(tmp_path / "t.csv"), "--groups", "colour"])
        == 2
    )
    assert "unknown feature group" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_dicom_image_with_nifti_labels(tmp_path):
    ct = read_dicom_file(pydicom_test_file("CT_small.dcm"))
    mask = np.zeros(ct.shape, np.uint8)
    mask[..., 40:60, 50:80] = 1
    labels = write_nifti(ct.with_array(mask), tmp_path / "mask.nii.gz")
    out = tmp_path / "ct.csv"
    assert (
        main(
            [
                "features",
                pydicom_test_file("CT_small.dcm"),
                str(labels),
                "--out",
                str(out),
                "--groups",
                "shape,firstorder,ngtdm",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert len(table) == 1 and "shape2D_PixelSurface" in table.columns  # a single slice: 2D shape
    assert table.loc[0, "shape2D_PixelSurface"] == pytest.approx(600 * ct.spacing[1] * ct.spacing[2])
    assert table.loc[0, "firstorder_Mean"] == pytest.approx(float(np.asarray(ct.array)[mask > 0].mean()))
