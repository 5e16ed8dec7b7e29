"""Writing DICOM: an image Volume as a new single-frame series, and de-identified copies of a source series.

De-identification follows the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile through
the maintained ``dicom-anonymizer`` package (its tag tables follow the standard's Annex E table): identifying
attributes are replaced, emptied or removed as the profile says, private tags are removed, and every UID is
remapped through one table per export so that references inside a series (and between the series of one
export) stay consistent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..geometry import Volume
from ..progress import ProgressCallback, report
from .atomic import atomic_directory
from .dicom import _quiet, scan_dicom

__all__ = ["write_dicom_series", "deidentify_dataset", "deidentify_series", "basic_profile_tags",
           "DEIDENTIFICATION_METHOD"]

DEIDENTIFICATION_METHOD = "PS3.15 Annex E Basic Profile (dicom-anonymizer)"
_TAG_TABLE = "dicomfields_2026c"
_SOP_CLASS = {"CT": pydicom.uid.CTImageStorage, "MR": pydicom.uid.MRImageStorage}
_PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID", "StudyDate",
    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription", "InstitutionName",
    "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer",
)


def basic_profile_tags() -> dict[str, list]:
    """The Annex E basic-profile tag lists (category → list of (group, element) tuples) in use."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    return dicom_anonymization_database_selector(_TAG_TABLE)


def _uid_action(uid_map: dict):
    def remap(dataset, tag):
        element = dataset.get(tag)
        if element is None or element.VR != "UI" or element.value in (None, ""):
            return
        if isinstance(element.value, pydicom.multival.MultiValue):
            element.value = [uid_map.setdefault(str(v), generate_uid()) for v in element.value]
        else:
            element.value = uid_map.setdefault(str(element.value), generate_uid())

    return remap


def deidentify_dataset(dataset: Dataset, uid_map: dict) -> Dataset:
    """Apply the basic profile to ``dataset`` in place; UIDs are remapped through ``uid_map`` (shared per export)."""
    from dicomanonymizer import simpledicomanonymizer as anonymizer

    tables = basic_profile_tags()
    remap = _uid_action(uid_map)
    rules = {tag: remap for tag in tables["U_TAGS"]}
    with _quiet():
        anonymizer.anonymize_dataset(dataset, extra_anonymization_rules=rules, delete_private_tags=True,
                                     base_rules_gen=lambda: anonymizer.initialize_actions(_TAG_TABLE))
        _remap_nested_uids(dataset, remap)
    if "SOPInstanceUID" in dataset and hasattr(dataset, "file_meta"):
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    dataset.DeidentificationMethodCodeSequence = [code]
    return dataset


def _remap_nested_uids(dataset: Dataset, remap) -> None:
    """Instance UIDs inside kept sequences (e.g. references to other images) follow the same map."""
    keep = {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
            "CodingSchemeUID", "ContextUID", "ContextGroupExtensionCreatorUID"}

    def visit(ds, element):
        if element.VR == "UI" and element.keyword not in keep and element.value:
            remap(ds, element.tag)

    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                item.walk(visit)


def _storage(volume: Volume) -> tuple[np.ndarray, float, float]:
    """int16 stored values with (slope, intercept) that reproduce the volume's values."""
    array = np.asarray(volume.array)
    if array.dtype.kind in "iub" and (array.size == 0 or (array.min() >= -32768 and array.max() <= 32767)):
        return array.astype(np.int16), 1.0, 0.0
    values = array.astype(np.float64)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if np.allclose(values, np.round(values)) and low >= -32768 and high <= 32767:
        return np.round(values).astype(np.int16), 1.0, 0.0
    slope = (high - low) / 65534.0 if high > low else 1.0
    intercept = low + 32767.0 * slope
    return np.round((values - intercept) / slope).astype(np.int16), slope, intercept


