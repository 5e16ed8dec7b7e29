"""GE and Philips private diffusion values: b-value and gradient direction to patient LPS and to the ``.bvec``.

No shared series is a GE or Philips DWI, so these tests take copies of the real GE fMRI and Philips field-map
series (../shared/data/dicom, copied to a temporary folder, never into the repository), make them a 3-volume
DWI by setting the vendors' private elements, and check the reader against the vendor conventions documented
in ``napari_medimg.io.dicom.diffusion`` (dcm2niix's ``geCorrectBvecs`` / ``siemensPhilipsCorrectBvecs``).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_medimg.cli import main
from napari_medimg.io import read_volume
from napari_medimg.io.dicom.diffusion import ge_gradient_lps, philips_gradient_lps
from napari_medimg.io.dicom.header import frames_of_file

REF_GE = "DCM2NIIX_regression_test_4.nii"


def _fsl_to_ras(bvec: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (RAS) directions of FSL-convention b-vectors (3 x N) of a NIfTI with this affine."""
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    vectors = np.array(bvec, float)
    if np.linalg.det(affine[:3, :3]) > 0:  # FSL: x is flipped for a positive determinant
        vectors[0] = -vectors[0]
    return axes @ vectors


#: (b-value, stored gradient) of the three volumes made from the first three of the series
DWI = [(0.0, (0.0, 0.0, 0.0)), (1000.0, (0.6, 0.8, 0.0)), (1000.0, (0.0, -0.3, 0.4))]


