"""DICOM series reading: geometry against dcm2niix references, enhanced multi-frame, broken series, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from scipy import ndimage

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import _raw_frame, read_dicom, read_dicom_file, read_series, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.errors import (
    CorruptFileError,
    GeometryError,
    MedImgReadError,
    MissingDecoderError,
    NoSeriesError,
    NotAnImageError,
)
from napari_medimg.io.nifti import write_nifti

DICOM = "dicom"


def _canonical(path):
    image = nib.as_closest_canonical(nib.load(os.fspath(path)))
    return image.affine, np.asarray(image.get_fdata(dtype=np.float64))


def _ours_canonical(volume: Volume, tmp_path: Path, name: str):
    path = tmp_path / f"{name}.nii.gz"
    write_nifti(volume, path)
    return _canonical(path)


# ---- real series against dcm2niix -------------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "folder, reference",
    [
        ("siemens_xa30_t1w_sag_classic", "5001_anat-T1w_acq-tfl.nii.gz"),
        ("siemens_xa30_t1w_sag_enhanced", "5_anat-T1w_acq-tfl.nii"),
    ],
)
def test_siemens_series_match_dcm2niix_voxel_exact(shared_data, tmp_path, folder, reference):
    volumes = read_dicom(shared_data / DICOM / folder / "dicom")
    assert len(volumes) == 1
    volume = volumes[0]
    assert volume.shape == (96, 128, 128) and volume.array.dtype == np.int16
    assert volume.metadata["orientation"][0] in "LR"  # sagittal: slices run along patient x
    ours_affine, ours = _ours_canonical(volume, tmp_path, folder)
    ref_affine, ref = _canonical(shared_data / DICOM / folder / "reference_dcm2niix" / reference)
    assert ours.shape == ref.shape
    assert np.array_equal(ours, ref)  # voxel-exact in a common orientation
    # spacing/direction (mm per voxel) within 1e-3 mm
    assert np.allclose(ours_affine[:3, :3], ref_affine[:3, :3], atol=1e-3)
    # dcm2niix anchors its grid on the slice at the lowest x; that voxel sits at the same world point in both
    lowest_x_index = np.array([0, 0, 0, 1.0])
    ours_world, ref_world = ours_affine @ lowest_x_index, ref_affine @ lowest_x_index
    far = np.array([ours.shape[0] - 1, 0, 0, 1.0])
    ours_far, ref_far = ours_affine @ far, ref_affine @ far
    assert min(np.abs(ours_world - ref_world).max(), np.abs(ours_far - ref_far).max()) < 1e-3
    # at the other end dcm2niix extrapolates with its rounded step (2.000107 mm for the classic series);
    # both grids stay within 0.011 mm everywhere
    assert max(np.abs(ours_world - ref_world).max(), np.abs(ours_far - ref_far).max()) < 0.011


@pytest.mark.shared_data
def test_classic_affine_reproduces_every_image_position(shared_data):
    folder = shared_data / DICOM / "siemens_xa30_t1w_sag_classic" / "dicom"
    scan = scan_dicom(folder)
    (series,) = scan.series
    volume = read_series(series)
    files = sorted(folder.iterdir())
    positions = np.array(
        [[float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient] for f in files]
    )
    predicted = volume.index_to_world(np.array([[k, 0, 0] for k in range(96)]))
    # every DICOM IPP is on our grid within 1e-3 mm (the grid is not read from file names or instance numbers)
    distances = np.min(np.linalg.norm(positions[:, None, :] - predicted[None, :, :], axis=2), axis=1)
    assert distances.max() < 1e-3
    assert "ImagePositionPatient projected on the slice normal" in volume.metadata["geometry_source"]
    assert volume.metadata["spacing"] == [2.0, 2.0, 2.0]
    # the files' display window (centre 21, width 53 on the first slice) shows only background noise of a 0..2700 image:
    # replaced by the percentile range, and said so
    assert volume.metadata["window_width"] > 500
    assert any("display window (centre" in w for w in volume.metadata["warnings"])


@pytest.mark.shared_data
@pytest.mark.parametrize("philips_float", [True, False])
def test_philips_magnitude_and_field_map_match_their_references(shared_data, tmp_path, philips_float):
    folder = shared_data / DICOM / "philips_enhanced_b0_fieldmap"
    volumes = read_dicom(folder / "dicom", philips_float=philips_float)
    assert [v.metadata["series_description"] for v in volumes] == ["B0 NS [e1]", "B0 NS [fieldmap]"]
    assert [v.shape for v in volumes] == [(32, 64, 64), (32, 64, 64)]
    assert volumes[1].metadata["units"] == "Hz"
    references = ["Philips_WIP_B0_NS_801_e1.nii", "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii"]
    for index, (volume, reference) in enumerate(zip(volumes, references, strict=False)):
        ours_affine, ours = _ours_canonical(volume, tmp_path, f"philips{index}")
        ref_affine, ref = _canonical(folder / "reference_dcm2niix" / reference)
        assert np.allclose(ours_affine, ref_affine, atol=1e-3)
        if index == 0 and not philips_float:
            # displayed values (RescaleSlope 1.27985) vs dcm2niix's Philips floating point (1 / ScaleSlope)
            ratio = 1.27985347985347 * 8.448640073766e-06
            assert np.allclose(ours, ref * ratio, rtol=1e-5, atol=1e-3)
            continue
        # within 1e-3 of the value range (the reference stores its scale slope as float32)
        assert np.abs(ours - ref).max() <= 1e-3 * np.abs(ref).max()
    field_map = np.asarray(volumes[1].array)
    assert field_map.min() >= -500.0 and field_map.max() <= 500.0


@pytest.mark.shared_data
def test_gantry_tilt_is_detected_and_resampled_to_an_orthogonal_grid(shared_data):
    folder = shared_data / DICOM / "siemens_ct_gantry_tilt" / "dicom"
    (volume,) = read_dicom(folder)
    meta = volume.metadata
    assert abs(meta["gantry_tilt_degrees"] - 14.0) < 0.1
    assert any("Gantry tilt" in w and "resampled" in w for w in meta["warnings"])
    assert "resampled to an orthogonal grid" in meta["geometry_source"]
    assert np.allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-9)  # orthogonal grid
    assert abs(volume.spacing[0] - 4.8515) < 1e-3  # 5 mm table steps projected on the slice normal
    # independent check in world coordinates: every output voxel equals the sheared source image sampled
    # (bilinearly) at the same LPS point
    files = sorted(folder.iterdir())
    datasets = [pydicom.dcmread(f) for f in files]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    raw = np.stack([d.pixel_array.astype(float) - 1024 for d in datasets])
    first, last = (np.array([float(v) for v in d.ImagePositionPatient]) for d in (datasets[0], datasets[-1]))
    sheared = np.eye(4)
    sheared[:3, 0] = (last - first) / 3
    sheared[:3, 1] = volume.direction[:, 1] * volume.spacing[1]
    sheared[:3, 2] = volume.direction[:, 2] * volume.spacing[2]
    sheared[:3, 3] = first
    rng = np.random.default_rng(0)
    index = np.c_[rng.integers(0, 4, 200), rng.integers(60, 450, 200), rng.integers(60, 450, 200)].astype(
        float
    )
    world = volume.index_to_world(index)
    source_index = (np.c_[world, np.ones(len(world))] @ np.linalg.inv(sheared).T)[:, :3]
    assert np.allclose(source_index[:, 0], index[:, 0], atol=1e-6)
    expected = ndimage.map_coordinates(raw, source_index.T, order=1, mode="nearest")
    got = np.asarray(volume.array)[tuple(index.astype(int).T)]
    assert np.allclose(got, expected, atol=1e-2)


@pytest.mark.shared_data
def test_raw_fast_path_equals_pydicom_decoding(shared_data):
    """Every stored image kind (raw uncompressed, RLE, JPEG Lossless, JPEG-LS, JPEG 2000, mosaic tiles, enhanced
    frames) decodes to what pydicom decodes, cut to the tile for a mosaic."""
    checked, syntaxes = 0, set()
    for series in (
        s for folder in (shared_data / DICOM).iterdir() if folder.is_dir() for s in scan_dicom(folder).series
    ):
        for frame in series.frames[:5]:
            fmt = frame.fmt
            plain = fmt.transfer_syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
            if plain and (not fmt.signed or fmt.bits_stored == fmt.bits_allocated):
                assert fmt.pixel_offset is not None  # the raw path is used wherever it applies
            expected = pydicom.pixels.pixel_array(frame.path, index=frame.frame)
            if frame.region is not None:
                row, col, rows, cols = frame.region
                expected = expected[row : row + rows, col : col + cols]
            assert np.array_equal(_raw_frame(frame), expected)
            syntaxes.add(fmt.transfer_syntax)
            checked += 1
    assert checked >= 60
    assert {
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
    } <= syntaxes


@pytest.mark.shared_data
def test_pydicom_samples_and_metadata_are_phi_free(shared_data):
    ct = read_dicom_file(shared_data / DICOM / "pydicom_samples" / "CT_small.dcm")
    assert ct.shape == (1, 128, 128) and ct.array.dtype == np.int16
    dataset = pydicom.dcmread(shared_data / DICOM / "pydicom_samples" / "CT_small.dcm")
    assert np.array_equal(ct.array[0], dataset.pixel_array.astype(np.int32) - 1024)
    assert ct.spacing.tolist() == pytest.approx([5.0, 0.661468, 0.661468])
    assert ct.metadata["window_presets"]["lung"] == [-600.0, 1500.0]
    text = json.dumps(ct.metadata)
    for value in (str(dataset.PatientName), str(dataset.PatientID)):
        assert value and value not in text
    emri = read_dicom(shared_data / DICOM / "pydicom_samples" / "emri_small.dcm")[0]
    assert emri.shape == (10, 64, 64)
    assert any("no patient position" in w for w in emri.metadata["warnings"])


# ---- synthetic series: broken geometry ---------------------------------------------------------------------------
def _phantom_series(folder: Path, shape=(10, 24, 20), spacing=(2.5, 0.8, 0.9), direction=None) -> Volume:
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 1500, size=shape).astype(np.int16)
    volume = Volume(
        array,
        spacing,
        (-20.0, 30.0, 55.0),
        np.eye(3)[:, ::-1] if direction is None else direction,
        {"modality": "CT"},
    )
    template = Dataset()
    template.PatientName, template.PatientID, template.PatientBirthDate = "Doe^Jane", "PID-777", "19700101"
    write_dicom_series(volume, folder, template=template, series_description="synthetic CT")
    return volume


def _files(folder: Path) -> list[Path]:
    """The DICOM files of a written series (not the hidden output marker)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _edit(path: Path, **values):
    dataset = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path)


