"""Transfer syntaxes beyond the shared series: big-endian files (retired, still written by old scanners),
12-bit JPEG Extended and JPEG Lossless, on the real files pydicom ships with its package (not copies in this
repository) and on series encoded here."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from napari_medimg.cli import main as medimg
from napari_medimg.io.dicom import imagecodecs_decoders, read_dicom, scan_dicom
from napari_medimg.io.dicom.pixels import decode_image, decoder_hint, decoding_plugin
from napari_medimg.io.errors import MissingDecoderError
from napari_medimg.io.volumes import read_volume

BIG_ENDIAN = "1.2.840.10008.1.2.2"


@pytest.mark.parametrize(
    ("little", "big"),
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),  # one MR slice, signed 16-bit
        ("MR_small.dcm", "MR_small_expb.dcm"),
        ("rtdose.dcm", "rtdose_expb.dcm"),  # a 15-frame RT dose, 32-bit with a dose grid scaling
        ("rtdose_1frame.dcm", "rtdose_expb_1frame.dcm"),
    ],
)
def test_big_endian_files_read_as_their_little_endian_twins(little, big):
    assert str(
        pydicom.dcmread(get_testdata_file(big), stop_before_pixels=True).file_meta.TransferSyntaxUID
    ) == (BIG_ENDIAN)
    expected = read_dicom(get_testdata_file(little), lazy=False)[0]
    for lazy in (False, True):
        (volume,) = read_dicom(get_testdata_file(big), lazy=lazy)
        assert volume.array.dtype == expected.array.dtype
        np.testing.assert_array_equal(np.asarray(volume.array), np.asarray(expected.array))
        np.testing.assert_allclose(volume.affine, expected.affine)


def _big_endian_series(folder, slices: int = 3):
    """A 3-slice series of big-endian files made from pydicom's big-endian MR slice (written as it was
    encoded: explicit VR big endian), with its little-endian twin series beside it."""
    for name, kind in (("MR_small_bigendian.dcm", "big"), ("MR_small.dcm", "little")):
        out = folder / kind
        out.mkdir()
        for index in range(slices):
            dataset = pydicom.dcmread(get_testdata_file(name))
            dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1" + ("1" if kind == "big" else "2")
            dataset.SOPInstanceUID = f"{dataset.SeriesInstanceUID}.{index + 1}"
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            dataset.InstanceNumber = index + 1
            dataset.ImagePositionPatient = [
                float(v) + 5.0 * index for v in pydicom.dcmread(get_testdata_file(name)).ImagePositionPatient
            ]
            dataset.save_as(out / f"{index + 1}.dcm")
    return folder / "big", folder / "little"


def test_a_big_endian_series_converts_like_its_little_endian_twin(tmp_path):
    big, little = _big_endian_series(tmp_path)
    assert str(pydicom.dcmread(big / "1.dcm").file_meta.TransferSyntaxUID) == BIG_ENDIAN
    for folder in (big, little):
        assert medimg(["convert", str(folder), str(tmp_path / f"{folder.name}.nii")]) == 0
    ours, twin = nib.load(tmp_path / "big.nii"), nib.load(tmp_path / "little.nii")
    assert ours.shape[2] == 3
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(twin.dataobj))
    np.testing.assert_allclose(ours.affine, twin.affine)
    sidecar = json.loads((tmp_path / "big.json").read_text())
    assert "truncated" not in json.dumps(sidecar)


def _reencoded(source: str, path: Path, implicit: bool) -> Path:
    """``source`` (a pydicom test file) with its file meta kept and its dataset written in the other VR
    encoding than its transfer syntax says, as some writers do (pydicom reads such files, with a warning)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    dataset = pydicom.dcmread(get_testdata_file(source))
    meta, body = DicomBytesIO(), DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, dataset.file_meta, enforce_standard=True)
    body.is_little_endian, body.is_implicit_VR = True, implicit
    write_dataset(body, dataset)
    path.write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + body.getvalue())
    return path


@pytest.mark.parametrize(
    ("source", "implicit"),
    [
        ("MR_small.dcm", True),  # explicit VR little endian declared, implicit VR written: native pixels
        ("MR_small_RLE.dcm", True),  # the same with encapsulated (RLE) pixel data
        ("MR_small_jp2klossless.dcm", True),  # and JPEG 2000
        ("MR_small_implicit.dcm", False),  # implicit declared, explicit written
    ],
)
def test_a_dataset_encoded_otherwise_than_its_transfer_syntax_says_reads_its_own_pixels(
    tmp_path, source, implicit
):
    path = _reencoded(source, tmp_path / "slice.dcm", implicit)
    with pytest.warns(UserWarning, match="VR"):
        reference = pydicom.dcmread(path).pixel_array  # pydicom detects the encoding, and warns
    expected = read_dicom(get_testdata_file("MR_small.dcm"), lazy=False)[0]
    np.testing.assert_array_equal(reference, np.asarray(expected.array)[0])
    for lazy in (False, True):
        (volume,) = read_dicom(path, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(volume.array), np.asarray(expected.array))
        np.testing.assert_allclose(volume.affine, expected.affine)


