"""DICOM series discovery and reading with correct geometry (see docs/geometry.md).

Two passes, one module per concern:

1. :func:`scan_dicom` reads headers only (``files`` finds regular files that can be DICOM, ``header`` turns
   every image, enhanced frame or mosaic tile into a :class:`~.records.FrameRecord`), groups them by
   SeriesInstanceUID and SeriesNumber and splits each series into stacks (``series``: ImageType, echo, ...).
   ``placement`` orders each stack's images into slices (by the projection of ImagePositionPatient on the
   slice normal) and volumes (images sharing a position, by :data:`VOLUME_ORDER`), with spacing, gaps,
   duplicates, uneven spacing and gantry tilt described in words.
2. :func:`read_series` (``pixels``) reads the pixels (eagerly on a thread pool, or lazily as a dask array
   with one chunk per slice), decodes compressed transfer syntaxes, applies RescaleSlope/Intercept per image
   (``int16`` when exact, otherwise ``float32``) and, for a gantry-tilted stack, resamples every slice onto
   an orthogonal grid.  A 4D stack is a ``(volume, z, y, x)`` array (the volume axis first) with
   per-volume metadata in ``metadata["volume_info"]``.

Everything a caller can get wrong about a file is raised as a :class:`~napari_medimg.io.errors.MedImgReadError`
subclass.  Patient name, ID and birth date are never read into names, metadata or messages.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...geometry import Volume
from ...processing.windows import CT_WINDOW_PRESETS
from ...progress import ProgressCallback, report
from ..errors import CorruptFileError, NoSeriesError
from .display import check_window
from .files import find_dicom_files, is_dicom_file, is_regular_file
from .header import pixel_value_offset
from .pixels import raw_frame, read_pixels
from .placement import VOLUME_ORDER
from .records import FrameRecord, joined
from .series import DicomScan, DicomSeries, output_dtype, scan_dicom, scan_series_of_file

__all__ = [
    "DicomSeries",
    "DicomScan",
    "FrameRecord",
    "scan_dicom",
    "scan_series_of_file",
    "read_series",
    "series_metadata",
    "read_dicom",
    "read_dicom_file",
    "is_dicom_file",
    "is_regular_file",
    "find_dicom_files",
    "CT_WINDOW_PRESETS",
    "LAZY_THRESHOLD_BYTES",
    "VOLUME_ORDER",
]

#: series larger than this (bytes after rescaling) are read lazily by default
LAZY_THRESHOLD_BYTES = 256 * 2**20

# names kept for callers of the former single module
_raw_frame = raw_frame
_joined = joined
_pixel_value_offset = pixel_value_offset


def read_series(
    series: DicomSeries,
    lazy: bool | None = None,
    philips_float: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Pixels of one stack as a Volume (LPS; ``(z, y, x)``, or ``(volume, z, y, x)`` for a 4D stack).

    Parameters
    ----------
    series : DicomSeries
        One stack from :func:`scan_dicom`.
    lazy : bool, optional
        Return a dask array (one chunk per slice of each volume).  ``None`` reads lazily above
        :data:`LAZY_THRESHOLD_BYTES` and for every 4D stack (the first slice shows before the rest is read).
    philips_float : bool
        Philips floating-point values (value / (RescaleSlope x private ScaleSlope)), as dcm2niix does by
        default, instead of the DICOM displayed values.
    progress : callable, optional
        ``progress(done, total)`` per image read.

    Returns
    -------
    Volume
        The pixels with geometry and a PHI-free summary in ``metadata``.
    """
    if philips_float and series.dtype.kind == "i":
        dtype, fill = output_dtype(series.frames, philips_float)
        series = replace(series, dtype=dtype, fill_value=fill)
    if lazy is None:
        lazy = series.nbytes > LAZY_THRESHOLD_BYTES or series.n_volumes > 1
    if lazy and series.dtype == np.int32:
        series = replace(
            series, dtype=np.dtype(np.float32)
        )  # exact for 16-bit data, and known before reading
    array, reader = read_pixels(series, lazy, philips_float, progress)
    sample = (
        reader(0, series.shape[0] // 2)[None] if lazy else np.asarray(array if array.ndim == 3 else array[0])
    )
    metadata = series_metadata(series, sample, lazy, array.dtype, philips_float)
    return Volume(array, series.spacing, series.origin, series.direction, metadata)


def series_metadata(
    series: DicomSeries,
    sample: np.ndarray,
    lazy: bool,
    dtype: np.dtype,
    philips_float: bool,
    *,
    summary: dict | None = None,
    acquisition: dict | None = None,
) -> dict:
    """The PHI-free metadata of a stack read as a Volume (what :func:`read_series` puts in ``metadata``).

    Parameters
    ----------
    series : DicomSeries
        The stack.
    sample : numpy.ndarray
        Some of its output values, ``(n, y, x)`` (the whole first volume, or its middle slice when lazy):
        a stored display window that shows almost none of them is replaced.
    lazy : bool
        Whether the pixels are read on demand.
    dtype : numpy.dtype
        The output dtype.
    philips_float : bool
        Philips floating-point values were read.
    summary, acquisition : dict, optional
        :meth:`DicomSeries.summary` and :meth:`DicomSeries.acquisition` when the caller already has them
        (they loop over every image of the stack).

    Returns
    -------
    dict
        :meth:`DicomSeries.summary` plus window check, ``lazy``, ``dtype``, ``source_path``, ``acquisition``
        and ``values`` (how the values relate to the stored ones).
    """
    metadata = dict(series.summary() if summary is None else summary)
    check_window(metadata, sample)
    metadata["lazy"] = bool(lazy)
    metadata["dtype"] = str(np.dtype(dtype))
    metadata["source_path"] = series.source
    acquisition = series.acquisition() if acquisition is None else acquisition
    if acquisition:
        metadata["acquisition"] = acquisition
    if philips_float:
        metadata["values"] = "Philips floating-point values (displayed value / (RescaleSlope x ScaleSlope))"
    elif any(f.slope != 1 or f.intercept != 0 for f in series.frames):
        metadata["values"] = "stored values x RescaleSlope + RescaleIntercept, per image"
    else:
        metadata["values"] = "stored values (no rescale in the files)"
    return metadata


def read_dicom(
    path: str | os.PathLike,
    series_uid: str | None = None,
    lazy: bool | None = None,
    philips_float: bool = False,
    progress: ProgressCallback | None = None,
) -> list[Volume]:
    """Every stack of every series (or those of ``series_uid``) in a file or folder, as Volumes.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file or folder.
    series_uid : str, optional
        Only this SeriesInstanceUID.
    lazy : bool, optional
        See :func:`read_series`.
    philips_float : bool
        See :func:`read_series`.
    progress : callable, optional
        ``progress(done, total)`` over all images.

    Returns
    -------
    list of Volume
        One per stack.

    Raises
    ------
    NoSeriesError
        When nothing (or not ``series_uid``) is found.
    """
    scan = scan_dicom(path, philips_float=philips_float)
    chosen = scan.get(series_uid) if series_uid else scan.series
    if not chosen:
        known = ", ".join(f"{s.uid} ({s.name})" for s in scan.series)
        raise NoSeriesError(f"series {series_uid} is not in {os.fspath(path)}; found: {known}")
    total = sum(len(s.frames) for s in chosen)
    volumes, done = [], 0
    for series in chosen:

        def forward(step, _total, offset=done):
            report(progress, offset + step, total)

        volumes.append(read_series(series, lazy=lazy, philips_float=philips_float, progress=forward))
        done += len(series.frames)
    return volumes


def read_dicom_file(path: str | os.PathLike) -> Volume:
    """The first stack of one DICOM file (a single slice, or a multi-frame file's first stack), read eagerly.

    Parameters
    ----------
    path : str or os.PathLike
        One DICOM file.

    Returns
    -------
    Volume
        Its first stack.

    Raises
    ------
    CorruptFileError
        When ``path`` is not a regular file.
    """
    if not is_regular_file(path):
        raise CorruptFileError(f"{os.fspath(path)} is not a regular file")
    return read_dicom(Path(os.fspath(path)), lazy=False)[0]