def test_synthetic_series_round_trip_order_independent_and_phi_free(tmp_path):
    rotation = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]  # oblique
    volume = _phantom_series(tmp_path / "s", direction=rotation)
    files = _files(tmp_path / "s")
    for index, path in enumerate(files):  # scramble names and instance numbers: order must come from IPP
        _edit(path, InstanceNumber=(index * 7) % len(files) + 1)
        path.rename(path.with_name(f"x{(index * 3) % len(files):02d}_{index}.dcm"))
    (read,) = read_dicom(tmp_path / "s")
    assert read.shape == volume.shape and read.array.dtype == np.int16
    sign = 1 if np.linalg.det(rotation) < 0 else -1  # sorting along row x column may reverse the stack
    array = volume.array if sign == 1 else volume.array[::-1]
    assert np.array_equal(read.array, array)
    corners = np.array([[0, 0, 0], [9, 23, 19], [4, 10, 3]])
    expected = volume.index_to_world(corners if sign == 1 else corners * [-1, 1, 1] + [9, 0, 0])
    assert np.allclose(read.index_to_world(corners), expected, atol=1e-4)
    assert read.metadata["warnings"] == []
    text = json.dumps(read.metadata)
    assert "Doe" not in text and "PID-777" not in text and "1970" not in text
    assert read.metadata["series_description"] == "synthetic CT"