def _ge_dwi(shared: Path, out: Path) -> Path:
    files = sorted((shared / "dicom" / "ge_epi_fmri_classic_10vol" / "dicom").iterdir())
    out.mkdir()
    for path in files[:45]:  # volumes 0..2: volume = (InstanceNumber - 1) // 15
        dataset = pydicom.dcmread(path)
        b_value, gradient = DWI[(int(dataset.InstanceNumber) - 1) // 15]
        dataset.private_block(0x0043, "GEMS_PARM_01")[0x39].value = [int(b_value), 8, 0, 0]
        block = dataset.private_block(0x0019, "GEMS_ACQU_01", create=True)
        for offset, value in zip((0xBB, 0xBC, 0xBD), gradient, strict=True):
            block.add_new(offset, "DS", f"{value:.6f}")
        dataset.save_as(out / path.name)
    return out


@pytest.mark.shared_data
def test_ge_private_gradients_follow_dcm2niix(shared_data, tmp_path, capsys):
    folder = _ge_dwi(shared_data, tmp_path / "ge")
    volume = read_volume(folder, lazy=False)
    assert volume.shape == (3, 15, 64, 64)
    info = volume.metadata["volume_info"]
    # axial, COL phase encoding, IOP (1,0,0,0,1,0): LPS = -x r - y c + z n
    assert "b_value" not in info[0] or info[0]["b_value"] == 0
    assert info[1]["b_value"] == 1000.0 and np.allclose(info[1]["b_vector_lps"], [-0.6, -0.8, 0.0])
    assert info[2]["b_value"] == pytest.approx(250.0)  # |g| = 0.5: GE's b-value scales by |g|^2
    assert np.allclose(info[2]["b_vector_lps"], [0.0, 0.6, 0.8])
    for path in sorted(folder.iterdir())[15:45:14]:  # the byte-level parser and pydicom read the same values
        (fast,), (slow,) = frames_of_file(path, fast=True)[1], frames_of_file(path, fast=False)[1]
        assert fast.b_value == slow.b_value and np.array_equal(fast.b_vector, slow.b_vector)
    out = tmp_path / "dwi.nii"
    assert main(["convert", str(folder), str(out)]) == 0
    assert "no .bvec" not in capsys.readouterr().out
    assert (tmp_path / "dwi.bval").read_text().split() == ["0", "1000", "250"]
    ours = _fsl_to_ras(np.loadtxt(tmp_path / "dwi.bvec"), nib.load(out).affine)
    # dcm2niix's geCorrectBvecs writes (-x, y, z) of the unit gradient for this case, in the FSL convention of
    # its own NIfTI (LAS, rows flipped; ours is LPS): the same directions in the world
    reference = nib.load(shared_data / "dicom" / "ge_epi_fmri_classic_10vol" / "reference_dcm2niix" / REF_GE)
    dcm2niix = np.array([[0, 0, 0], [-0.6, 0.8, 0.0], [0.0, -0.6, 0.8]]).T
    assert np.allclose(ours, _fsl_to_ras(dcm2niix, reference.affine), atol=1e-6)


def _philips_dwi(shared: Path, out: Path) -> tuple[Path, np.ndarray]:
    files = sorted((shared / "dicom" / "philips_fieldmap_classic_2echo_magphase" / "dicom").iterdir())
    headers = [(path, pydicom.dcmread(path, stop_before_pixels=True)) for path in files]
    magnitude = [
        path for path, h in headers if int(h.EchoNumbers) == 1 and "M" in [str(v) for v in h.ImageType]
    ]
    out.mkdir()
    orientation = None
    for index, (b_value, gradient) in enumerate(DWI):
        for path in magnitude:
            dataset = pydicom.dcmread(path)
            orientation = np.asarray(dataset.ImageOrientationPatient, float)
            for keyword in ("DiffusionBValue", "DiffusionGradientOrientation"):  # private values only
                if keyword in dataset:
                    delattr(dataset, keyword)
            dataset.private_block(0x2001, "Philips Imaging DD 001")[0x03].value = b_value
            block = dataset.private_block(0x2005, "Philips MR Imaging DD 001")
            for offset, value in zip((0xB0, 0xB1, 0xB2), gradient, strict=True):
                block[offset].value = value
            dataset.InstanceNumber = int(dataset.InstanceNumber) + 1000 * index
            dataset.TemporalPositionIdentifier = index + 1
            dataset.SOPInstanceUID = pydicom.uid.generate_uid()
            dataset.save_as(out / f"{index}_{path.name}")
    return out, orientation


@pytest.mark.shared_data
def test_philips_private_gradients_are_patient_lps(shared_data, tmp_path):
    folder, orientation = _philips_dwi(shared_data, tmp_path / "philips")
    volume = read_volume(folder, lazy=False)
    assert volume.shape == (3, 53, 80, 80)
    info = volume.metadata["volume_info"]
    assert [entry.get("b_value", 0.0) for entry in info] == [0.0, 1000.0, 1000.0]
    # (RL, AP, FH) are the +x, +y, +z LPS components: used as they are (unit length)
    assert np.allclose(info[1]["b_vector_lps"], [0.6, 0.8, 0.0])
    assert np.allclose(info[2]["b_vector_lps"], [0.0, -0.6, 0.8])
    for path in sorted(folder.iterdir())[50:160:53]:  # the byte-level parser and pydicom read the same values
        (fast,), (slow,) = frames_of_file(path, fast=True)[1], frames_of_file(path, fast=False)[1]
        assert fast.b_value == slow.b_value and np.array_equal(fast.b_vector, slow.b_vector)
    out = tmp_path / "dwi.nii"
    assert main(["convert", str(folder), str(out), "--philips-float"]) == 0
    ours = _fsl_to_ras(np.loadtxt(tmp_path / "dwi.bvec"), nib.load(out).affine)
    # dcm2niix (siemensPhilipsCorrectBvecs) writes (v.r, -v.c, v.n) with r, c the IOP directions (its NIfTI
    # flips the rows, a negative determinant): the same directions in the world as ours
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    reference_affine = np.eye(4)
    reference_affine[:3, :3] = np.diag([-1, -1, 1]) @ np.column_stack([row, -col, normal])  # LPS -> RAS
    for index, (_, gradient) in enumerate(DWI[1:], start=1):
        v = np.asarray(gradient) / np.linalg.norm(gradient)
        dcm2niix = np.array([[v @ row], [-(v @ col)], [v @ normal]])
        assert np.allclose(ours[:, index : index + 1], _fsl_to_ras(dcm2niix, reference_affine), atol=1e-5)


def test_ge_rule_by_slice_orientation_and_phase_direction():
    axial, sagittal, coronal = [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1]
    g = [0.0, 0.6, 0.8]
    assert np.allclose(ge_gradient_lps(g, axial)[0], [0.0, -0.6, 0.8])  # -x r - y c + z n
    normal = np.cross(sagittal[:3], sagittal[3:])
    assert np.allclose(ge_gradient_lps(g, sagittal)[0], 0.6 * np.array(sagittal[3:]) - 0.8 * normal)
    normal = np.cross(coronal[:3], coronal[3:])
    assert np.allclose(ge_gradient_lps(g, coronal)[0], 0.6 * np.array(coronal[3:]) + 0.8 * normal)
    # ROW phase encoding: (x, y) -> (y, -x) first (dcm2niix's swizzle)
    assert np.allclose(ge_gradient_lps([0.6, 0.8, 0.0], axial, "ROW")[0], [-0.8, 0.6, 0.0])
    vector, length = ge_gradient_lps([0, 0, 0], axial)
    assert length == 0 and not vector.any()
    assert ge_gradient_lps([np.nan, 0, 1], axial) is None
    assert np.allclose(philips_gradient_lps([0, 3, 4]), [0, 0.6, 0.8])
    assert philips_gradient_lps([1, 2]) is None