def test_twelve_bit_jpeg_extended_decodes_after_a_plain_install():
    """Neither gdcm nor Pillow decodes 12-bit JPEG Extended; libjpeg-turbo 3 (imagecodecs, a dependency) does.
    A lossy JPEG's inverse DCT may differ by one unit between decoders: compared with the GPL-3
    pylibjpeg-libjpeg (installed for the tests only), as a reference."""
    path = get_testdata_file("JPGExtended.dcm")
    dataset = pydicom.dcmread(path)
    assert str(dataset.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.51" and dataset.BitsStored == 12
    (volume,) = read_dicom(path, lazy=False)
    ours = np.asarray(volume.array)[0].astype(np.int64)
    reference = pydicom.pixels.pixel_array(dataset, decoding_plugin="pylibjpeg").astype(np.int64)
    assert np.abs(ours - reference).max() <= 1 and np.mean(ours != reference) < 0.05
    assert 0 < int(ours.max()) < 4096
    # the same image in a file whose scan header pylibjpeg-libjpeg refuses
    (other,) = read_dicom(get_testdata_file("JPEG-lossy.dcm"), lazy=False)
    np.testing.assert_array_equal(np.asarray(other.array)[0], ours)


def test_twelve_bit_jpeg_extended_without_libjpeg_turbo_names_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        imagecodecs_decoders, "_turbo_version", lambda: ()
    )  # an imagecodecs without libjpeg-turbo 3
    path = get_testdata_file("JPGExtended.dcm")
    (series,) = scan_dicom(path).series  # the header pass reads no pixels: the series is listed
    (record,) = series.frames
    with pytest.raises(MissingDecoderError, match="libjpeg-turbo 3"):
        decode_image(record.path, record.frame, record.fmt)
    assert medimg(["convert", path, str(tmp_path / "out.nii")]) == 2  # one line, no traceback
    error = capsys.readouterr().err
    assert "imagecodecs" in error and "Traceback" not in error
    assert not (tmp_path / "out.nii").exists()
    assert "libjpeg-turbo" in decoder_hint("1.2.840.10008.1.2.4.51", bits_stored=12)
    assert "libjpeg-turbo" not in decoder_hint("1.2.840.10008.1.2.4.51", bits_stored=8)


def _lossless_series(folder, values, bits_stored, signed, predictor, syntax):
    """A CT-like series whose slices are JPEG Lossless codestreams (libjpeg-turbo's encoder), stored values
    as DICOM keeps them: the two's-complement bit pattern of ``bits_stored`` bits."""
    import imagecodecs
    from pydicom.dataset import FileMetaDataset

    folder.mkdir()
    series_uid = pydicom.uid.generate_uid()
    for index, plane in enumerate(values):
        pattern = (plane.astype(np.int64) & ((1 << bits_stored) - 1)).astype(np.uint16)
        encoded = imagecodecs.jpeg8_encode(
            pattern, lossless=True, predictor=predictor, bitspersample=bits_stored
        )
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = syntax
        meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        dataset = pydicom.Dataset()
        dataset.file_meta = meta
        dataset.SOPClassUID, dataset.SOPInstanceUID = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
        )
        dataset.Modality, dataset.SeriesInstanceUID, dataset.InstanceNumber = "CT", series_uid, index + 1
        dataset.ImagePositionPatient, dataset.ImageOrientationPatient = (
            [0, 0, 2.5 * index],
            [1, 0, 0, 0, 1, 0],
        )
        dataset.PixelSpacing, dataset.SliceThickness = [0.5, 0.5], 2.5
        dataset.Rows, dataset.Columns = plane.shape
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits_stored, bits_stored - 1
        dataset.PixelRepresentation = int(signed)
        dataset.RescaleIntercept, dataset.RescaleSlope = 0, 1
        dataset.PixelData = pydicom.encaps.encapsulate([encoded])
        dataset["PixelData"].VR = "OB"
        dataset.save_as(folder / f"{index:03d}.dcm", enforce_file_format=True)