def test_missing_slices_are_reported_and_filled_at_true_positions(tmp_path):
    volume = _phantom_series(tmp_path / "s")
    files = _files(tmp_path / "s")
    files[4].unlink()
    files[5].unlink()
    (read,) = read_dicom(tmp_path / "s")
    assert read.shape == volume.shape
    warning = " ".join(read.metadata["warnings"])
    assert "2 slice(s) are missing" in warning
    keep = [0, 1, 2, 3, 6, 7, 8, 9]
    assert np.array_equal(read.array[keep], volume.array[keep])
    assert np.all(read.array[4:6] == read.array.min())
    assert np.allclose(read.affine, volume.affine, atol=1e-5)


@pytest.mark.parametrize("keep", [[0, 1, 3], [0, 2, 3], [0, 1, 3, 5, 6], [0, 2, 4, 5, 6, 7]])
def test_a_gap_among_few_slices_is_filled_where_the_median_step_falls_between_two_steps(tmp_path, keep):
    """Three slices with one missing have steps of 1 and 2 slice spacings: their median (1.5) is neither, so the
    volume was spread at 1.5 spacings, slices off their true positions, instead of filled."""
    volume = _phantom_series(tmp_path / "s")
    for index, path in enumerate(_files(tmp_path / "s")):
        if index not in keep:
            path.unlink()
    (read,) = read_dicom(tmp_path / "s")
    assert read.shape[0] == keep[-1] + 1 and np.allclose(read.affine, volume.affine, atol=1e-5)
    assert np.array_equal(read.array[keep], volume.array[keep])
    assert not any("uneven" in w for w in read.metadata["warnings"])


