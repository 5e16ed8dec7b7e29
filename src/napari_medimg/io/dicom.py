"""Reading DICOM images into :class:`~napari_medimg.geometry.Volume` values with correct geometry."""

from __future__ import annotations

import os

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..geometry import Volume, orientation_code
from .errors import CorruptFileError, MissingDecoderError, NotAnImageError

__all__ = ["read_dicom_file"]


def _pixels(dataset) -> np.ndarray:
    try:
        return dataset.pixel_array
    except (NotImplementedError, RuntimeError) as error:
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise MissingDecoderError(
            f"pixel data is compressed as {name}; install a decoder, e.g. `pip install pylibjpeg "
            f"pylibjpeg-libjpeg pylibjpeg-openjpeg` or `pip install python-gdcm` ({error})"
        ) from error
    except (ValueError, AttributeError) as error:
        raise CorruptFileError(f"pixel data cannot be decoded: {error}") from error


def read_dicom_file(path: str | os.PathLike) -> Volume:
    """Read one single-frame DICOM image as a one-slice 3D Volume in LPS geometry, values rescaled."""
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, AttributeError) as error:
        raise CorruptFileError(f"{os.fspath(path)!r} is not a readable DICOM file: {error}") from error
    if "PixelData" not in dataset:
        raise NotAnImageError(f"{os.fspath(path)!r} is a DICOM {dataset.get('Modality', 'object')} without pixel data")
    pixels = _pixels(dataset)
    if pixels.ndim != 2:
        raise NotAnImageError(f"{os.fspath(path)!r} holds {pixels.ndim}D pixel data; a single slice was expected")
    orientation = np.asarray(dataset.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    dy, dx = (float(v) for v in dataset.get("PixelSpacing", [1.0, 1.0]))
    dz = float(dataset.get("SpacingBetweenSlices", dataset.get("SliceThickness", 1.0)) or 1.0)
    origin = np.asarray(dataset.get("ImagePositionPatient", [0, 0, 0]), float)
    direction = np.stack([normal, col_cos, row_cos], axis=1)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    if slope == 1 and float(intercept).is_integer():
        values = (pixels.astype(np.int32) + int(intercept))
        values = values.astype(np.int16) if values.min() >= -32768 and values.max() <= 32767 else values
    else:
        values = (pixels * np.float32(slope) + np.float32(intercept)).astype(np.float32)
    metadata = {
        "modality": str(dataset.get("Modality", "")),
        "series_description": str(dataset.get("SeriesDescription", "") or os.path.basename(os.fspath(path))),
        "orientation": orientation_code(direction),
        "geometry_source": "ImagePositionPatient/ImageOrientationPatient/PixelSpacing of one slice",
        "units": "HU" if dataset.get("Modality") == "CT" else "",
    }
    centre, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if centre is not None and width is not None:
        first = (lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v))
        metadata["window_center"], metadata["window_width"] = first(centre), first(width)
    return Volume(values[None], (dz, dy, dx), origin, direction, metadata)
