"""NIfTI-1 ``.hdr``/``.img`` pairs and Analyze 7.5 files: read like a single-file NIfTI, from either file.

Before, ``medimg info scan.hdr`` said "not a DICOM file" and napari did not offer the plugin for a pair.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti
from napari_medimg.io.volumes import read_volume
from napari_medimg.plugin.reader import napari_get_reader

# an oblique, anisotropic grid (i, j, k) -> RAS mm
_AFFINE = np.array(
    [
        [0.0, 0.3, 2.0, -10.0],
        [-1.5, 0.0, 0.1, 20.0],
        [0.0, 1.2, 0.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def voxels():
    return np.random.default_rng(3).integers(-1000, 3000, (7, 5, 4)).astype(np.int16)


@pytest.mark.parametrize("name", ["scan.hdr", "scan.img", "scan.hdr.gz", "scan.img.gz"])
def test_a_nifti_pair_reads_like_the_single_file(tmp_path, voxels, name):
    nib.save(nib.Nifti1Image(voxels, _AFFINE), tmp_path / "single.nii")
    nib.save(nib.Nifti1Pair(voxels, _AFFINE), tmp_path / name.replace(".hdr", ".img"))
    assert len(list(tmp_path.glob("scan.*"))) == 2  # a header file and an image file
    single, pair = read_nifti(tmp_path / "single.nii"), read_volume(tmp_path / name)
    assert np.array_equal(np.asarray(pair.array), np.asarray(single.array))
    assert np.allclose(pair.affine, single.affine)
    assert pair.metadata["series_description"] == "scan"
    assert "warnings" not in pair.metadata


def test_analyze_files_read_with_their_assumed_orientation_stated(tmp_path, voxels, capsys):
    image = nib.AnalyzeImage(voxels, np.diag([2.0, 3.0, 4.0, 1.0]))
    nib.save(image, tmp_path / "old.hdr")
    volume = read_volume(tmp_path / "old.img")
    assert np.array_equal(np.asarray(volume.array), voxels.transpose(2, 1, 0))
    assert np.allclose(volume.spacing, [4.0, 3.0, 2.0])
    # Analyze stores no orientation: in the radiological convention the file's first axis runs from the
    # patient's right to their left, which is +x in LPS (a NIfTI with the same diagonal affine runs to the right)
    assert volume.direction[:, 2] @ np.array([1.0, 0.0, 0.0]) == pytest.approx(1.0)
    nib.save(nib.Nifti1Image(voxels, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "new.nii")
    assert read_volume(tmp_path / "new.nii").direction[:, 2] @ np.array([1.0, 0.0, 0.0]) == pytest.approx(
        -1.0
    )
    assert any("no orientation" in warning for warning in volume.metadata["warnings"])
    assert main(["info", str(tmp_path / "old.hdr"), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert any("left and right" in warning for warning in described["series"][0]["warnings"])


def test_convert_and_features_take_a_pair(tmp_path, voxels, capsys):
    nib.save(nib.Nifti1Pair(voxels, _AFFINE), tmp_path / "scan.img")
    mask = np.zeros(voxels.shape, np.uint8)
    mask[1:6, 1:4, 1:3] = 1
    nib.save(nib.Nifti1Pair(mask, _AFFINE), tmp_path / "mask.hdr")
    assert main(["convert", str(tmp_path / "scan.hdr"), str(tmp_path / "scan.nii.gz")]) == 0
    written = nib.load(tmp_path / "scan.nii.gz")
    assert np.array_equal(np.asarray(written.dataobj), voxels)
    assert np.allclose(written.affine, _AFFINE, atol=1e-5)
    table = tmp_path / "features.csv"
    assert (
        main(["features", str(tmp_path / "scan.img"), str(tmp_path / "mask.img"), "--out", str(table)]) == 0
    )
    assert table.exists()
    capsys.readouterr()


def test_an_image_file_without_its_header_is_one_line(tmp_path, capsys):
    (tmp_path / "lonely.img").write_bytes(bytes(range(256)) * 4)
    assert main(["info", str(tmp_path / "lonely.img")]) == 2
    error = capsys.readouterr().err
    assert "lonely.img" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_napari_claims_a_pair_but_not_a_lonely_img(make_napari_viewer, tmp_path, voxels):
    nib.save(nib.Nifti1Pair(voxels, _AFFINE), tmp_path / "scan.hdr")
    nib.save(nib.Nifti1Image(voxels, _AFFINE), tmp_path / "single.nii")
    (tmp_path / "disk.img").write_bytes(b"\0" * 4096)  # another format's .img: left to other readers
    assert napari_get_reader(str(tmp_path / "disk.img")) is None
    viewer = make_napari_viewer()
    single = viewer.open(str(tmp_path / "single.nii"), plugin="napari-medimg")[0]
    for name in ("scan.hdr", "scan.img"):
        assert napari_get_reader(str(tmp_path / name)) is not None
        layer = viewer.open(str(tmp_path / name), plugin="napari-medimg")[0]
        assert np.array_equal(np.asarray(layer.data), np.asarray(single.data))
        assert np.allclose(layer.affine.affine_matrix, single.affine.affine_matrix)