def test_duplicates_uneven_spacing_and_mixed_sizes_are_reported(tmp_path):
    _phantom_series(tmp_path / "dup")
    files = _files(tmp_path / "dup")
    shutil.copy(files[3], tmp_path / "dup" / "copy.dcm")
    _edit(tmp_path / "dup" / "copy.dcm", SOPInstanceUID=pydicom.uid.generate_uid(), InstanceNumber=99)
    (read,) = read_dicom(tmp_path / "dup")
    assert read.shape[0] == 10 and any("duplicate" in w for w in read.metadata["warnings"])

    _phantom_series(tmp_path / "uneven")
    files = _files(tmp_path / "uneven")
    position = pydicom.dcmread(files[5]).ImagePositionPatient
    _edit(files[5], ImagePositionPatient=[position[0], position[1], float(position[2]) + 0.8])
    (read,) = read_dicom(tmp_path / "uneven")
    warning = " ".join(read.metadata["warnings"])
    assert "uneven" in warning and "0.800 mm" in warning

    volume = _phantom_series(tmp_path / "mixed")
    other = _phantom_series(tmp_path / "other", shape=(4, 16, 16))
    uid = pydicom.dcmread(_files(tmp_path / "mixed")[0]).SeriesInstanceUID
    for path in _files(tmp_path / "other"):
        _edit(path, SeriesInstanceUID=uid)
        path.rename(tmp_path / "mixed" / f"other_{path.name}")
    volumes = read_dicom(tmp_path / "mixed")
    assert sorted(v.shape for v in volumes) == sorted([volume.shape, other.shape])
    assert all(any("split into separate volumes" in w for w in v.metadata["warnings"]) for v in volumes)


