"""Writing DICOM: an image Volume as a new single-frame series (``export_image_series`` adds the patient/study
context and orientation of the series the volume came from), and de-identified copies of a source series.

De-identification (:mod:`.deid`) follows the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile, applied recursively to every sequence item, with one UID map per export so that references inside a
series (and between the series of one export) stay consistent.  Every folder is written with
:func:`.atomic.atomic_directory` (a unit, swapped in atomically; an existing folder is replaced only when
napari-medimg wrote it, never when it is or contains the source).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..geometry import Volume
from ..progress import ProgressCallback, report
from .atomic import atomic_directory
from .deid import (
    DEIDENTIFICATION_METHOD,
    BurnedInAnnotationError,
    basic_profile_tags,
    check_burned_in,
    deidentify_dataset,
)
from .dicom import scan_dicom
from .dicom.records import quiet
from .errors import MedImgReadError

__all__ = [
    "write_dicom_series",
    "export_image_series",
    "SeriesExport",
    "reoriented",
    "deidentify_dataset",
    "deidentify_series",
    "basic_profile_tags",
    "DEIDENTIFICATION_METHOD",
    "BurnedInAnnotationError",
]

_SOP_CLASS = {"CT": pydicom.uid.CTImageStorage, "MR": pydicom.uid.MRImageStorage}
_PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "InstitutionName",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "Manufacturer",
    "BurnedInAnnotation",
)


def _rescale(array: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) with which int16 stored values reproduce ``array``.

    Exact for integer values that span at most 65,536 values (HU, most MR): slope 1 and an intercept that
    shifts the range into int16 when needed; otherwise the value range in 65,534 steps.
    """
    if array.size == 0:
        return 1.0, 0.0
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("the image holds NaN or infinite values, which DICOM pixel data cannot store")
    integral = array.dtype.kind in "iub" or bool(np.all(np.rint(array) == array))
    if integral and high - low <= 65535:
        return 1.0, (0.0 if low >= -32768 and high <= 32767 else low + 32768.0)
    slope = (high - low) / 65534.0 if high > low else 1.0
    return slope, low + 32767.0 * slope


