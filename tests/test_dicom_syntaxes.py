"""Transfer syntaxes beyond the shared series: big-endian files (retired, still written by old scanners) and
12-bit JPEG Extended, on the real files pydicom ships with its package (not copies in this repository)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from napari_medimg.cli import main as medimg
from napari_medimg.io.dicom import read_dicom, scan_dicom
from napari_medimg.io.dicom.pixels import decode_image, decoder_hint
from napari_medimg.io.errors import MissingDecoderError

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


def test_twelve_bit_jpeg_extended_decodes_with_the_optional_libjpeg_decoder():
    """gdcm and Pillow (permissive, installed by default) do not decode 12-bit JPEG Extended; the GPL-3
    pylibjpeg-libjpeg does, as the optional extra ``jpeg12`` (the test environment installs it)."""
    path = get_testdata_file("JPGExtended.dcm")
    dataset = pydicom.dcmread(path)
    assert str(dataset.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.51" and dataset.BitsStored == 12
    (volume,) = read_dicom(path, lazy=False)
    expected = pydicom.pixels.pixel_array(dataset, decoding_plugin="pylibjpeg")
    np.testing.assert_array_equal(np.asarray(volume.array)[0], expected)
    assert 0 < int(np.asarray(volume.array).max()) < 4096


def test_twelve_bit_jpeg_extended_without_libjpeg_names_the_extra(monkeypatch, tmp_path, capsys):
    import napari_medimg.io.dicom.pixels as pixels

    monkeypatch.setattr(pixels, "_libjpeg_available", lambda: False)
    path = get_testdata_file("JPGExtended.dcm")
    (series,) = scan_dicom(path).series  # the header pass reads no pixels: the series is listed
    (record,) = series.frames
    with pytest.raises(MissingDecoderError, match=r"napari-medimg\[jpeg12\]"):
        decode_image(record.path, record.frame, record.fmt)
    assert medimg(["convert", path, str(tmp_path / "out.nii")]) == 2  # one line, no traceback
    error = capsys.readouterr().err
    assert "GPL-3" in error and "jpeg12" in error and "Traceback" not in error
    assert not (tmp_path / "out.nii").exists()
    assert "jpeg12" in decoder_hint("1.2.840.10008.1.2.4.51", bits_stored=12)
    assert "jpeg12" not in decoder_hint("1.2.840.10008.1.2.4.51", bits_stored=8)