def test_synthetic_gantry_tilt_resampled_keeps_world_positions(tmp_path):
    volume = _phantom_series(tmp_path / "tilt", shape=(6, 40, 40), spacing=(3.0, 1.0, 1.0))
    files = _files(tmp_path / "tilt")
    for path in files:  # shear: each slice moves 0.5 mm along +y (posterior) per 3 mm along z
        dataset = pydicom.dcmread(path)
        position = [float(v) for v in dataset.ImagePositionPatient]
        k = int(dataset.InstanceNumber) - 1
        _edit(path, ImagePositionPatient=[position[0], position[1] + 0.5 * k, position[2]])
    (read,) = read_dicom(tmp_path / "tilt")
    assert abs(read.metadata["gantry_tilt_degrees"] - np.degrees(np.arctan(0.5 / 3.0))) < 1e-3
    assert read.array.dtype == np.float32
    assert np.allclose(read.direction, volume.direction)
    # slice 2 moved 1 mm = exactly one row: output row j equals source row j - 1
    assert np.allclose(read.array[2, 1:], volume.array[2, :-1])
    assert np.allclose(read.array[0], volume.array[0])


def test_lazy_and_eager_reads_agree_with_one_chunk_per_slice(tmp_path):
    _phantom_series(tmp_path / "s")
    (series,) = scan_dicom(tmp_path / "s").series
    eager = read_series(series, lazy=False)
    calls = []
    lazy = read_series(series, lazy=True, progress=lambda d, t: calls.append((d, t)))
    assert lazy.metadata["lazy"] and lazy.array.chunks[0] == (1,) * 10
    assert np.array_equal(np.asarray(lazy.array[3]), eager.array[3])
    assert np.array_equal(lazy.array.compute(), eager.array)
    steps = []
    read_series(series, lazy=False, progress=lambda d, t: steps.append((d, t)))
    assert steps[-1] == (10, 10) and len(steps) == 10


# ---- bad input ---------------------------------------------------------------------------------------------------
def _non_image(path: Path, sop_class, modality):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    dataset.Modality, dataset.SeriesInstanceUID = modality, pydicom.uid.generate_uid()
    dataset.save_as(path, enforce_file_format=True)


def test_bad_input_raises_clear_errors_of_one_hierarchy(tmp_path, monkeypatch):
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty"):
        read_dicom(tmp_path / "empty.dcm")
    (tmp_path / "random.dcm").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MedImgReadError):
        read_dicom(tmp_path / "random.dcm")
    _phantom_series(tmp_path / "s", shape=(2, 64, 64))
    good = _files(tmp_path / "s")[0]
    (tmp_path / "truncated.dcm").write_bytes(good.read_bytes()[:-3000])
    with pytest.raises(CorruptFileError, match="truncated"):
        read_dicom(tmp_path / "truncated.dcm")
    _non_image(tmp_path / "sr.dcm", pydicom.uid.BasicTextSRStorage, "SR")
    with pytest.raises(NotAnImageError, match="without pixel data"):
        read_dicom(tmp_path / "sr.dcm")
    _non_image(tmp_path / "rt.dcm", pydicom.uid.RTStructureSetStorage, "RTSTRUCT")
    with pytest.raises(NotAnImageError, match="RT Structure Set"):
        read_dicom(tmp_path / "rt.dcm")
    compressed = pydicom.dcmread(good)
    compressed.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    compressed.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
    compressed["PixelData"].VR = "OB"
    compressed.save_as(tmp_path / "j2k.dcm")
    # decoders are installed with the package: a broken JPEG 2000 stream is corrupt data, not a missing decoder
    with pytest.raises(CorruptFileError, match="compressed frame declares 0 x 0 pixels"):
        read_dicom(tmp_path / "j2k.dcm")
    monkeypatch.setattr("napari_medimg.io.dicom.pixels._decoder_available", lambda syntax: False)
    with pytest.raises(MissingDecoderError, match="pip install pylibjpeg"):
        read_dicom(tmp_path / "j2k.dcm")
    monkeypatch.undo()
    with pytest.raises(NoSeriesError):
        read_dicom(tmp_path / "does-not-exist")
    (tmp_path / "none").mkdir()
    with pytest.raises(NoSeriesError):
        read_dicom(tmp_path / "none")
    bad_orientation = tmp_path / "badori.dcm"
    shutil.copy(good, bad_orientation)
    _edit(bad_orientation, ImageOrientationPatient=[1, 0, 0, 1, 0, 0])
    with pytest.raises(GeometryError):
        read_dicom(bad_orientation)


