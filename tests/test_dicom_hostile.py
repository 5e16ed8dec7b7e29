"""Hostile input to the DICOM reader (issue 12 items 11, 12, 13, 16, 17, 19 and the reader's messages of 23).

Each case runs in a subprocess with an address-space limit (``resource.setrlimit``) and a timeout, so a
regression fails (MemoryError, non-zero exit, timeout) instead of hanging CI or exhausting the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.errors import CorruptFileError, GeometryError, MissingDecoderError, NoSeriesError

MEMORY_BYTES = 1536 * 2**20  # far below what any of the bombs below asks for
TIMEOUT_S = 60


def _limited(code: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run Python ``code`` with the memory limit and timeout; a hang raises TimeoutExpired (a failure)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env=env,
    )


def _cli(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return _limited(
        f"import sys; from napari_medimg.cli import main; sys.exit(main({list(args)!r}))", timeout
    )


def _series(folder: Path, shape=(4, 16, 16)) -> list[Path]:
    volume = Volume(
        np.arange(np.prod(shape), dtype=np.int16).reshape(shape), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    )
    write_dicom_series(volume, folder, series_description="hostile")
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _edit(path: Path, **values) -> None:
    dataset = pydicom.dcmread(path)
    with warnings.catch_warnings():  # hostile values on purpose (pydicom warns about NaN in DS)
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


# ---- 11: FIFOs and other non-regular files are never opened ---------------------------------------------------------
def test_fifo_in_a_folder_or_as_the_input_never_blocks(tmp_path):
    folder = tmp_path / "study"
    _series(folder)
    os.mkfifo(folder / "pipe.dcm")
    os.mkfifo(folder / "pipe")  # no suffix: opening it to look for DICM would block forever
    done = _cli("info", str(folder), "--json", timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["series"][0]["dimensions"] == [4, 16, 16]
    done = _cli("info", str(folder / "pipe"), timeout=30)
    assert done.returncode != 0 and "not a regular file" in done.stderr and "Traceback" not in done.stderr
    code = (
        "from napari_medimg.plugin.reader import napari_get_reader\n"
        f"assert napari_get_reader({str(folder / 'pipe')!r}) is None\n"
        f"assert napari_get_reader({str(folder / 'pipe.dcm')!r}) is None\n"
        f"reader = napari_get_reader({str(folder)!r})\n"
        "assert reader is not None\n"
        f"from napari_medimg.io.dicom import scan_dicom; assert len(scan_dicom({str(folder)!r}).series) == 1\n"
    )
    done = _limited(code, timeout=60)
    assert done.returncode == 0, done.stderr


# ---- 12: non-DICOM content is rejected after a few bytes -----------------------------------------------------------
def test_files_of_zeros_named_dcm_are_rejected_at_once(tmp_path):
    (tmp_path / "zeros.dcm").write_bytes(b"\x00" * 64 * 2**20)
    with open(tmp_path / "sparse.dcm", "wb") as handle:  # 1 GiB, sparse on disk
        handle.truncate(2**30)
    for name in ("zeros.dcm", "sparse.dcm"):
        done = _cli("info", str(tmp_path / name), timeout=10)
        assert done.returncode != 0 and "not a DICOM file" in done.stderr, done.stderr
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "zeros.dcm").write_bytes(b"\x00" * 2**20)
    with pytest.raises(NoSeriesError, match="not a DICOM file"):
        scan_dicom(tmp_path / "folder")


# ---- 13: inflation of deflated files is capped ---------------------------------------------------------------------
def _deflate_bomb(path: Path, pixel_bytes: int) -> None:
    """A valid Deflated Explicit VR Little Endian image whose pixel data inflates to ``pixel_bytes`` zeros."""
    rows = cols = 4096
    frames = pixel_bytes // (rows * cols * 2)
    dataset = Dataset()
    dataset.SOPClassUID = pydicom.uid.MRImageStorage
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.Modality = "MR"
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = rows, cols, frames
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation, dataset.SamplesPerPixel = 0, 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    body = pydicom.filebase.DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(body, dataset)
    length = frames * rows * cols * 2
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
        dataset.SOPClassUID,
        dataset.SOPInstanceUID,
    )
    meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    head = pydicom.filebase.DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(head, meta)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(head.getvalue())
        handle.write(compressor.compress(body.getvalue() + element))
        chunk = bytes(2**24)
        for _ in range(length // len(chunk)):
            handle.write(compressor.compress(chunk))
        handle.write(compressor.flush())


def test_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    _deflate_bomb(tmp_path / "bomb.dcm", 2**31)  # 2 GiB of zeros in about 2 MB
    assert (tmp_path / "bomb.dcm").stat().st_size < 8 * 2**20
    done = _cli("info", str(tmp_path / "bomb.dcm"), "--json", timeout=30)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "deflate bomb" in done.stderr and "truncated" not in done.stderr  # item 23: not "truncated"


def test_small_deflated_file_reads(tmp_path):
    files = _series(tmp_path / "s", shape=(2, 16, 16))
    dataset = pydicom.dcmread(files[0])
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.save_as(tmp_path / "deflated.dcm")
    volume = read_dicom(tmp_path / "deflated.dcm", lazy=False)[0]
    assert np.array_equal(volume.array[0], dataset.pixel_array.astype(np.int16))


# ---- 16: gap filling has a plausibility limit -----------------------------------------------------------------------
@pytest.mark.parametrize("offset_mm", [1e5, 9.9e5])
def test_one_slice_far_away_does_not_become_a_huge_volume(tmp_path, offset_mm):
    files = _series(tmp_path / "s")
    position = [float(v) for v in pydicom.dcmread(files[-1]).ImagePositionPatient]
    _edit(files[-1], ImagePositionPatient=[position[0], position[1], position[2] + offset_mm])
    done = _cli("info", str(tmp_path / "s"), "--json", timeout=30)
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["series"]
    assert entry["dimensions"] == [4, 16, 16] and entry["implausible_gap"] is True
    assert any("Implausible gap" in w for w in entry["warnings"])
    text = _cli("info", str(tmp_path / "s"), timeout=30)
    assert "FLAG" in text.stdout and "implausible gap" in text.stdout


def test_missing_slices_are_still_filled_when_plausible(tmp_path):
    files = _series(tmp_path / "s", shape=(8, 8, 8))
    files[3].unlink()
    (series,) = scan_dicom(tmp_path / "s").series
    assert series.shape[0] == 8 and not series.implausible_gap


# ---- 17: compressed frames are size-checked before anything is allocated ------------------------------------------
def test_compressed_frames_declaring_huge_sizes_are_refused_before_decoding(tmp_path):
    files = _series(tmp_path / "s", shape=(1, 16, 16))
    dataset = pydicom.dcmread(files[0])
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    dataset.Rows = dataset.Columns = 65535
    dataset.NumberOfFrames = 4
    dataset.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64] * 4)
    dataset["PixelData"].VR = "OB"
    dataset.save_as(tmp_path / "huge.dcm")
    done = _cli("convert", str(tmp_path / "huge.dcm"), str(tmp_path / "out.nii.gz"), timeout=30)
    assert done.returncode != 0 and "refused before decoding" in done.stderr, done.stderr
    assert not (tmp_path / "out.nii.gz").exists()


# ---- 19: absurd positions and non-orthogonal orientations ----------------------------------------------------------
def test_absurd_positions_are_refused_not_turned_into_an_infinite_affine(tmp_path):
    files = _series(tmp_path / "s")
    _edit(files[1], ImagePositionPatient=[0.0, 0.0, 1e300])
    scan = scan_dicom(tmp_path / "s")
    assert any("not a plausible position" in why for _, why in scan.skipped)
    assert all(np.all(np.isfinite(s.affine)) for s in scan.series)
    with pytest.raises(CorruptFileError, match="plausible"):
        read_dicom(files[1])


def test_non_orthogonal_orientation_is_refused_or_warned(tmp_path):
    files = _series(tmp_path / "a", shape=(2, 8, 8))
    cosine = np.cos(np.radians(60))
    _edit(files[0], ImageOrientationPatient=[1, 0, 0, cosine, np.sin(np.radians(60)), 0])
    with pytest.raises(GeometryError, match="60.0 degrees"):
        read_dicom(files[0])
    files = _series(tmp_path / "b", shape=(2, 8, 8))
    for path in files:  # 89.8 degrees: accepted with a warning
        _edit(path, ImageOrientationPatient=[1, 0, 0, np.cos(np.radians(89.8)), np.sin(np.radians(89.8)), 0])
    (series,) = scan_dicom(tmp_path / "b").series
    assert any("89.80 degrees apart" in w for w in series.warnings)


# ---- 23: messages that say what is wrong -----------------------------------------------------------------------------
@pytest.mark.shared_data
def test_corrupt_rle_is_reported_as_corrupt_not_as_a_missing_decoder(shared_data, tmp_path):
    dataset = pydicom.dcmread(shared_data / "dicom" / "siemens_mosaic_rle" / "dicom" / "4.dcm")
    (frame,) = pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1)
    assert len(frame) > 1000
    dataset.PixelData = pydicom.encaps.encapsulate(
        [frame[:64] + frame[64:400]]
    )  # RLE header kept, segments cut
    dataset.save_as(tmp_path / "rle.dcm")
    with pytest.raises(CorruptFileError, match="corrupt") as caught:
        read_dicom(tmp_path / "rle.dcm", lazy=False)
    assert not isinstance(caught.value, MissingDecoderError)
    assert "install" not in str(caught.value)


def test_info_json_is_strict_json_even_with_non_finite_values():
    from napari_medimg.cli.info import strict_json

    text = json.dumps(strict_json({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": (np.int64(3),)}))
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON")) == {
        "a": None,
        "b": [None, 1.5],
        "c": [3],
    }


def test_info_json_on_a_series_with_a_nan_header_value_is_strict(tmp_path):
    files = _series(tmp_path / "s")
    _edit(files[0], SliceThickness="NaN", WindowCenter="NaN", WindowWidth="inf")
    done = _cli("info", str(tmp_path / "s"), "--json", timeout=30)
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "folder", ["siemens_mosaic_jpeg2000", "siemens_mosaic_jpegls", "siemens_mosaic_jpeg_lossless"]
)
def test_codestream_size_must_match_the_header_before_decoding(shared_data, tmp_path, folder):
    (source,) = (shared_data / "dicom" / folder / "dicom").iterdir()
    dataset = pydicom.dcmread(source)
    dataset.Rows = dataset.Columns = 192  # the codestream still says 384 x 384
    dataset.save_as(tmp_path / "lie.dcm")
    with pytest.raises(CorruptFileError, match="declares 384 x 384 pixels but the header 192 x 192"):
        read_dicom(tmp_path / "lie.dcm", lazy=False)
