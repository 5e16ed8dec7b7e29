"""Single colour DICOM images (photographs, secondary captures, ultrasound stills): RGB, not a volume series.

A file with more than one sample per pixel (``RGB``, ``YBR_FULL``, ``YBR_FULL_422``, ... in any transfer
syntax pydicom decodes) is read as a raster image is (:mod:`napari_medimg.io.raster`): a ``(y, x, 3)`` array
with ``metadata["rgb"] = True`` and a spacing of ``(dy, dx, 1.0)``, the pixel size from PixelSpacing (else
ImagerPixelSpacing), or 1 mm with ``metadata["spacing_assumed"] = True`` when the file gives none.  YBR
colours are converted to RGB by pydicom.  Such files are not part of a volume series: the series scan lists
them as skipped, and :func:`~napari_medimg.io.volumes.read_volume` (the commands) and napari read one on its
own.  A multi-frame colour file (a cine loop) is refused with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...geometry import Volume
from ..errors import CorruptFileError, UnsupportedFileError
from .files import BoundedReader
from .header import read_header
from .pixels import compressed_pixel_array
from .records import MAX_FRAME_PIXELS, quiet, to_floats

__all__ = ["is_colour_file", "read_colour_dicom"]


def is_colour_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM image with more than one sample per pixel (header only).

    Parameters
    ----------
    path : str or os.PathLike
        A file.

    Returns
    -------
    bool
        False for grey images and for anything that is not a readable DICOM header.
    """
    try:
        with quiet():
            dataset = read_header(Path(os.fspath(path)))[0]
        return int(dataset.get("SamplesPerPixel", 1) or 1) > 1
    except Exception:  # noqa: BLE001 - a damaged header is not a colour image; the series reader says why
        return False


def read_colour_dicom(path: str | os.PathLike) -> Volume:
    """One colour DICOM image as an RGB Volume ``(y, x, 3)`` (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        A single-frame colour DICOM file.

    Returns
    -------
    Volume
        ``(y, x, 3)`` (``uint8``, or ``uint16`` for 16-bit samples) with ``metadata["rgb"] = True``; no
        patient data in the metadata.

    Raises
    ------
    UnsupportedFileError
        For a multi-frame colour file or a frame over ``MAX_FRAME_PIXELS`` pixels.
    CorruptFileError
        When the pixel data cannot be decoded.
    """
    import pydicom

    path = Path(os.fspath(path))
    with quiet():
        try:  # pydicom parses values when they are first read: a damaged value raises there
            with BoundedReader(path) as handle:
                dataset = pydicom.dcmread(handle)
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
            rows, cols = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
            spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
            source = "PixelSpacing" if dataset.get("PixelSpacing") else "ImagerPixelSpacing"
            metadata: dict = {
                "series_description": str(dataset.get("SeriesDescription", "") or "") or path.stem,
                "modality": str(dataset.get("Modality", "") or ""),
                "rgb": True,
                "format": "dicom",
                "photometric_interpretation": str(dataset.get("PhotometricInterpretation", "")),
            }
        except Exception as error:  # pydicom raises many kinds of errors on damaged files
            raise CorruptFileError(f"{path.name} is damaged ({type(error).__name__}: {error})") from error
        if frames > 1:
            raise UnsupportedFileError(
                f"{path.name} is a colour image of {frames} frames (a cine loop); single colour images are read"
            )
        if rows * cols > MAX_FRAME_PIXELS:
            raise UnsupportedFileError(
                f"{path.name} declares {rows} x {cols} pixels; refused before decoding"
            )
        try:  # YBR converted to RGB by pydicom
            if dataset.file_meta.TransferSyntaxUID.is_compressed:
                values = compressed_pixel_array(dataset, None, 1, path.name)
            else:
                values = pydicom.pixels.pixel_array(dataset)
        except (KeyboardInterrupt, SystemExit, MemoryError, CorruptFileError):
            raise
        except BaseException as error:  # decoders raise many kinds of errors (Rust ones a BaseException)
            raise CorruptFileError(
                f"{path.name}: the colour pixel data cannot be decoded ({type(error).__name__}: {error})"
            ) from error
    if values.ndim != 3 or values.shape[-1] != 3 or values.shape[:2] != (rows, cols):
        raise UnsupportedFileError(f"{path.name}: colour pixels of shape {values.shape} are not supported")
    try:
        spacing = to_floats(spacing, 2)
    except (ValueError, TypeError):
        spacing = None  # a malformed pixel size is treated as none
    if spacing is None or np.any(spacing <= 0):
        spacing = (1.0, 1.0)
        metadata["spacing_assumed"] = True
        metadata["geometry_source"] = "none (1 mm per pixel assumed)"
    else:
        metadata["geometry_source"] = source
    return Volume(
        np.ascontiguousarray(values), spacing=(float(spacing[0]), float(spacing[1]), 1.0), metadata=metadata
    )
