"""Writers: NIfTI and DICOM-SEG round trips, DICOM export with PS3.15 Annex E basic-profile de-identification."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom, scan_dicom
from napari_medimg.io.dicom_write import basic_profile_tags, deidentify_series, write_dicom_series
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
    image = Volume(rng.integers(-100, 300, (9, 16, 18)).astype(np.int16), (3.0, 0.7, 0.8), (10.0, -5.0, 40.0),
                   rotation, {"modality": "CT"})
    template = Dataset()
    template.PatientName, template.PatientID = "Roe^Richard", "MRN-4242"
    template.PatientBirthDate, template.AccessionNumber = "19551231", "ACC-99"
    template.StudyDate, template.StudyTime, template.InstitutionName = "20240102", "101010", "General Hospital"
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
    originals = [pydicom.dcmread(p) for p in sorted(source_series.iterdir())]
    for dataset in originals:  # private tags must go too
        block = dataset.private_block(0x0011, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "secret private value")
        dataset.save_as(source_series / f"{dataset.SOPInstanceUID}.dcm")
    for path in list(source_series.iterdir()):
        if not path.name.startswith("1."):
            path.unlink()
    tables = basic_profile_tags()
    profile = {pydicom.tag.Tag(t) for key, tags in tables.items() if key != "ALL_TAGS" for t in tags if len(t) == 2}
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
    template = pydicom.dcmread(next(source_series.iterdir()), stop_before_pixels=True)
    floats = image.with_array(image.array.astype(np.float32) * 0.37)
    write_dicom_series(floats, tmp_path / "export", template=template, deidentify=True)
    (back,) = read_dicom(tmp_path / "export")
    assert np.allclose(back.array, floats.array, atol=np.ptp(floats.array) / 60000)
    assert np.allclose(back.affine, image.affine, atol=1e-4)
    dataset = pydicom.dcmread(next((tmp_path / "export").iterdir()))
    assert str(dataset.PatientName) != "Roe^Richard" and dataset.get("PatientBirthDate", "") != "19551231"
    assert dataset.StudyInstanceUID != template.StudyInstanceUID
    with pytest.raises(OverwriteError):
        write_dicom_series(floats, tmp_path / "export")
    assert len(scan_dicom(tmp_path / "export").series) == 1