def write_dicom_series(volume: Volume, folder: str | os.PathLike, *, modality: str | None = None,
                       series_description: str | None = None, template: Dataset | None = None,
                       deidentify: bool = False, overwrite: bool = False,
                       progress: ProgressCallback | None = None) -> list[Path]:
    """Write a 3D Volume as a new single-frame DICOM series (one file per slice) into ``folder`` (atomic).

    Patient and study attributes are copied from ``template`` (e.g. the first header of the source series)
    when given; with ``deidentify`` the basic profile is applied to every file (UIDs remapped consistently).
    """
    if volume.ndim != 3:
        raise ValueError("a DICOM series export needs a 3D volume")
    direction = volume.direction
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError("the volume's axes are not orthogonal; resample it before exporting to DICOM")
    modality = modality or str(volume.metadata.get("modality") or "CT")
    sop_class = _SOP_CLASS.get(modality, pydicom.uid.SecondaryCaptureImageStorage)
    stored, slope, intercept = _storage(volume)
    description = series_description or str(volume.metadata.get("series_description") or "napari-medimg export")
    series_uid, frame_uid, study_uid = generate_uid(), generate_uid(), generate_uid()
    uid_map: dict = {}
    row_cos, col_cos = direction[:, 2], direction[:, 1]
    written = []
    with atomic_directory(folder, overwrite=overwrite) as temporary:
        for index in range(stored.shape[0]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.StudyInstanceUID, ds.FrameOfReferenceUID = study_uid, frame_uid
            ds.PatientName, ds.PatientID, ds.StudyID = "", "", ""
            ds.StudyDate = ds.StudyTime = ds.AccessionNumber = ds.ReferringPhysicianName = ""
            ds.PatientBirthDate = ds.PatientSex = ""
            if template is not None:
                for keyword in _PATIENT_STUDY_KEYWORDS:
                    if keyword in template:
                        setattr(ds, keyword, template.data_element(keyword).value)
            ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
            ds.SeriesInstanceUID, ds.Modality, ds.SeriesDescription = series_uid, modality, description
            ds.SeriesNumber, ds.InstanceNumber = 9000, index + 1
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.ImagePositionPatient = [f"{v:.6f}" for v in volume.index_to_world([index, 0, 0])]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
            ds.PixelSpacing = [f"{volume.spacing[1]:.6f}", f"{volume.spacing[2]:.6f}"]
            ds.SliceThickness = f"{volume.spacing[0]:.6f}"
            ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
            if modality == "CT":
                ds.RescaleType = "HU"
            centre, width = volume.metadata.get("window_center"), volume.metadata.get("window_width")
            if centre is not None and width is not None:
                ds.WindowCenter, ds.WindowWidth = f"{float(centre):g}", f"{float(width):g}"
            ds.PixelData = np.ascontiguousarray(stored[index]).tobytes()
            if deidentify:
                deidentify_dataset(ds, uid_map)
            path = temporary / f"slice_{index + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            written.append(Path(folder) / path.name)
            report(progress, index + 1, stored.shape[0])
    return written


def deidentify_series(source: str | os.PathLike, folder: str | os.PathLike, series_uid: str | None = None,
                      overwrite: bool = False, progress: ProgressCallback | None = None) -> list[Path]:
    """Copy the series in ``source`` (all, or ``series_uid``) de-identified into ``folder`` (atomic)."""
    scan = scan_dicom(source)
    chosen = scan.get(series_uid) if series_uid else scan.series
    files = sorted({frame.path for series in chosen for frame in series.frames})
    uid_map: dict = {}
    written = []
    with atomic_directory(folder, overwrite=overwrite) as temporary:
        for index, file in enumerate(files):
            with _quiet():
                dataset = pydicom.dcmread(file)
            deidentify_dataset(dataset, uid_map)
            path = temporary / f"image_{index + 1:05d}.dcm"
            dataset.save_as(path)
            written.append(Path(folder) / path.name)
            report(progress, index + 1, len(files))
    return written