def test_folder_with_broken_files_reads_the_rest_and_lists_what_was_skipped(tmp_path):
    volume = _phantom_series(tmp_path / "s")
    (tmp_path / "s" / "broken.dcm").write_bytes(b"DICM" * 10)
    _non_image(tmp_path / "s" / "report.dcm", pydicom.uid.BasicTextSRStorage, "SR")
    scan = scan_dicom(tmp_path / "s")
    assert len(scan.series) == 1 and scan.series[0].shape == volume.shape
    assert sorted(name for name, _ in scan.skipped) == ["broken.dcm", "report.dcm"]


def _same_record(a, b) -> None:
    for name, ours in vars(a).items():
        theirs = getattr(b, name)
        if isinstance(ours, np.ndarray) or isinstance(theirs, np.ndarray):
            assert (ours is None) == (theirs is None) and (ours is None or np.allclose(ours, theirs)), name
        elif isinstance(ours, dict):
            assert ours.keys() == theirs.keys(), name
            for key in ours:
                assert (
                    np.allclose(ours[key], theirs[key])
                    if isinstance(ours[key], float)
                    else ours[key] == theirs[key]
                )
        else:
            assert ours == theirs, name


@pytest.mark.shared_data
def test_fast_header_parser_agrees_with_pydicom_on_real_files(shared_data):
    """The byte-level header parser and pydicom give the same final records (every field) on every real file."""
    from napari_medimg.io._fastheader import parse_header
    from napari_medimg.io.dicom.header import frames_of_file

    parsed = declined = 0
    root = shared_data / DICOM
    for path in sorted([*root.glob("*/dicom/*"), *root.glob("pydicom_samples/*.dcm")]):
        with open(path, "rb") as handle:
            fast = parse_header(handle, path.stat().st_size)
        if fast is None:  # enhanced multi-frame files go through pydicom
            declined += 1
            continue
        parsed += 1
        fast_header, fast_frames = frames_of_file(path, fast=True)
        slow_header, slow_frames = frames_of_file(path, fast=False)
        assert fast_header == slow_header
        assert len(fast_frames) == len(slow_frames)
        for ours, theirs in zip(fast_frames, slow_frames, strict=True):
            _same_record(ours, theirs)
    assert parsed >= 400 and declined == 6  # the 6 enhanced files; the 4 compressed mosaics are parsed


def test_two_echoes_in_one_series_become_two_volumes(tmp_path):
    first = _phantom_series(tmp_path / "e1", shape=(5, 12, 12))
    _phantom_series(tmp_path / "e2", shape=(5, 12, 12))
    uid = pydicom.dcmread(_files(tmp_path / "e1")[0]).SeriesInstanceUID
    for echo, folder in ((1, tmp_path / "e1"), (2, tmp_path / "e2")):
        for path in _files(folder):
            _edit(path, SeriesInstanceUID=uid, EchoNumbers=echo, Modality="MR")
            if echo == 2:
                path.rename(tmp_path / "e1" / f"echo2_{path.name}")
    volumes = read_dicom(tmp_path / "e1")
    assert [v.metadata["series_description"] for v in volumes] == [
        "synthetic CT [e1]",
        "synthetic CT [e2]",
    ]
    assert np.array_equal(volumes[0].array, first.array)
    assert all(v.shape == (5, 12, 12) and v.metadata["warnings"] == [] for v in volumes)


