"""Writers: NIfTI and DICOM-SEG round trips, DICOM export with PS3.15 Annex E basic-profile de-identification."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom, scan_dicom
from napari_medimg.io.dicom_write import (
    basic_profile_tags,
    deidentify_series,
    export_image_series,
    reoriented,
    write_dicom_series,
)
from napari_medimg.io.errors import OverwriteError
from napari_medimg.io.nifti import read_nifti, write_nifti
from napari_medimg.io.seg import find_source_series, read_dicom_seg, write_dicom_seg


def _labels_like(volume: Volume) -> Volume:
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:5, 3:9, 4:10] = 1
    labels[6:8, 10:14, 2:6] = 7
    labels[1, 0, 0] = 3
    return Volume(labels, volume.spacing, volume.origin, volume.direction, {"series_description": "lesions"})


@pytest.fixture()
def source_series(tmp_path):
    rng = np.random.default_rng(5)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation[:, 0] = np.cross(rotation[:, 2], rotation[:, 1])  # z along row x column: files keep our order
    image = Volume(
        rng.integers(-100, 300, (9, 16, 18)).astype(np.int16),
        (3.0, 0.7, 0.8),
        (10.0, -5.0, 40.0),
        rotation,
        {"modality": "CT"},
    )
    template = Dataset()
    template.PatientName, template.PatientID = "Roe^Richard", "MRN-4242"
    template.PatientBirthDate, template.AccessionNumber = "19551231", "ACC-99"
    template.StudyDate, template.StudyTime, template.InstitutionName = (
        "20240102",
        "101010",
        "General Hospital",
    )
    template.ReferringPhysicianName, template.StudyID = "Who^Doctor", "ST-1"
    write_dicom_series(image, tmp_path / "ct", template=template, series_description="source CT")
    return tmp_path / "ct"


def test_labels_nifti_round_trip_is_voxel_exact_with_geometry(source_series, tmp_path):
    (image,) = read_dicom(source_series)
    labels = _labels_like(image)
    write_nifti(labels, tmp_path / "labels.nii.gz")
    back = read_nifti(tmp_path / "labels.nii.gz")
    assert np.array_equal(back.array, labels.array) and back.array.dtype == np.uint8
    assert np.allclose(back.affine, image.affine, atol=1e-5)
    with pytest.raises(OverwriteError):
        write_nifti(labels, tmp_path / "labels.nii.gz")


def test_labels_dicom_seg_round_trip_references_source(source_series, tmp_path):
    series = find_source_series(source_series)
    (image,) = read_dicom(source_series)
    labels = _labels_like(image)
    write_dicom_seg(labels, tmp_path / "labels.seg.dcm", series, names={1: "tumour", 7: "cyst"})
    seg = pydicom.dcmread(tmp_path / "labels.seg.dcm")
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["tumour", "label 3", "cyst"]
    back = read_dicom_seg(tmp_path / "labels.seg.dcm", series)
    assert np.array_equal(back.array, labels.array)
    assert np.allclose(back.affine, labels.affine)
    with pytest.raises(ValueError, match="grid"):
        moved = Volume(labels.array, labels.spacing, labels.origin + 5, labels.direction)
        write_dicom_seg(moved, tmp_path / "moved.seg.dcm", series)
    assert not (tmp_path / "moved.seg.dcm").exists()


def _values(dataset: Dataset) -> dict:
    found = {}

    def visit(_, element):
        if element.VR not in ("SQ", "OB", "OW", "UN") and element.value not in (None, "", b""):
            found.setdefault(element.tag, set()).add(str(element.value))

    dataset.walk(visit)
    if hasattr(dataset, "file_meta"):
        dataset.file_meta.walk(visit)
    return found


def test_deidentified_export_keeps_no_basic_profile_value(source_series, tmp_path):
    originals = [pydicom.dcmread(p) for p in sorted(source_series.glob("*.dcm"))]
    for dataset in originals:  # private tags must go too
        block = dataset.private_block(0x0011, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "secret private value")
        dataset.save_as(source_series / f"{dataset.SOPInstanceUID}.dcm")
    for path in list(source_series.glob("*.dcm")):
        if not path.name.startswith("1."):
            path.unlink()
    tables = basic_profile_tags()
    profile = {
        pydicom.tag.Tag(t) for key, tags in tables.items() if key != "ALL_TAGS" for t in tags if len(t) == 2
    }
    protected = set()
    for dataset in originals:
        protected |= {v for tag, values in _values(dataset).items() if tag in profile for v in values}
    assert {"Roe^Richard", "MRN-4242", "19551231", "ACC-99", "General Hospital"} <= protected
    written = deidentify_series(source_series, tmp_path / "deid")
    assert len(written) == len(originals)
    outputs = [pydicom.dcmread(p) for p in written]
    remaining = set().union(*({v for values in _values(d).values() for v in values} for d in outputs))
    assert not (protected & remaining)
    assert all(not any(e.tag.is_private for e in d) for d in outputs)
    for keyword in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):  # remapped consistently
        assert len({d.data_element(keyword).value for d in outputs}) == 1
    assert len({d.SOPInstanceUID for d in outputs}) == len(outputs)
    assert all(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID for d in outputs)
    assert outputs[0].SeriesInstanceUID != originals[0].SeriesInstanceUID
    assert all(d.PatientIdentityRemoved == "YES" for d in outputs)
    # the de-identified series still reads with the same geometry and pixels
    (before,), (after,) = read_dicom(source_series), read_dicom(tmp_path / "deid")
    assert np.array_equal(before.array, after.array) and np.allclose(before.affine, after.affine)


def test_image_export_with_deidentification_reads_back(source_series, tmp_path):
    (image,) = read_dicom(source_series)
    template = pydicom.dcmread(next(source_series.glob("*.dcm")), stop_before_pixels=True)
    floats = image.with_array(image.array.astype(np.float32) * 0.37)
    write_dicom_series(floats, tmp_path / "export", template=template, deidentify=True)
    (back,) = read_dicom(tmp_path / "export")
    assert np.allclose(back.array, floats.array, atol=np.ptp(floats.array) / 60000)
    assert np.allclose(back.affine, image.affine, atol=1e-4)
    dataset = pydicom.dcmread(next((tmp_path / "export").glob("*.dcm")))
    assert str(dataset.PatientName) != "Roe^Richard" and dataset.get("PatientBirthDate", "") != "19551231"
    assert dataset.StudyInstanceUID != template.StudyInstanceUID
    with pytest.raises(OverwriteError):
        write_dicom_series(floats, tmp_path / "export")
    assert len(scan_dicom(tmp_path / "export").series) == 1


def test_phantom_export_reads_back_voxel_exact_in_a_new_study(small_phantom, tmp_path):
    image = small_phantom.image
    (tmp_path / "export").mkdir()  # an empty folder (e.g. made in the folder dialog) is used as it is
    result = export_image_series(image, tmp_path / "export")
    assert not result.from_source and len(result.files) == image.shape[0]
    (back,) = read_dicom(tmp_path / "export")
    assert back.array.dtype == np.int16 and np.array_equal(back.array, image.array)  # HU voxel-exact
    assert np.allclose(back.affine, image.affine, atol=1e-3)
    first = pydicom.dcmread(result.files[0])
    assert first.Modality == "CT" and first.RescaleType == "HU" and first.PatientIdentityRemoved == "YES"
    outputs = [pydicom.dcmread(p, stop_before_pixels=True) for p in result.files]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({d.data_element(keyword).value for d in outputs}) == 1
    assert [d.InstanceNumber for d in outputs] == list(range(1, image.shape[0] + 1))


def test_export_refuses_to_replace_other_files_and_leaves_nothing_on_failure(small_phantom, tmp_path):
    image = small_phantom.image
    export_image_series(image, tmp_path / "out", deidentify=False)
    before = sorted(p.name for p in (tmp_path / "out").glob("*.dcm"))
    with pytest.raises(OverwriteError, match="not empty"):
        export_image_series(image, tmp_path / "out")
    again = export_image_series(
        image.with_array(image.array[:, ::-1].copy()), tmp_path / "out", overwrite=True
    )
    (back,) = read_dicom(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.dcm")) == before and len(again.files) == len(
        before
    )
    assert np.array_equal(back.array, image.array[:, ::-1])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "report.txt").write_text("keep me")
    with pytest.raises(OverwriteError, match="not written by napari-medimg"):
        export_image_series(image, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "report.txt").read_text() == "keep me"
    bad = image.with_array(np.where(image.array > 500, np.nan, image.array.astype(np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        export_image_series(bad, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("case", ["uint16", "float", "left-handed"])
def test_export_values_and_geometry_round_trip(case, tmp_path):
    rng = np.random.default_rng(3)
    direction = np.eye(3)[:, ::-1]
    array = rng.integers(0, 60000, (5, 12, 14)).astype(
        np.uint16
    )  # MR-like: beyond int16, exact via intercept
    if case == "float":
        array = rng.normal(0.0, 250.0, (5, 12, 14)).astype(np.float32)
    if case == "left-handed":  # slices run against row x column: a reader stacks them the other way round
        direction = direction.copy()
        direction[:, 0] *= -1
    volume = Volume(array, (2.5, 0.8, 0.9), (4.0, -3.0, 20.0), direction, {"modality": "MR"})
    export_image_series(volume, tmp_path / case)
    (back,) = read_dicom(tmp_path / case)
    back, volume = back.canonical(), volume.canonical()  # compared voxel by voxel at the same LPS points
    assert np.allclose(back.affine, volume.affine, atol=1e-3)
    if case == "float":
        assert np.allclose(back.array, volume.array, atol=np.ptp(array) / 65534 / 2 + 1e-3)
    else:
        assert np.array_equal(back.array, volume.array)
    if case == "left-handed":
        assert np.array_equal(back.array, array[::-1])
    assert pydicom.dcmread(next((tmp_path / case).glob("*.dcm"))).SOPClassUID == pydicom.uid.MRImageStorage


def _basic_profile_values(datasets) -> dict:
    """Original values of the basic-profile attributes: tag → set of values as text."""
    tables = basic_profile_tags()
    profile = {
        pydicom.tag.Tag(t) for key, tags in tables.items() if key != "ALL_TAGS" for t in tags if len(t) == 2
    }
    values: dict = {}
    for dataset in datasets:
        for tag, found in _values(dataset).items():
            if tag in profile:
                values.setdefault(tag, set()).update(found)
    return values


@pytest.mark.shared_data
def test_export_of_a_real_series_layer_is_deidentified_with_consistent_uids(shared_data, tmp_path):
    folder = shared_data / "dicom" / "siemens_xa30_t1w_sag_classic" / "dicom"
    (volume,) = read_dicom(folder)
    layer_volume = volume.canonical()  # what the napari layer holds (S, P, L)
    originals = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    by_tag = _basic_profile_values(originals)
    # every original value of a basic-profile attribute, except bare numbers of up to 3 digits ("1", "50"),
    # which occur in any series as instance numbers or pixel values
    protected = {v for values in by_tag.values() for v in values if not (v.isdigit() and len(v) <= 3)}
    source = originals[0]
    assert {
        str(source.PatientName),
        source.PatientID,
        source.StudyInstanceUID,
        source.SOPInstanceUID,
        source.FrameOfReferenceUID,
        source.StudyDate,
        source.PatientAge,
    } <= set().union(*by_tag.values())
    # without de-identification the derived series joins the source's patient, study and frame of reference
    plain = export_image_series(layer_volume, tmp_path / "plain", deidentify=False)
    kept = pydicom.dcmread(plain.files[0], stop_before_pixels=True)
    assert plain.from_source and kept.StudyInstanceUID == source.StudyInstanceUID and len(plain.files) == 96
    assert kept.PatientID == source.PatientID and kept.FrameOfReferenceUID == source.FrameOfReferenceUID
    result = export_image_series(layer_volume, tmp_path / "deid", series_description="denoised T1w")
    assert result.from_source
    outputs = [pydicom.dcmread(p) for p in result.files]
    remaining = set().union(*({v for values in _values(d).values() for v in values} for d in outputs))
    assert not (protected & remaining)
    for dataset in outputs:  # and no basic-profile attribute keeps any of its original values, short or not
        assert not any(_values(dataset).get(tag, set()) & values for tag, values in by_tag.items())
    assert all(not any(e.tag.is_private for e in d) for d in outputs)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({d.data_element(keyword).value for d in outputs}) == 1
    assert len({d.SOPInstanceUID for d in outputs}) == len(outputs)
    assert outputs[0].StudyInstanceUID != kept.StudyInstanceUID
    # written as sagittal slices like the source, each at the position of its source slice
    (back,) = read_dicom(tmp_path / "deid")
    assert np.array_equal(back.array, volume.array) and np.allclose(back.affine, volume.affine, atol=1e-3)
    assert np.array_equal(back.canonical().array, layer_volume.array)
    positions = sorted(tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3)) for d in originals)
    assert sorted(tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3)) for d in outputs) == positions


def test_reoriented_swaps_and_flips_axes_without_interpolation(tmp_path):
    rng = np.random.default_rng(8)
    sagittal = np.column_stack(
        [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    )  # slices L, rows -S, cols P
    volume = Volume(
        rng.integers(0, 99, (4, 6, 5)).astype(np.int16), (2.0, 1.0, 0.5), (3.0, 4.0, 5.0), sagittal
    )
    shown = volume.canonical()
    assert shown.shape != volume.shape
    back = reoriented(shown, volume.direction)
    assert np.array_equal(back.array, volume.array) and np.allclose(back.affine, volume.affine)
    tilted = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    assert reoriented(shown, tilted) is None
    # a volume whose source series is gone is exported as a new study (and said so)
    gone = shown.with_array(shown.array, source_path=str(tmp_path / "moved"), series_uid="1.2.3")
    assert not export_image_series(gone, tmp_path / "out").from_source


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [
        ("int16", (4, 5, 6)),
        ("uint16", (3, 4, 5, 6)),
        ("float32", (4, 5, 6)),
        ("uint8", (2, 3, 4, 5)),
        ("int16", (3, 41, 256, 256)),  # 16 MB: written in chunks handed to the write-back one by one
    ],
)
def test_raw_nifti_write_is_byte_identical_to_nibabel(tmp_path, dtype, shape):
    import gzip

    import nibabel as nib

    from napari_medimg.io.nifti import _raw_writable

    array = (np.arange(np.prod(shape)) % 250).astype(dtype).reshape(shape)
    direction = np.array([[0, 0.6, 0.8], [0, 0.8, -0.6], [1.0, 0, 0]])
    volume = Volume(array, (2.0, 0.7, 0.8), (-3.0, 4.0, 5.0), direction)
    assert _raw_writable(array, tmp_path / "a.nii")
    write_nifti(volume, tmp_path / "a.nii")
    write_nifti(volume, tmp_path / "b.nii.gz")  # nibabel's own writer
    theirs = tmp_path / "b.nii"
    theirs.write_bytes(gzip.decompress((tmp_path / "b.nii.gz").read_bytes()))
    assert (tmp_path / "a.nii").read_bytes() == theirs.read_bytes()
    assert np.array_equal(
        np.asarray(nib.load(tmp_path / "a.nii").dataobj), array.transpose(*range(array.ndim)[::-1])
    )


def test_block_writer_puts_every_piece_at_its_offset_from_several_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from napari_medimg.io.nifti import BlockWriter

    rng = np.random.default_rng(1)
    expected = rng.integers(0, 255, 3_000_000, dtype=np.uint8)
    # pieces of random sizes, the first eight adjacent in order (gathered), the rest in reverse order
    edges = np.unique(np.concatenate([[0, expected.size], rng.integers(0, expected.size, 20)]))
    pieces = [
        (int(start), expected[start:stop].copy()) for start, stop in zip(edges[:-1], edges[1:], strict=True)
    ]
    order = pieces[:8] + pieces[8:][::-1]
    path = tmp_path / "blocks.bin"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with BlockWriter(descriptor) as writer, ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda piece: writer.write(piece[1], 100 + piece[0]), order))
    finally:
        os.close(descriptor)
    written = np.fromfile(path, np.uint8)
    assert written.size == 100 + expected.size
    np.testing.assert_array_equal(written[100:], expected)


def test_block_writer_finishes_a_short_gathered_write_piece_by_piece(tmp_path, monkeypatch):
    from napari_medimg.io.nifti import BlockWriter

    real = os.pwritev

    def short(descriptor, buffers, offset):  # a gathered write that stops inside its second piece
        return real(descriptor, [buffers[0], memoryview(buffers[1])[:7]], offset)

    monkeypatch.setattr(os, "pwritev", short)
    path = tmp_path / "blocks.bin"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with BlockWriter(descriptor) as writer:
            for index in range(4):
                writer.write(np.full(1000, index, np.uint8), index * 1000)
    finally:
        os.close(descriptor)
    np.testing.assert_array_equal(np.fromfile(path, np.uint8), np.repeat(np.arange(4, dtype=np.uint8), 1000))


def test_block_writer_raises_a_failed_write_when_closed(tmp_path):
    from napari_medimg.io.nifti import BlockWriter

    path = tmp_path / "read-only.bin"
    path.write_bytes(b"")
    descriptor = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError), BlockWriter(descriptor) as writer:
            writer.write(np.zeros(10, np.uint8), 0)
    finally:
        os.close(descriptor)


def test_the_collector_pause_nests_across_threads_and_restores_the_collector():
    import gc
    import threading

    from napari_medimg.io.dicom.records import collector_paused

    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other():
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        inside.wait(10)
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    thread.join(10)
    assert gc.isenabled()
    gc.disable()  # a caller that turned the collector off keeps it off
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