def _stored(plane: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    values = np.rint((np.asarray(plane, np.float64) - intercept) / slope)
    return np.clip(values, -32768, 32767).astype(np.int16)


def _along_normal(volume: Volume) -> Volume:
    """The same voxels (same LPS positions) with array axis z along row × column of the written orientation,
    flipped if needed, so that InstanceNumber follows the order in which readers stack the slices."""
    direction = volume.direction
    if np.dot(np.cross(direction[:, 2], direction[:, 1]), direction[:, 0]) >= 0:
        return volume
    flipped = direction.copy()
    flipped[:, 0] = -flipped[:, 0]
    last = volume.index_to_world([volume.shape[0] - 1, 0, 0])
    return Volume(volume.array[::-1], volume.spacing, last, flipped, dict(volume.metadata))


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    modality: str | None = None,
    series_description: str | None = None,
    template: Dataset | None = None,
    deidentify: bool = False,
    allow_burned_in: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    sources: tuple = (),
) -> list[Path]:
    """Write a 3D Volume as a new single-frame DICOM series (one file per slice) into ``folder`` (atomic).

    Every file carries its slice's ImagePositionPatient, the ImageOrientationPatient and PixelSpacing of the
    volume, and int16 pixels with RescaleSlope/Intercept (exact for integer values such as HU).  Patient and
    study attributes are copied from ``template`` (e.g. the first header of the source series) when given;
    otherwise the series starts a new study.  With ``deidentify`` the basic profile is applied to every file
    (UIDs remapped consistently); a template flagged ``BurnedInAnnotation = YES`` is then refused unless
    ``allow_burned_in`` (the flag is carried to the new series either way, so it stays truthful).  The folder
    is replaced only with ``overwrite`` and only when napari-medimg wrote it (see :mod:`.atomic`).

    Parameters
    ----------
    volume : Volume
        3D volume with orthogonal axes and finite values.
    folder : path-like
        Output folder (written as a unit).
    modality : str, optional
        ``CT``, ``MR`` … (default: the volume's metadata, else CT).
    series_description : str, optional
        SeriesDescription; kept when de-identified, since the user typed it (a description taken from the
        volume's metadata is removed).
    template : pydicom.Dataset, optional
        Header whose patient/study attributes are copied.
    deidentify : bool, optional
        Apply the basic profile to every file.
    allow_burned_in : bool, optional
        Accept a template flagged ``BurnedInAnnotation = YES`` when de-identifying.
    overwrite : bool, optional
        Replace an earlier output folder.
    progress : callable, optional
        ``progress(done, total)``.
    sources : tuple of path-like, optional
        Inputs ``folder`` must not be, lie in or contain (e.g. the series the volume was read from).

    Returns
    -------
    list of Path
        The files written, in slice order.

    Raises
    ------
    ValueError
        For a volume that is not 3D, has non-orthogonal axes or non-finite values.
    BurnedInAnnotationError
        See above.
    OverwriteError
        When ``folder`` exists and may not be replaced.
    """
    if deidentify and template is not None:
        check_burned_in(template, "the source series", allow=allow_burned_in)
    if volume.ndim != 3:
        raise ValueError("a DICOM series export needs a 3D volume")
    direction = volume.direction
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError("the volume's axes are not orthogonal; resample it before exporting to DICOM")
    volume = _along_normal(volume)
    direction = volume.direction
    modality = modality or str(volume.metadata.get("modality") or "CT")
    sop_class = _SOP_CLASS.get(modality, pydicom.uid.SecondaryCaptureImageStorage)
    array = np.asarray(volume.array)
    slope, intercept = _rescale(array)
    description = series_description or str(
        volume.metadata.get("series_description") or "napari-medimg export"
    )
    series_uid, frame_uid, study_uid = generate_uid(), generate_uid(), generate_uid()
    uid_map: dict = {}
    row_cos, col_cos = direction[:, 2], direction[:, 1]
    written = []
    with atomic_directory(folder, overwrite=overwrite, sources=sources, kind="DICOM series") as temporary:
        for index in range(array.shape[0]):
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
            ds.Rows, ds.Columns = array.shape[1], array.shape[2]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
            if modality == "CT":
                ds.RescaleType = "HU"
            centre, width = volume.metadata.get("window_center"), volume.metadata.get("window_width")
            if centre is not None and width is not None:
                ds.WindowCenter, ds.WindowWidth = f"{float(centre):g}", f"{float(width):g}"
            ds.PixelData = _stored(array[index], slope, intercept).tobytes()
            if deidentify:
                deidentify_dataset(ds, uid_map, allow_burned_in=allow_burned_in)
                if series_description:  # typed by the user for this export, not taken from the source
                    ds.SeriesDescription = series_description
            path = temporary / f"slice_{index + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            written.append(Path(folder) / path.name)
            report(progress, index + 1, array.shape[0])
    return written


@dataclass(frozen=True)
class SeriesExport:
    """What :func:`export_image_series` wrote: the files, and whether patient/study came from the source.

    Parameters
    ----------
    files : list of Path
        The files written, in slice order.
    from_source : bool
        Whether patient, study and frame of reference were taken from the volume's source series.
    """

    files: list[Path]
    from_source: bool


def _source_series(metadata: dict):
    """The DICOM series a volume was read from (metadata ``source_path`` and ``series_uid``), or None when the
    volume did not come from DICOM or that series is no longer where it was read."""
    source, uid = metadata.get("source_path"), metadata.get("series_uid")
    if not source or not uid or not Path(source).exists():
        return None
    try:
        series = scan_dicom(source).get(uid)
    except MedImgReadError:
        return None
    return series[0] if series and series[0].frames else None


def reoriented(volume: Volume, direction: np.ndarray) -> Volume | None:
    """The same voxels with array axes along the columns of ``direction`` (axes swapped and flipped, no
    interpolation), or None when ``direction`` is not a reordering of the volume's axes.

    Parameters
    ----------
    volume : Volume
        A 3D volume.
    direction : ndarray
        The wanted 3x3 direction (columns: LPS directions of array axes z, y, x).

    Returns
    -------
    Volume or None
        The reordered volume (same LPS position of every voxel), or None.
    """
    cosines = volume.direction.T @ np.asarray(direction, float)  # [own axis, wanted axis]
    order = [int(i) for i in np.argmax(np.abs(cosines), axis=0)]
    if sorted(order) != [0, 1, 2] or not np.allclose(np.abs(cosines[order, [0, 1, 2]]), 1.0, atol=1e-4):
        return None
    array, spacing = volume.array.transpose(order), volume.spacing[order]
    axes, origin = volume.direction[:, order].copy(), volume.origin.copy()
    flips = [axis for axis in range(3) if cosines[order[axis], axis] < 0]
    for axis in flips:
        origin = origin + axes[:, axis] * spacing[axis] * (array.shape[axis] - 1)
        axes[:, axis] = -axes[:, axis]
    if flips:
        array = array[tuple(slice(None, None, -1) if axis in flips else slice(None) for axis in range(3))]
    return Volume(array, spacing, origin, axes, dict(volume.metadata))