def test_pydicom_pixel_path_in_threads_keeps_values_and_warning_filters(tmp_path):
    import warnings

    volume = _phantom_series(tmp_path / "s", shape=(12, 16, 16))
    for path in _files(tmp_path / "s"):  # 12-bit signed: no raw fast path, pydicom decodes (sign extension)
        _edit(path, BitsStored=12, HighBit=11)
    (series,) = scan_dicom(tmp_path / "s").series
    assert all(frame.fmt.pixel_offset is None for frame in series.frames)
    before = list(warnings.filters)
    read = read_series(series, lazy=False)
    assert warnings.filters == before
    assert np.array_equal(read.array, volume.array)


@pytest.mark.shared_data
def test_impossible_frame_counts_are_refused_quickly(tmp_path, shared_data):
    dataset = pydicom.dcmread(shared_data / DICOM / "pydicom_samples" / "CT_small.dcm")
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit  # compressed: size cannot be checked
    dataset.NumberOfFrames = 10**9
    dataset.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xd9"])
    dataset["PixelData"].VR = "OB"
    dataset.save_as(tmp_path / "frames.dcm")
    with pytest.raises(CorruptFileError, match="claims 1000000000 frames"):
        read_dicom(tmp_path / "frames.dcm")


@pytest.mark.shared_data
def test_csa_reader_agrees_with_nibabel_on_every_shared_mosaic(shared_data):
    import warnings

    from napari_medimg.io.dicom.mosaic import CSA_NAMES, read_csa2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns on import
        from nibabel.nicom import csareader
    checked = 0
    for path in sorted((shared_data / DICOM).glob("siemens_mosaic*/dicom/*")):
        raw = (
            pydicom.dcmread(path, stop_before_pixels=True)
            .get_private_item(0x29, 0x10, "SIEMENS CSA HEADER")
            .value
        )
        theirs = {k: v["items"] for k, v in csareader.read(raw)["tags"].items() if k in CSA_NAMES}
        assert read_csa2(raw) == theirs and theirs["SliceNormalVector"]
        checked += 1
    assert checked == 12


@pytest.mark.shared_data
def test_uncompressed_series_are_scanned_and_read_without_importing_pydicom(shared_data):
    # pydicom imports its decoder plugins (gdcm, pylibjpeg, requests): ~0.3 s of every `medimg info` / open
    import subprocess
    import sys

    folder = shared_data / DICOM / "siemens_mosaic_fmri_hf_oblique" / "dicom"
    code = (
        "import sys\n"
        "from napari_medimg.io.dicom import read_series, scan_dicom\n"
        f"(series,) = scan_dicom({str(folder)!r}).series\n"
        "volume = read_series(series, lazy=False)\n"
        "assert volume.array.ndim == 4, volume.array.shape  # a 4D fMRI, pixels read\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'pydicom'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_quiet_blocks_overlap_across_threads_and_restore_the_warning_filters():
    """Reader threads silence pydicom's warnings without holding a lock for the whole block (that serialised
    every compressed decode); the filters are restored when the last block ends, not the first."""
    import threading
    import warnings

    from napari_medimg.io.dicom.records import quiet

    before = list(warnings.filters)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with quiet():
            first_in.set()
            assert second_in.wait(timeout=10)  # the second block starts while this one runs
            seen["both inside"] = warnings.filters[0][0]
        first_out.set()

    def second():
        assert first_in.wait(timeout=10)
        with quiet():
            second_in.set()
            assert first_out.wait(timeout=10)
            seen["after the first ended"] = warnings.filters[0][0]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert seen == {"both inside": "ignore", "after the first ended": "ignore"}
    assert list(warnings.filters) == before
