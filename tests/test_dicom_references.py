"""Every shared DICOM folder through ``medimg convert`` against its dcm2niix reference (one test per folder).

Compared in world coordinates: both NIfTIs are brought to the closest canonical (RAS) voxel order, then the
shapes (volume axis included) must be equal, every voxel equal, and every corner of the grid within 0.05 mm.
Philips references use dcm2niix's private floating-point scaling: the displayed values are checked exactly
against the reference's stored integers through the files' RescaleSlope/Intercept, and ``--philips-float``
against the reference's scaled values.  Folders without a reference are checked against pydicom.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_medimg.cli import main
from napari_medimg.io.dicom import scan_dicom

pytestmark = pytest.mark.shared_data
TOLERANCE_MM = 0.05


def _dicom(shared_data: Path, folder: str) -> Path:
    return shared_data / "dicom" / folder / "dicom"


def _convert(source: Path, out: Path, *options: str) -> nib.Nifti1Image:
    assert main(["convert", str(source), str(out), *options]) == 0
    return nib.as_closest_canonical(nib.load(out))


def _corners(image) -> np.ndarray:
    shape = image.shape[:3]
    index = np.array(list(itertools.product(*[(0, n - 1) for n in shape])), float)
    return index @ image.affine[:3, :3].T + image.affine[:3, 3]


def _check(ours, reference, exact: bool = True) -> None:
    assert ours.shape == reference.shape
    assert np.abs(_corners(ours) - _corners(reference)).max() < TOLERANCE_MM
    if exact:
        assert np.array_equal(ours.get_fdata(), reference.get_fdata())


def _reference(shared_data: Path, folder: str, name: str):
    return nib.as_closest_canonical(nib.load(shared_data / "dicom" / folder / "reference_dcm2niix" / name))


@pytest.mark.parametrize(
    "folder, reference, shape",
    [
        ("siemens_mosaic_jpeg_lossless", "5.nii", (64, 64, 35)),
        ("siemens_mosaic_jpegls", "7.nii", (64, 64, 35)),
        ("siemens_mosaic_jpeg2000", "9.nii", (64, 64, 35)),
        ("siemens_mosaic_rle", "4.nii", (64, 64, 35)),
        ("siemens_mosaic_epi_5sl_2vol", "EPI_PE=AP_3.nii", (72, 72, 5, 2)),
        ("siemens_mosaic_fmri_hf_oblique", "5_ep2d_Int_HF.nii", (64, 64, 36, 6)),
        ("ge_epi_fmri_classic_10vol", "DCM2NIIX_regression_test_4.nii", (64, 64, 15, 10)),
        (
            "siemens_xa60_enhanced_bold_3vol",
            "phantom_check_MBfactor_TerraX_XA60_2_PRODUCT_ep2d_bold_p3_sms1.nii",
            (64, 10, 64, 3),
        ),
        ("siemens_xa30_t1w_sag_classic", "5001_anat-T1w_acq-tfl.nii.gz", (96, 128, 128)),
        ("siemens_xa30_t1w_sag_enhanced", "5_anat-T1w_acq-tfl.nii", (96, 128, 128)),
    ],
)
def test_folder_reproduces_its_dcm2niix_reference(shared_data, tmp_path, folder, reference, shape):
    ours = _convert(_dicom(shared_data, folder), tmp_path / "out.nii.gz")
    expected = _reference(shared_data, folder, reference)
    assert expected.shape == shape
    _check(ours, expected)
    sidecar = json.loads((tmp_path / "out.json").read_text())
    stem = reference.removesuffix(".gz").removesuffix(".nii")
    theirs = json.loads((shared_data / "dicom" / folder / "reference_dcm2niix" / f"{stem}.json").read_text())
    for key in ("EchoTime", "RepetitionTime", "FlipAngle"):
        if key in theirs:
            assert sidecar[key] == pytest.approx(theirs[key], rel=1e-4), key
    if len(shape) == 4:
        assert sidecar["volumes"] == shape[3] and len(sidecar["volume_info"]) == shape[3]


def test_mosaic_slice_timing_follows_the_written_slice_order(shared_data, tmp_path):
    folder = "siemens_mosaic_fmri_hf_oblique"
    _convert(_dicom(shared_data, folder), tmp_path / "out.nii.gz")
    sidecar = json.loads((tmp_path / "out.json").read_text())
    reference = json.loads(
        (shared_data / "dicom" / folder / "reference_dcm2niix" / "5_ep2d_Int_HF.json").read_text()
    )
    # our k axis runs the other way along the slice normal (H>>F mosaic): same timings, reversed or not
    ours = np.asarray(sidecar["SliceTiming"])
    theirs = np.asarray(reference["SliceTiming"])
    assert np.allclose(ours, theirs, atol=1e-3) or np.allclose(ours[::-1], theirs, atol=1e-3)


def _rescale(folder: Path, label_types: tuple[str, int]) -> tuple[float, float]:
    kind, echo = label_types
    for path in sorted(folder.iterdir()):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        if int(dataset.EchoNumbers) == echo and kind in dataset.ImageType:
            return float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
    raise AssertionError("no such image")


@pytest.mark.parametrize(
    "label, kind, echo",
    [("e1", "M", 1), ("e2", "M", 2), ("e1_ph", "P", 1), ("e2_ph", "P", 2)],
)
def test_philips_classic_magnitude_phase_echoes(shared_data, tmp_path, label, kind, echo):
    folder = "philips_fieldmap_classic_2echo_magphase"
    source = _dicom(shared_data, folder)
    reference = _reference(shared_data, folder, f"2001_WIP_fcMRI_Field_Mapping_cl_{label}.nii.gz")
    # displayed values: exactly the reference's stored integers through this type's RescaleSlope/Intercept
    ours = _convert(source, tmp_path / "shown.nii.gz", "--stack", label)
    _check(ours, reference, exact=False)
    slope, intercept = _rescale(source, (kind, echo))
    stored = np.asarray(reference.dataobj.get_unscaled(), np.float64)
    assert np.allclose(ours.get_fdata(), stored * slope + intercept, rtol=1e-6, atol=1e-3)
    # Philips floating point: the reference's values, up to its float32 header scaling
    floating = _convert(source, tmp_path / "float.nii.gz", "--stack", label, "--philips-float")
    expected = reference.get_fdata()
    assert np.abs(floating.get_fdata() - expected).max() <= 2e-4 * np.abs(expected).max()


def test_philips_enhanced_magnitude_and_field_map(shared_data, tmp_path):
    folder = "philips_enhanced_b0_fieldmap"
    source = _dicom(shared_data, folder)
    magnitude = _convert(source, tmp_path / "m.nii.gz", "--stack", "e1", "--philips-float")
    reference = _reference(shared_data, folder, "Philips_WIP_B0_NS_801_e1.nii")
    _check(magnitude, reference, exact=False)
    assert (
        np.abs(magnitude.get_fdata() - reference.get_fdata()).max()
        <= 1e-5 * np.abs(reference.get_fdata()).max()
    )
    field_map = _convert(source, tmp_path / "fm.nii.gz", "--stack", "fieldmap")
    reference = _reference(shared_data, folder, "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii")
    _check(field_map, reference, exact=False)
    assert (
        np.abs(field_map.get_fdata() - reference.get_fdata()).max()
        <= 1e-3 * np.abs(reference.get_fdata()).max()
    )


def _lps_corner(dataset) -> np.ndarray:
    return np.array([float(v) for v in dataset.ImagePositionPatient])


def test_pydicom_samples_convert_to_pydicom_values_and_positions(shared_data, tmp_path):
    folder = shared_data / "dicom" / "pydicom_samples"
    for name in ("CT_small.dcm", "MR_small.dcm"):
        dataset = pydicom.dcmread(folder / name)
        assert main(["convert", str(folder / name), str(tmp_path / f"{name}.nii.gz")]) == 0
        image = nib.load(tmp_path / f"{name}.nii.gz")
        expected = dataset.pixel_array * float(dataset.get("RescaleSlope", 1)) + float(
            dataset.get("RescaleIntercept", 0)
        )
        assert np.array_equal(image.get_fdata()[:, :, 0].T, expected)
        world = image.affine @ np.array([0, 0, 0, 1.0])
        assert np.abs(world[:3] * [-1, -1, 1] - _lps_corner(dataset)).max() < TOLERANCE_MM
    assert main(["convert", str(folder / "emri_small.dcm"), str(tmp_path / "emri.nii.gz")]) == 0
    emri = pydicom.dcmread(folder / "emri_small.dcm")
    assert np.array_equal(nib.load(tmp_path / "emri.nii.gz").get_fdata().transpose(2, 1, 0), emri.pixel_array)


def test_gantry_tilt_converts_to_the_resampled_orthogonal_grid(shared_data, tmp_path):
    folder = _dicom(shared_data, "siemens_ct_gantry_tilt")
    assert main(["convert", str(folder), str(tmp_path / "tilt.nii.gz")]) == 0
    image = nib.load(tmp_path / "tilt.nii.gz")
    assert image.shape == (512, 512, 4)
    linear = image.affine[:3, :3] / np.linalg.norm(image.affine[:3, :3], axis=0)
    assert np.allclose(linear.T @ linear, np.eye(3), atol=1e-6)  # orthogonal grid
    datasets = sorted(
        (pydicom.dcmread(p) for p in folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2])
    )
    first = image.affine @ np.array([0, 0, 0, 1.0])
    assert np.abs(first[:3] * [-1, -1, 1] - _lps_corner(datasets[0])).max() < TOLERANCE_MM
    # slice 0 is not shifted by the resampling: equal to the lowest file's HU
    hu = datasets[0].pixel_array.astype(float) - 1024
    assert np.allclose(image.get_fdata()[:, :, 0].T, hu, atol=1e-3)
    assert json.loads((tmp_path / "tilt.json").read_text())["gantry_tilt_degrees"] == pytest.approx(
        14.0, abs=0.1
    )


def _frames_in_files(folder: Path) -> set[tuple[str, int | None, int | None]]:
    """(file, frame, tile) of every image the files hold, counted with pydicom (mosaic tiles included)."""
    images = set()
    for path in folder.rglob("*"):
        if not path.is_file() or "reference" in path.parts[-2]:
            continue
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        if "Rows" not in dataset:
            continue
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        if "MOSAIC" in dataset.get("ImageType", []):
            tiles = int(dataset[0x0019, 0x100A].value)
            images |= {(str(path), None, k) for k in range(tiles)}
        else:
            images |= {
                (str(path), f if frames > 1 or "PerFrameFunctionalGroupsSequence" in dataset else None, None)
                for f in range(frames)
            }
    return images


def test_every_image_frame_of_every_shared_series_is_read(shared_data, monkeypatch):
    """Nothing dropped: the images placed (and the pixel frames decoded) are exactly the frames in the files."""
    from napari_medimg.io.dicom import pixels, read_series

    decoded = []
    original = pixels.decode_image

    def counting(path, frame, fmt):
        decoded.append((str(path), frame))
        return original(path, frame, fmt)

    monkeypatch.setattr(pixels, "decode_image", counting)
    for folder in sorted(p for p in (shared_data / "dicom").iterdir() if p.is_dir()):
        expected = _frames_in_files(folder)
        scan = scan_dicom(folder)
        assert not scan.skipped, folder.name
        placed = {
            (f.path, f.frame, None if f.region is None else f.region) for s in scan.series for f in s.frames
        }
        assert len(placed) == len(expected), folder.name
        decoded.clear()
        for series in scan.series:
            read_series(series, lazy=False)
        units = {(path, frame) for path, frame, _ in expected}
        # every stored image decoded (the raw int16 path reads files directly and is counted by the placement)
        assert set(decoded) <= units, folder.name
        assert {(f.path, f.frame) for s in scan.series for f in s.frames} == units, folder.name
