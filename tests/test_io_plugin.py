"""napari reader/writer contributions: folders and files open as named layers, lazy large series, saving."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from napari_medimg.geometry import Volume
from napari_medimg.io import dicom as dicom_module
from napari_medimg.io.dicom import read_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.errors import NoSeriesError
from napari_medimg.io.nifti import read_nifti
from napari_medimg.io.seg import find_source_series, read_dicom_seg
from napari_medimg.plugin.reader import napari_get_reader


def _series(folder, description="axial CT", shape=(6, 20, 24)):
    rng = np.random.default_rng(2)
    volume = Volume(
        rng.integers(-500, 800, shape).astype(np.int16),
        (2.0, 0.5, 0.6),
        (1.0, 2.0, 3.0),
        metadata={"modality": "CT"},
    )
    template = pydicom.Dataset()
    template.PatientName, template.PatientID = "Secret^Person", "ID-31337"
    write_dicom_series(volume, folder, template=template, series_description=description)
    return volume


def test_get_reader_never_raises_and_declines_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("not an image")
    for path in (
        tmp_path / "notes.txt",
        tmp_path / "text",
        tmp_path / "missing.dcm",
        str(tmp_path / "x.png"),
        [],
        [str(tmp_path / "notes.txt")],
        None,
        42,
    ):
        assert napari_get_reader(path) is None
    reader = napari_get_reader(str(tmp_path / "empty"))  # an empty folder: says so instead of "no reader"
    with pytest.raises(NoSeriesError, match="no DICOM files found in"):
        reader(str(tmp_path / "empty"))
    (tmp_path / "bad.dcm").write_bytes(b"\x00" * 10)
    reader = napari_get_reader(str(tmp_path / "bad.dcm"))  # claims by suffix; reading then says why it fails
    with pytest.raises(Exception, match="not a DICOM file|damaged"):
        reader(str(tmp_path / "bad.dcm"))


def test_folder_opens_each_series_as_a_layer_named_by_description(make_napari_viewer, tmp_path):
    _series(tmp_path / "study" / "a", "axial CT")
    _series(tmp_path / "study" / "b", "thin CT", shape=(4, 10, 12))
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "study"), plugin="napari-medimg")
    assert sorted(layer.name for layer in layers) == ["axial CT", "thin CT"]
    layer = viewer.layers["axial CT"]
    assert np.allclose(layer.scale, (2.0, 0.5, 0.6)) and [str(u) for u in layer.units] == ["millimeter"] * 3
    summary = layer.metadata["napari_medimg"]
    assert summary["modality"] == "CT" and "window_presets" in summary
    assert "Secret" not in str(layer.metadata) and "31337" not in str(layer.metadata)
    assert layer.contrast_limits == [40 - 200, 40 + 200]  # CT without a window: abdomen preset


@pytest.mark.shared_data
def test_real_sagittal_series_is_shown_upright_and_saves_to_nifti(make_napari_viewer, shared_data, tmp_path):
    folder = shared_data / "dicom" / "siemens_xa30_t1w_sag_classic" / "dicom"
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(folder), plugin="napari-medimg")
    assert layer.name == "anat-T1w_acq-tfl" and layer.data.shape == (128, 128, 96)  # S, P, L
    (volume,) = read_dicom(folder)
    # the voxel napari shows at a world point is the DICOM voxel at the same LPS point
    index = np.array([40, 70, 30])
    world_lps = volume.index_to_world(index)
    shown = np.round(layer.world_to_data(world_lps[::-1])).astype(int)
    assert layer.data[tuple(shown)] == volume.array[tuple(index)]
    viewer.layers.save(str(tmp_path / "t1.nii.gz"), selected=False, plugin="napari-medimg")
    saved = read_nifti(tmp_path / "t1.nii.gz")
    assert np.array_equal(saved.canonical().array, volume.canonical().array)
    assert np.allclose(saved.canonical().affine, volume.canonical().affine, atol=1e-4)
    # labels drawn on the upright (S, P, L) display go back to the sagittal source grid in DICOM-SEG
    labels = np.zeros(layer.data.shape, np.uint8)
    labels[50:70, 40:60, 30:50] = 4
    mask = viewer.add_labels(
        labels, name="mask", scale=layer.scale, translate=layer.translate, metadata=dict(layer.metadata)
    )
    mask.save(str(tmp_path / "mask.dcm"), plugin="napari-medimg")
    back = read_dicom_seg(tmp_path / "mask.dcm", find_source_series(folder))
    assert back.shape == (96, 128, 128)
    assert np.array_equal(back.canonical().array, labels)
    viewer.layers.remove(mask)
    (reopened,) = viewer.open(str(tmp_path / "t1.nii.gz"), plugin="napari-medimg")
    assert np.array_equal(np.asarray(reopened.data), np.asarray(layer.data))
    assert np.allclose(reopened.translate, layer.translate) and np.allclose(reopened.scale, layer.scale)


def test_one_file_opens_the_whole_series_beside_it(make_napari_viewer, tmp_path):
    volume = _series(tmp_path / "mixed", "axial CT")
    _series(tmp_path / "other", "other CT", shape=(3, 8, 8))
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"other_{path.name}")
    one = sorted((tmp_path / "mixed").glob("slice_*.dcm"))[2]
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(one), plugin="napari-medimg")
    assert layer.name == "axial CT" and layer.data.shape == volume.shape
    assert np.array_equal(np.asarray(layer.data), volume.array)


def test_large_series_opens_lazily_one_chunk_per_slice(make_napari_viewer, tmp_path, monkeypatch):
    volume = _series(tmp_path / "big")
    monkeypatch.setattr(dicom_module, "LAZY_THRESHOLD_BYTES", 1000)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "big"), plugin="napari-medimg")
    import dask.array as da

    assert isinstance(layer.data, da.Array) and layer.data.chunks[0] == (1,) * 6
    assert layer.metadata["napari_medimg"]["lazy"] is True
    assert np.array_equal(np.asarray(layer.data[3]), volume.array[3])


def test_labels_save_as_dicom_seg_and_nifti_from_napari(make_napari_viewer, tmp_path):
    _series(tmp_path / "ct")
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(tmp_path / "ct"), plugin="napari-medimg")
    labels = np.zeros(image.data.shape, np.uint8)
    labels[1:4, 5:9, 6:12] = 2
    layer = viewer.add_labels(
        labels, name="mask", scale=image.scale, translate=image.translate, metadata=dict(image.metadata)
    )
    layer.save(str(tmp_path / "mask.dcm"), plugin="napari-medimg")
    back = read_dicom_seg(tmp_path / "mask.dcm", find_source_series(tmp_path / "ct"))
    assert np.array_equal(back.array, labels)
    layer.save(str(tmp_path / "mask.nii.gz"), plugin="napari-medimg")
    nifti = read_nifti(tmp_path / "mask.nii.gz")
    assert np.array_equal(nifti.array, labels) and np.allclose(nifti.affine, back.affine, atol=1e-5)


def test_two_series_with_the_same_description_get_distinct_layer_names(make_napari_viewer, tmp_path):
    _series(tmp_path / "study" / "a", "head CT")
    _series(tmp_path / "study" / "b", "head CT", shape=(3, 8, 8))
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "study"), plugin="napari-medimg")
    assert sorted(layer.name for layer in layers) == ["head CT", "head CT (series 9000)"]
    assert sorted(layer.data.shape[0] for layer in layers) == [3, 6]


def test_export_widget_is_offered_under_file_io_utilities():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-medimg")
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-medimg.dicom_export"].endswith("dicom_export:DicomExportWidget")
    assert "Export image as DICOM series" in {w.display_name for w in manifest.contributions.widgets}
    menu = [item.command for item in manifest.contributions.menus["napari/file/io_utilities"]]
    assert {"napari-medimg.dicom_browser", "napari-medimg.dicom_export"} <= set(menu)


@pytest.mark.shared_data
def test_4d_series_opens_as_one_lazy_layer_with_a_volume_slider(make_napari_viewer, shared_data, monkeypatch):
    import time

    import dask.array as da

    from napari_medimg.io.dicom import pixels

    decoded = []
    original = pixels.decode_image
    monkeypatch.setattr(pixels, "decode_image", lambda *a: decoded.append(a[:2]) or original(*a))
    viewer = make_napari_viewer()
    start = time.perf_counter()
    (layer,) = viewer.open(
        str(shared_data / "dicom" / "ge_epi_fmri_classic_10vol" / "dicom"), plugin="napari-medimg"
    )
    opened = time.perf_counter() - start
    assert isinstance(layer.data, da.Array) and layer.data.shape == (10, 15, 64, 64)
    assert layer.data.chunks[:2] == ((1,) * 10, (1,) * 15)
    assert viewer.dims.nsteps[0] == 10 and layer.axis_labels[0] == "volume"
    assert len(decoded) <= 2 * 15  # a few slices, not the 150 images
    assert opened < 20  # headers of 150 files and one slice, on a loaded machine
    assert layer.metadata["warnings"] == [] and layer.metadata["napari_medimg"]["volumes"] == 10
    viewer.dims.set_point(0, 7)
    expected = read_dicom(shared_data / "dicom" / "ge_epi_fmri_classic_10vol" / "dicom", lazy=False)[0]
    assert np.array_equal(np.asarray(layer.data[7]), expected.canonical().array[7])


def test_reader_warnings_are_a_list_of_strings_in_layer_metadata(make_napari_viewer, tmp_path):
    _series(tmp_path / "s", shape=(6, 8, 8))
    files = sorted(p for p in (tmp_path / "s").iterdir() if not p.name.startswith("."))
    files[2].unlink()
    (tmp_path / "s" / "broken.dcm").write_bytes(b"DICM" * 10)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "s"), plugin="napari-medimg")
    warnings = layer.metadata["warnings"]
    assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)
    assert any("missing" in w for w in warnings) and any("skipped broken.dcm" in w for w in warnings)


def test_dicom_seg_and_labels_nifti_we_wrote_reopen_as_labels(make_napari_viewer, tmp_path):
    _series(tmp_path / "ct")
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(tmp_path / "ct"), plugin="napari-medimg")
    labels = np.zeros(image.data.shape, np.uint8)
    labels[1:4, 5:9, 6:12] = 2
    labels[4:6, 1:3, 1:3] = 5
    layer = viewer.add_labels(
        labels, name="mask", scale=image.scale, translate=image.translate, metadata=dict(image.metadata)
    )
    layer.save(str(tmp_path / "mask.dcm"), plugin="napari-medimg")
    layer.save(str(tmp_path / "mask.nii.gz"), plugin="napari-medimg")
    (seg,) = viewer.open(str(tmp_path / "mask.dcm"), plugin="napari-medimg")
    assert seg._type_string == "labels" and np.array_equal(np.asarray(seg.data), labels)
    assert set(seg.features["label"]) == {0, 2, 5} and len(seg.features["segment"]) == 3
    (nifti,) = viewer.open(str(tmp_path / "mask.nii.gz"), plugin="napari-medimg")
    assert nifti._type_string == "labels" and np.array_equal(np.asarray(nifti.data), labels)
    assert np.allclose(nifti.scale, image.scale) and np.allclose(nifti.translate, image.translate)


def test_dicomdir_opens_the_folder_it_indexes(tmp_path):
    volume = _series(tmp_path / "media" / "series", "axial CT")
    dicomdir = pydicom.Dataset()
    dicomdir.file_meta = pydicom.dataset.FileMetaDataset()
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    dicomdir.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dicomdir.SOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.save_as(tmp_path / "media" / "DICOMDIR", enforce_file_format=True)
    # npe2 lower-cases manifest patterns, so no file pattern can claim an upper-case DICOMDIR: the reader
    # still opens the folder when napari (or a script) hands it the file
    reader = napari_get_reader(str(tmp_path / "media" / "DICOMDIR"))
    ((data, kwargs, kind),) = reader(str(tmp_path / "media" / "DICOMDIR"))
    assert kind == "image" and kwargs["name"] == "axial CT" and np.array_equal(np.asarray(data), volume.array)