@pytest.mark.parametrize(
    ("bits_stored", "signed", "predictor", "syntax"),
    [
        (12, True, 1, "1.2.840.10008.1.2.4.70"),  # CT: signed 12-bit, SV1 (first-order prediction)
        (16, True, 7, "1.2.840.10008.1.2.4.57"),  # signed 16-bit, process 14 with predictor 7
        (16, False, 4, "1.2.840.10008.1.2.4.57"),
        (10, False, 6, "1.2.840.10008.1.2.4.57"),
    ],
)
def test_jpeg_lossless_series_decode_to_their_stored_values(tmp_path, bits_stored, signed, predictor, syntax):
    """JPEG Lossless goes to libjpeg-turbo (imagecodecs), not gdcm (which kills the process on some corrupt streams): the
    values written are the values read, sign extension included, eagerly and lazily, and gdcm agrees."""
    rng = np.random.default_rng(bits_stored + predictor)
    low, high = (-(1 << (bits_stored - 1)), 1 << (bits_stored - 1)) if signed else (0, 1 << bits_stored)
    values = rng.integers(low, high, size=(3, 48, 40))
    values[:, :8] = low  # the extremes of the range
    values[:, -8:] = high - 1
    _lossless_series(tmp_path / "s", values, bits_stored, signed, predictor, syntax)
    for lazy in (False, True):
        (volume,) = read_dicom(tmp_path / "s", lazy=lazy)
        np.testing.assert_array_equal(np.asarray(volume.array).astype(np.int64), values)
    first = pydicom.dcmread(tmp_path / "s" / "000.dcm")
    by_gdcm = pydicom.pixels.pixel_array(first, decoding_plugin="gdcm").astype(np.int64)
    np.testing.assert_array_equal(by_gdcm, values[0])
    assert decoding_plugin(syntax, bits_stored) == imagecodecs_decoders.PLUGIN


def test_colour_jpeg_lossless_sample_decodes_as_gdcm_decodes_it():
    path = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
    dataset = pydicom.dcmread(path)
    assert str(dataset.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(
        read_volume(path).array, pydicom.pixels.pixel_array(dataset, decoding_plugin="gdcm")
    )


@pytest.mark.parametrize("damage", ["huffman table marker lost", "frame header precision 238 bits"])
def test_corrupt_jpeg_lossless_streams_do_not_kill_the_process(tmp_path, read_in_child, damage):
    """Two fuzzing cases of pydicom's colour JPEG Lossless sample on which gdcm 3.0 kills the process (a C++
    exception through C: SIGABRT; a segmentation fault). Run in a child process so that a crash fails this test
    instead of the test run; ours refuses them in one line."""
    data = bytearray(Path(get_testdata_file("SC_rgb_jpeg_gdcm.dcm")).read_bytes())
    start = data.index(b"\xff\xd8")
    if damage == "huffman table marker lost":
        at = data.index(b"\xff\xc4", start) - 1
        data[at : at + 4] = b"\x01"
    else:
        data[data.index(b"\xff\xc3", start) + 4] = 0xEE
    path = tmp_path / "broken.dcm"
    path.write_bytes(bytes(data))
    result = read_in_child(path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("refused: broken.dcm: ") and result.stdout.count("\n") == 1


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "JPEG2000.dcm"])
def test_jpeg2000_samples_decode_as_openjpeg_decodes_them(name):
    """JPEG 2000 goes to imagecodecs' OpenJPEG (gdcm kills the process on some corrupt streams; pylibjpeg-openjpeg
    holds the GIL): the values of pylibjpeg-openjpeg, the same library, through pydicom."""
    path = get_testdata_file(name)
    dataset = pydicom.dcmread(path)
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    assert syntax in imagecodecs_decoders.JPEG2000_SYNTAXES
    assert decoding_plugin(syntax, int(dataset.BitsStored)) == imagecodecs_decoders.PLUGIN
    (volume,) = read_dicom(path, lazy=False)
    ours = np.asarray(volume.array).reshape(-1, dataset.Rows, dataset.Columns)[0]
    expected = pydicom.pixels.pixel_array(dataset, index=0, decoding_plugin="pylibjpeg")
    slope, intercept = (
        float(dataset.get("RescaleSlope", 1) or 1),
        float(dataset.get("RescaleIntercept", 0) or 0),
    )
    np.testing.assert_array_equal(ours, expected * slope + intercept)


def test_corrupt_jpeg2000_stream_does_not_kill_the_process(tmp_path, read_in_child):
    """A fuzzing case of pydicom's JPEG 2000 sample (its component's precision and sub-sampling bytes set to
    0xFF) on which gdcm 3.0 kills the process (a C++ exception through C); ours refuses it in one line."""
    data = bytearray(Path(get_testdata_file("MR_small_jp2klossless.dcm")).read_bytes())
    siz = data.index(b"\xff\x4f\xff\x51") + 2  # SOC, then the image and tile size segment (SIZ)
    data[siz + 40 : siz + 43] = b"\xff\xff\xff"  # Ssiz, XRsiz, YRsiz of the one component
    path = tmp_path / "broken.dcm"
    path.write_bytes(bytes(data))
    result = read_in_child(path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("refused: broken.dcm: ") and result.stdout.count("\n") == 1
