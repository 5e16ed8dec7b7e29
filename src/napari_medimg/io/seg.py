"""Labels ↔ DICOM-SEG (highdicom), referencing the source image series the labels were drawn on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom

from .. import __version__
from ..geometry import Volume
from .atomic import atomic_path
from .dicom import DicomSeries, scan_dicom
from .dicom.records import quiet
from .errors import CorruptFileError, NoSeriesError

__all__ = ["write_dicom_seg", "read_dicom_seg", "find_source_series"]


def find_source_series(source: str | os.PathLike, series_uid: str | None = None) -> DicomSeries:
    """The one series of ``source`` (file or folder) the labels belong to (``series_uid`` picks one of several).

    Parameters
    ----------
    source : str or os.PathLike
        A DICOM file or folder.
    series_uid : str, optional
        SeriesInstanceUID when ``source`` holds several series.

    Returns
    -------
    DicomSeries
        The source stack.

    Raises
    ------
    NoSeriesError
        When not exactly one series matches.
    """
    scan = scan_dicom(source)
    candidates = scan.get(series_uid) if series_uid else scan.series
    if len(candidates) != 1:
        found = ", ".join(f"{s.uid} ({s.name})" for s in scan.series)
        raise NoSeriesError(
            f"expected exactly one source series{f' with UID {series_uid}' if series_uid else ''} "
            f"in {os.fspath(source)}; found: {found}"
        )
    return candidates[0]


def _check_source(series: DicomSeries) -> None:
    if series.header.enhanced or any(f.frame is not None for f in series.frames):
        raise ValueError("DICOM-SEG export references single-frame source series only")
    if series.tilt_degrees or None in series.slots:
        raise ValueError(
            "the source series was resampled (gantry tilt) or has missing slices, so labels on its "
            "grid cannot reference its images one to one; export the labels as NIfTI instead"
        )


def _on_source_grid(labels: Volume, source: DicomSeries) -> np.ndarray:
    """The labels in the source series' voxel order (they may be shown reoriented, e.g. sagittal → SPL)."""
    array = np.asarray(labels.array)
    if array.shape == source.shape and np.allclose(labels.affine, source.affine, atol=1e-3):
        return array
    order = np.arange(int(np.prod(source.shape))).reshape(source.shape)
    reoriented = Volume(order, source.spacing, source.origin, source.direction).canonical()
    if array.shape != reoriented.shape or not np.allclose(labels.affine, reoriented.affine, atol=1e-3):
        raise ValueError("the labels do not lie on the source series' grid (different shape or geometry)")
    result = np.empty(source.shape, array.dtype)
    result.reshape(-1)[np.asarray(reoriented.array).reshape(-1)] = array.reshape(-1)
    return result


def write_dicom_seg(
    labels: Volume,
    path: str | os.PathLike,
    source: DicomSeries,
    names: dict[int, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a labels Volume drawn on ``source`` as a DICOM-SEG (one segment per label value), atomically.

    Parameters
    ----------
    labels : Volume
        Integer labels on the grid of ``source`` (possibly reoriented for display).
    path : str or os.PathLike
        The ``.dcm`` file to write.
    source : DicomSeries
        The series the labels were drawn on.
    names : dict, optional
        Label value → segment name.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    _check_source(source)
    array = _on_source_grid(labels, source)
    values = [int(v) for v in np.unique(array) if v > 0]
    if not values:
        raise ValueError("the labels layer is empty; there is nothing to export")
    if values[-1] > 65535 or array.min() < 0:
        raise ValueError("label values must be between 0 and 65535")
    names = names or {}
    # highdicom wants consecutive segment numbers 1..N: map label values onto them and back through the labels
    relabelled = np.zeros(array.shape, np.uint16)
    descriptions = []
    for number, value in enumerate(values, start=1):
        relabelled[array == value] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=str(names.get(value, f"label {value}"))[:64],
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
        )
    with quiet():
        sources = [pydicom.dcmread(frame.path, stop_before_pixels=True) for frame in source.slots]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=relabelled,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=9001,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-medimg",
            manufacturer_model_name="napari-medimg",
            software_versions=__version__,
            device_serial_number="0",
            content_label="LABELS",
            omit_empty_frames=False,
        )
        for number, value in enumerate(values, start=1):  # keep the original label value for the round trip
            seg.SegmentSequence[number - 1].SegmentDescription = f"label value {value}"
    with atomic_path(path, overwrite=overwrite) as temporary:
        seg.save_as(temporary)
    return Path(path)


def read_dicom_seg(path: str | os.PathLike, source: DicomSeries) -> Volume:
    """Labels of a DICOM-SEG on the grid of its ``source`` series (label values as written, 0 = background).

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM-SEG file.
    source : DicomSeries
        The series it references.

    Returns
    -------
    Volume
        uint8 or uint16 labels with the source's geometry.

    Raises
    ------
    CorruptFileError, NoSeriesError
        When the file is not a readable SEG, or does not reference ``source``.
    """
    import highdicom as hd

    _check_source(source)
    try:
        with quiet():
            seg = hd.seg.segread(os.fspath(path))
    except Exception as error:
        raise CorruptFileError(f"{Path(path).name} is not a readable DICOM-SEG ({error})") from error
    referenced = {str(ref.SeriesInstanceUID) for ref in seg.ReferencedSeriesSequence}
    if source.uid not in referenced:
        raise NoSeriesError(f"{Path(path).name} does not reference series {source.uid}")
    uids = [frame.sop_uid for frame in source.slots]
    with quiet():
        masks = seg.get_pixels_by_source_instance(uids, combine_segments=False, dtype=np.uint8)
    labels = np.zeros(source.shape, np.uint16)
    for index, item in enumerate(seg.SegmentSequence):
        description = str(item.get("SegmentDescription", ""))
        value = int(description.rsplit(" ", 1)[-1]) if description.startswith("label value ") else index + 1
        labels[masks[..., index] > 0] = value
    dtype = np.uint8 if labels.max() < 256 else np.uint16
    metadata = {
        "series_description": str(seg.get("SeriesDescription", "") or Path(path).stem),
        "source_series_uid": source.uid,
        "geometry_source": "source series of the DICOM-SEG",
    }
    return Volume(labels.astype(dtype), source.spacing, source.origin, source.direction, metadata)
