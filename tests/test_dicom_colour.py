"""Single colour DICOM images (photographs, secondary captures): read as RGB ``(y, x, 3)`` by the commands (the
pixel classifier) and by napari, on pydicom's own sample files and on a secondary capture written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset

from napari_medimg.cli import main
from napari_medimg.io.dicom import scan_dicom
from napari_medimg.io.errors import MedImgReadError
from napari_medimg.io.raster import read_image, write_labels_png
from napari_medimg.io.volumes import read_volume

SAMPLES = [
    "SC_rgb_rle.dcm",  # RLE, RGB
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR_FULL_422 in the codestream
    "SC_ybr_full_422_uncompressed.dcm",  # YBR converted to RGB
    "SC_rgb_rle_16bit.dcm",  # 16-bit samples
    "SC_rgb_small_odd_big_endian.dcm",  # big endian, odd size, a pixel spacing
]


@pytest.mark.parametrize("name", SAMPLES)
def test_colour_files_read_as_rgb_images_with_pydicoms_colours(name):
    path = get_testdata_file(name)
    volume = read_volume(path)
    expected = pydicom.dcmread(path).pixel_array  # RGB (pydicom converts YBR)
    assert volume.metadata["rgb"] is True and volume.is_rgb
    assert volume.array.shape == expected.shape and volume.array.shape[-1] == 3
    np.testing.assert_array_equal(volume.array, expected)
    spacing = pydicom.dcmread(path, stop_before_pixels=True).get("PixelSpacing")
    if spacing:
        np.testing.assert_allclose(volume.spatial_spacing, [float(v) for v in spacing])
    else:
        assert volume.metadata["spacing_assumed"] is True


def test_a_colour_file_in_a_series_folder_is_skipped_with_a_reason(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("MR_small.dcm", "SC_rgb_rle.dcm"):
        shutil.copyfile(get_testdata_file(name), folder / name)
    scan = scan_dicom(folder)
    assert len(scan.series) == 1
    ((skipped, reason),) = scan.skipped
    assert skipped == "SC_rgb_rle.dcm" and "RGB image" in reason


def test_a_colour_cine_loop_is_refused_in_one_line():
    with pytest.raises(MedImgReadError, match="cine loop"):
        read_volume(get_testdata_file("SC_rgb_rle_2frame.dcm"))


def _photograph(tmp_path, rgb: np.ndarray):
    """A secondary capture holding ``rgb`` (no pixel size, as photographs often have), with a patient name
    that must not reach any output."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset = FileDataset(tmp_path / "photo.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    dataset.PatientName, dataset.Modality, dataset.SeriesDescription = "Doe^Jane", "OT", "fundus photo"
    dataset.Rows, dataset.Columns = rgb.shape[:2]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = np.ascontiguousarray(rgb, np.uint8).tobytes()
    path = tmp_path / "photo.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def test_the_pixel_classifier_segments_a_colour_dicom_like_the_same_png(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :80]
    vessel = (np.abs(y - 20 - 0.2 * x) < 2) | (np.abs(x - 50) < 2)
    rgb = np.stack([180 - 60 * vessel, 90 - 50 * vessel, 40 + 0 * vessel], -1) + rng.integers(
        0, 12, (64, 80, 3)
    )
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    strokes = np.zeros((64, 80), np.uint8)
    strokes[vessel & (x < 40)] = 2
    strokes[~vessel & (y % 9 == 0) & (x < 40)] = 1
    write_labels_png(tmp_path / "strokes.png", strokes)
    model = tmp_path / "model.skops"
    train = [
        "pixels",
        "train",
        "--image",
        str(tmp_path / "photo.png"),
        "--labels",
        str(tmp_path / "strokes.png"),
    ]
    assert main([*train, "--out", str(model), "--sigmas", "1,2", "--trees", "8"]) == 0
    capsys.readouterr()
    png_labels, dicom_labels = tmp_path / "png_labels.png", tmp_path / "dicom_labels.nii.gz"
    assert main(["pixels", "predict", str(model), str(tmp_path / "photo.png"), "--out", str(png_labels)]) == 0
    photo = _photograph(tmp_path, rgb)
    probabilities = tmp_path / "dicom_prob.nii.gz"
    assert (
        main(["pixels", "predict", str(model), str(photo), "--out", str(dicom_labels), "--probabilities", str(probabilities)])
        == 0
    )  # fmt: skip
    expected = read_image(png_labels).array
    image = nib.load(dicom_labels)
    assert image.shape == (80, 64, 1)  # (x, y, z) on disk: one plane of the photograph
    np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, 0].T, expected)
    assert nib.load(probabilities).shape == (80, 64, 1, 2)
    assert (expected[vessel] == 2).mean() > 0.8
    assert "Doe" not in capsys.readouterr().err
    assert "Doe" not in json.dumps(read_volume(photo).metadata)


def test_napari_opens_a_colour_dicom_as_an_rgb_layer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    path = get_testdata_file("SC_rgb_small_odd_big_endian.dcm")
    (layer,) = viewer.open(path, plugin="napari-medimg")
    assert layer.rgb and layer.data.shape == (3, 3, 3)
    np.testing.assert_array_equal(np.asarray(layer.data), pydicom.dcmread(path).pixel_array)
    spacing = [float(v) for v in pydicom.dcmread(path).PixelSpacing]
    np.testing.assert_allclose(np.asarray(layer.scale)[-2:], spacing)


def test_a_corrupt_jpeg_huffman_table_does_not_crash_the_process(tmp_path, read_in_child):
    """gdcm, pydicom's first JPEG decoder, aborts the whole process (a C++ exception through C) on this
    stream, found by fuzzing: 8-bit JPEG goes to Pillow, which decodes what it can or raises. Run in a child
    process so that a crash fails this test instead of the test run."""
    data = bytearray(Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")).read_bytes())
    at = data.index(b"\xe1\xe3\xff\xc4", data.index(b"\xff\xd8"))  # the end of a table, the next one's marker
    data[at : at + 4] = b"\x01"  # the fuzzing case: a Huffman table marker lost
    path = tmp_path / "broken.dcm"
    path.write_bytes(bytes(data))
    result = read_in_child(path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(("read (100, 100, 3)", "refused:"))  # Pillow decodes what it can