def export_image_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    deidentify: bool = True,
    allow_burned_in: bool = False,
    modality: str | None = None,
    series_description: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> SeriesExport:
    """Export an image volume (e.g. a processed layer) as a new DICOM series in ``folder`` (atomic).

    When the volume came from a DICOM series (its metadata names the source), patient and study attributes
    and the frame of reference are taken from that series, and the slices are written in that series'
    orientation (a layer shown reoriented, e.g. a sagittal series in napari's (S, P, L) order, goes back to
    sagittal slices; no interpolation); otherwise the series starts a new study.  With
    ``deidentify`` (the default) the PS3.15 Annex E basic profile is applied to every file (a source flagged
    ``BurnedInAnnotation = YES`` is refused unless ``allow_burned_in``).  An existing non-empty ``folder``
    is replaced only with ``overwrite`` and only when napari-medimg wrote it (it holds the
    :data:`.atomic.MARKER` file); never the source series' folder.

    Parameters
    ----------
    volume : Volume
        The image (metadata ``source_path``/``series_uid`` name its source series, when it has one).
    folder : path-like
        Output folder.
    deidentify : bool, optional
        Apply the basic profile (default True).
    allow_burned_in : bool, optional
        Accept a source flagged ``BurnedInAnnotation = YES``.
    modality, series_description : str, optional
        As in :func:`write_dicom_series`.
    overwrite : bool, optional
        Replace an earlier export.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    SeriesExport
        The files and whether the source's patient/study were used.
    """
    series, template = _source_series(volume.metadata), None
    if series is not None:
        with quiet():
            template = pydicom.dcmread(series.frames[0].path, stop_before_pixels=True)
        volume = reoriented(volume, series.direction) or volume
    files = write_dicom_series(
        volume,
        folder,
        modality=modality,
        series_description=series_description,
        template=template,
        deidentify=deidentify,
        allow_burned_in=allow_burned_in,
        overwrite=overwrite,
        progress=progress,
        sources=tuple(p for p in [volume.metadata.get("source_path")] if p),
    )
    return SeriesExport(files, template is not None)


def deidentify_series(
    source: str | os.PathLike,
    folder: str | os.PathLike,
    series_uid: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    *,
    allow_burned_in: bool = False,
    uid_map: dict | None = None,
) -> list[Path]:
    """Copy the series in ``source`` (all, or ``series_uid``) de-identified into ``folder`` (atomic).

    Parameters
    ----------
    source : path-like
        DICOM file or folder.
    folder : path-like
        Output folder: written as a unit; an existing one is replaced only with ``overwrite`` and only when
        napari-medimg wrote it; never ``source`` itself, a folder inside it, or a folder containing it.
    series_uid : str, optional
        Only this series.
    overwrite : bool, optional
        Replace an earlier output.
    progress : callable, optional
        ``progress(done, total)``.
    allow_burned_in : bool, optional
        Copy files flagged ``BurnedInAnnotation = YES`` (refused by default; the flag is kept).
    uid_map : dict, optional
        The export's UID map, to share it between several calls of one export.

    Returns
    -------
    list of Path
        The files written (under ``folder``).

    Raises
    ------
    OverwriteError
        When ``folder`` may not be written (see above).
    BurnedInAnnotationError
        When a file declares burned-in annotation (before anything is written).
    """
    from .atomic import check_not_overlapping

    check_not_overlapping(folder, [source])
    scan = scan_dicom(source)
    chosen = scan.get(series_uid) if series_uid else scan.series
    files = sorted({frame.path for series in chosen for frame in series.frames})
    uid_map = {} if uid_map is None else uid_map
    written = []
    with atomic_directory(
        folder, overwrite=overwrite, sources=[source], kind="de-identified DICOM"
    ) as temporary:
        for index, file in enumerate(files):
            with quiet():
                dataset = pydicom.dcmread(file)
            deidentify_dataset(dataset, uid_map, allow_burned_in=allow_burned_in)
            path = temporary / f"image_{index + 1:05d}.dcm"
            dataset.save_as(path)
            written.append(Path(folder) / path.name)
            report(progress, index + 1, len(files))
    return written
