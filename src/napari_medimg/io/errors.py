"""One exception hierarchy for everything the readers and writers refuse."""

from __future__ import annotations

__all__ = [
    "MedImgReadError",
    "UnsupportedFileError",
    "CorruptFileError",
    "MissingDecoderError",
    "NotAnImageError",
    "GeometryError",
    "NoSeriesError",
    "OverwriteError",
]


class MedImgReadError(Exception):
    """A file or series could not be read; the message says why in words a user understands."""


class UnsupportedFileError(MedImgReadError):
    """The file is not in a format napari-medimg reads."""


class CorruptFileError(MedImgReadError):
    """The file is truncated, empty or not valid in its format."""


class MissingDecoderError(MedImgReadError):
    """The pixel data is compressed with a transfer syntax no installed package can decode."""


class NotAnImageError(MedImgReadError):
    """A valid DICOM object that holds no image (structured report, RT structure set, ...)."""


class GeometryError(MedImgReadError):
    """Slices cannot be placed in a consistent 3D geometry."""


class NoSeriesError(MedImgReadError):
    """A folder (or a series UID asked for) holds no readable DICOM image series."""


class OverwriteError(FileExistsError):
    """A write would replace an existing file and overwriting was not asked for."""
