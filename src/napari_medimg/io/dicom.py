"""DICOM series discovery and reading with correct geometry (see docs/geometry.md and DESIGN §3).

Two passes:

1. :func:`scan_dicom` reads headers only (``stop_before_pixels``), turns every image (or every frame of an
   enhanced multi-frame file) into a slice record, groups them by SeriesInstanceUID and splits each group
   whose orientation, size or stack differ.  Every group becomes a :class:`DicomSeries` whose geometry is
   derived here: slices ordered by the projection of ImagePositionPatient on the slice normal, spacing from
   those projections (never SliceThickness), PixelSpacing read as ``(dy, dx)``, gaps, duplicates, uneven
   spacing and gantry tilt detected and described in words.
2. :func:`read_series` reads the pixels (eagerly with progress, or lazily as a dask array with one chunk per
   slice), applies RescaleSlope/Intercept per slice (``int16`` when exact, otherwise ``float32``) and, for a
   gantry-tilted stack, resamples every slice onto an orthogonal grid.

Everything a caller can get wrong about a file is raised as a :class:`~napari_medimg.io.errors.MedImgReadError`
subclass.  Patient name, ID and birth date are never read into names, metadata or messages.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..geometry import Volume, affine_from_geometry, orientation_code
from ..processing.windows import CT_WINDOW_PRESETS
from ..progress import Cancelled, ProgressCallback, report
from ._fastheader import parse_header
from .errors import (
    CorruptFileError,
    GeometryError,
    MedImgReadError,
    MissingDecoderError,
    NoSeriesError,
    NotAnImageError,
    UnsupportedFileError,
)

__all__ = [
    "DicomSeries",
    "DicomScan",
    "scan_dicom",
    "scan_series_of_file",
    "read_series",
    "read_dicom",
    "read_dicom_file",
    "is_dicom_file",
    "find_dicom_files",
    "CT_WINDOW_PRESETS",
    "LAZY_THRESHOLD_BYTES",
]

#: CT window presets as (centre, width) in HU
#: series larger than this (bytes after rescaling) are read lazily by default
LAZY_THRESHOLD_BYTES = 256 * 2**20
_READ_THREADS = 4

_UNCOMPRESSED_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DUPLICATE_TOL_MM = 0.01
_TILT_TOL = 1e-3  # |sin| of the angle between the slice step and the normal above which a stack is sheared
_NON_IMAGE_SOP = {
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.66.4": "a Segmentation",
    "1.2.840.10008.1.3.10": "a DICOMDIR (media directory)",
}
_SPLIT_ATTRIBUTES = (
    "EchoNumbers",
    "TemporalPositionIdentifier",
    "AcquisitionNumber",
    "ImageType",
    "TriggerTime",
)


_QUIET_LOCK = threading.RLock()


@contextlib.contextmanager
def _quiet():
    """pydicom warns about every odd value in real-world files; our own checks report what matters.

    ``catch_warnings`` swaps process-wide state: the lock keeps our reader threads from interleaving their
    save/restore (which could leave the warnings silenced for good).
    """
    with _QUIET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _name(path) -> str:
    return Path(os.fspath(path)).name


# ---- file discovery ------------------------------------------------------------------------------------------
def is_dicom_file(path: str | os.PathLike) -> bool:
    """Cheap test: the file has the 'DICM' magic after the 128-byte preamble, or a .dcm/.ima suffix."""
    path = Path(os.fspath(path))
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return path.is_file()
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(path: str | os.PathLike) -> list[Path]:
    """DICOM files under ``path`` (recursive, hidden files skipped), or ``[path]`` for a file."""
    path = Path(os.fspath(path))
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise NoSeriesError(f"{path} does not exist")
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            candidate = Path(root) / name
            if not name.startswith(".") and name.upper() != "DICOMDIR" and is_dicom_file(candidate):
                found.append(candidate)
    return found


# ---- header records --------------------------------------------------------------------------------------------
@dataclass
class _Format:
    """How one file stores its pixels."""

    rows: int
    cols: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntax: str
    photometric: str
    pixel_offset: int | None  # byte offset of the first pixel value when the fast raw path applies

    @property
    def raw_dtype(self) -> np.dtype:
        kind = "i" if self.signed else "u"
        return np.dtype(f"<{kind}{self.bits_allocated // 8}")

    def raw_range(self) -> tuple[int, int]:
        if self.signed:
            return -(2 ** (self.bits_stored - 1)), 2 ** (self.bits_stored - 1) - 1
        return 0, 2**self.bits_stored - 1


@dataclass
class _Frame:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    path: str
    frame: int | None
    fmt: _Format
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    instance: int
    window: tuple[float, float] | None
    stack_key: tuple = ()
    stack_label: str = ""
    split_values: dict = field(default_factory=dict)
    philips_scale: float | None = None
    units: str = ""
    sop_uid: str = ""


@dataclass
class _SeriesHeader:
    """PHI-free attributes shared by the frames of a series."""

    series_uid: str
    modality: str
    description: str
    series_number: int | None
    frame_of_reference: str
    manufacturer: str
    sop_class: str
    slice_thickness: float | None
    spacing_between_slices: float | None
    enhanced: bool


def _float(value, default=None):
    if value is None or value == "":
        return default
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(f"non-finite value {value!r}")
    return result


def _floats(value, count: int) -> np.ndarray | None:
    if value is None or value == "":
        return None
    values = np.asarray(
        [
            float(v)
            for v in (value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value])
        ],
        float,
    )
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise ValueError(f"expected {count} finite numbers, got {value!r}")
    return values


def _first(value):
    if isinstance(value, (pydicom.multival.MultiValue, list, tuple)):
        return value[0] if len(value) else None
    return value


def _joined(value) -> str:
    if isinstance(value, (pydicom.multival.MultiValue, list, tuple)):
        return "\\".join(str(v) for v in value)
    return str(value if value is not None else "")


def _window(item) -> tuple[float, float] | None:
    centre, width = _first(item.get("WindowCenter")), _first(item.get("WindowWidth"))
    if centre is None or width is None or centre == "" or width == "":
        return None
    centre, width = float(centre), float(width)
    return (centre, width) if np.isfinite(centre) and np.isfinite(width) and width > 0 else None


def _item(sequence_owner, keyword):
    """First item of sequence ``keyword`` in a functional-groups item, or None."""
    if sequence_owner is None or keyword not in sequence_owner:
        return None
    sequence = sequence_owner[keyword].value
    return sequence[0] if sequence else None


def _group(shared, frame, keyword):
    """A functional group macro item, per-frame first, then shared."""
    return _item(frame, keyword) or _item(shared, keyword)


def _format(dataset, pixel_offset: int | None, file_size: int, frames: int) -> _Format:
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    rows, cols = int(dataset.Rows), int(dataset.Columns)
    bits_allocated, bits_stored = (
        int(dataset.BitsAllocated),
        int(dataset.get("BitsStored", dataset.BitsAllocated)),
    )
    samples = int(dataset.get("SamplesPerPixel", 1))
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise CorruptFileError(f"image size {rows} x {cols} x {frames} frames is empty")
    if samples != 1:
        raise UnsupportedFileError(
            f"colour images ({samples} samples per pixel) are not supported; "
            "only greyscale CT/MR/PET-like images are"
        )
    if bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise UnsupportedFileError(
            f"{bits_allocated}-bit pixels with {bits_stored} bits stored are not supported"
        )
    fmt = _Format(
        rows,
        cols,
        frames,
        bits_allocated,
        bits_stored,
        int(dataset.get("PixelRepresentation", 0)) == 1,
        syntax,
        str(dataset.get("PhotometricInterpretation", "MONOCHROME2")),
        None,
    )
    if syntax in _UNCOMPRESSED_LE:
        expected = rows * cols * frames * bits_allocated // 8
        if pixel_offset is None or file_size - pixel_offset < expected:
            raise CorruptFileError(
                f"the file is truncated: its pixel data needs {expected} bytes "
                f"({rows} x {cols} x {frames} frames) but the file is {file_size} bytes"
            )
        if not fmt.signed or bits_stored == bits_allocated:
            fmt.pixel_offset = pixel_offset
    return fmt


def _pixel_value_offset(handle, dataset) -> int | None:
    """Byte offset of the first pixel value, from the file position where the header pass stopped."""
    start = handle.tell()
    head = handle.read(12)
    if len(head) < 8 or head[:4] != b"\xe0\x7f\x10\x00":
        return None
    explicit = str(dataset.file_meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1"
    if explicit:
        if len(head) < 12:
            return None
        length = int.from_bytes(head[8:12], "little")
        offset = start + 12
    else:
        length = int.from_bytes(head[4:8], "little")
        offset = start + 8
    return None if length == 0xFFFFFFFF else offset


def _read_header(path: Path):
    """``(dataset, pixel_offset, file_size)`` of one file, header only."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CorruptFileError(f"{path.name} cannot be opened: {error.strerror or error}") from error
    if size == 0:
        raise CorruptFileError(f"{path.name} is empty (0 bytes)")
    try:
        with open(path, "rb") as handle:
            fast = parse_header(handle, size)
            if fast is not None:
                return fast[0], fast[1], size
            handle.seek(0)
            dataset = pydicom.dcmread(
                handle, stop_before_pixels=True, force=path.suffix.lower() in (".dcm", ".ima")
            )
            offset = _pixel_value_offset(handle, dataset) if "PixelData" not in dataset else None
    except InvalidDicomError as error:
        raise CorruptFileError(f"{path.name} is not a DICOM file") from error
    except Cancelled:
        raise
    except Exception as error:  # pydicom raises many kinds of errors on damaged files
        raise CorruptFileError(
            f"{path.name} is damaged or truncated ({type(error).__name__}: {error})"
        ) from error
    return dataset, offset, size


def _series_header(dataset, enhanced: bool) -> _SeriesHeader:
    number = dataset.get("SeriesNumber")
    return _SeriesHeader(
        series_uid=str(dataset.get("SeriesInstanceUID", "") or "unknown-series"),
        modality=str(dataset.get("Modality", "") or "OT"),
        description=str(dataset.get("SeriesDescription", "") or "").strip(),
        series_number=int(number) if number not in (None, "") else None,
        frame_of_reference=str(dataset.get("FrameOfReferenceUID", "") or ""),
        manufacturer=str(dataset.get("Manufacturer", "") or ""),
        sop_class=str(dataset.get("SOPClassUID", "") or ""),
        slice_thickness=_float(dataset.get("SliceThickness")),
        spacing_between_slices=_float(dataset.get("SpacingBetweenSlices")),
        enhanced=enhanced,
    )


def _classic_frame(path: Path, dataset, fmt: _Format) -> _Frame:
    spacing = _floats(dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing"), 2)
    instance = dataset.get("InstanceNumber")
    frame = _Frame(
        path=os.fspath(path),
        frame=None,
        fmt=fmt,
        position=_floats(dataset.get("ImagePositionPatient"), 3),
        orientation=_floats(dataset.get("ImageOrientationPatient"), 6),
        pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
        slope=_float(dataset.get("RescaleSlope"), 1.0) or 1.0,
        intercept=_float(dataset.get("RescaleIntercept"), 0.0),
        instance=int(instance) if instance not in (None, "") else 0,
        window=_window(dataset),
        sop_uid=str(dataset.get("SOPInstanceUID", "")),
    )
    frame.split_values = {name: _joined(dataset.get(name, "")) for name in _SPLIT_ATTRIBUTES}
    return frame


def _frame_units(item) -> str:
    if item is None or "MeasurementUnitsCodeSequence" not in item or not item.MeasurementUnitsCodeSequence:
        return ""
    code = str(item.MeasurementUnitsCodeSequence[0].get("CodeValue", ""))
    return "" if code in ("1", "") else code


def _philips_scale(frame_item) -> float | None:
    """Philips private ScaleSlope (2005,xx0E) of a frame (used only for Philips floating-point values)."""
    private = frame_item.get((0x2005, 0x140F)) if frame_item is not None else None
    if private is None or private.VR != "SQ" or not private.value:
        return None
    with contextlib.suppress(KeyError, ValueError, TypeError):
        value = float(
            _first(private.value[0].get_private_item(0x2005, 0x0E, "Philips MR Imaging DD 001").value)
        )
        return value if np.isfinite(value) and value != 0 else None
    return None


def _multiframe_frames(path: Path, dataset, fmt: _Format) -> list[_Frame]:
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    in_stack_pointers = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient
    dimension_pointers = [
        int(d.DimensionIndexPointer)
        for d in dataset.get("DimensionIndexSequence", [])
        if "DimensionIndexPointer" in d
    ]
    frames = []
    for index in range(fmt.frames):
        item = per_frame[index] if per_frame is not None and index < len(per_frame) else None
        position = _group(shared, item, "PlanePositionSequence")
        orientation = _group(shared, item, "PlaneOrientationSequence")
        measures = _group(shared, item, "PixelMeasuresSequence")
        transform = _group(shared, item, "PixelValueTransformationSequence")
        voi = _group(shared, item, "FrameVOILUTSequence")
        content = _item(item, "FrameContentSequence")
        frame_type = _group(shared, item, "MRImageFrameTypeSequence") or _group(
            shared, item, "CTImageFrameTypeSequence"
        )
        real_world = _group(shared, item, "RealWorldValueMappingSequence")
        spacing = _floats(measures.get("PixelSpacing"), 2) if measures is not None else None
        if spacing is None:
            spacing = _floats(dataset.get("PixelSpacing"), 2)
        stack_key, label = [], ""
        if content is not None:
            stack_key.append(("stack", str(content.get("StackID", ""))))
            values = list(content.get("DimensionIndexValues", []) or [])
            values = values if isinstance(values, list) else [values]
            if len(values) == len(dimension_pointers):
                stack_key += [
                    (hex(p), int(v))
                    for p, v in zip(dimension_pointers, values, strict=False)
                    if p not in in_stack_pointers
                ]
        if frame_type is not None and "FrameType" in frame_type:
            types = list(frame_type.FrameType)
            stack_key.append(("type", tuple(types)))
            label = str(types[3] if len(types) > 3 else types[-1])
        slope = (
            _float(transform.get("RescaleSlope"), 1.0)
            if transform is not None
            else _float(dataset.get("RescaleSlope"), 1.0)
        )
        intercept = (
            _float(transform.get("RescaleIntercept"), 0.0)
            if transform is not None
            else _float(dataset.get("RescaleIntercept"), 0.0)
        )
        frames.append(
            _Frame(
                path=os.fspath(path),
                frame=index,
                fmt=fmt,
                position=_floats(position.get("ImagePositionPatient"), 3) if position is not None else None,
                orientation=_floats(orientation.get("ImageOrientationPatient"), 6)
                if orientation is not None
                else None,
                pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
                slope=slope or 1.0,
                intercept=intercept,
                instance=index + 1,
                window=_window(voi) if voi is not None else _window(dataset),
                stack_key=tuple(stack_key),
                stack_label=label,
                philips_scale=_philips_scale(item),
                units=_frame_units(real_world),
            )
        )
    return frames


def _frames_of_file(path: Path) -> tuple[_SeriesHeader, list[_Frame]]:
    try:
        with _quiet():  # values are converted (and validated, with warnings) lazily on first access
            return _frames_of_header(path)
    except (MedImgReadError, Cancelled):
        raise
    except Exception as error:  # pydicom raises many kinds of errors on damaged files
        raise CorruptFileError(f"{path.name} is damaged ({type(error).__name__}: {error})") from error


def _frames_of_header(path: Path) -> tuple[_SeriesHeader, list[_Frame]]:
    dataset, offset, size = _read_header(path)
    sop_class = str(dataset.get("SOPClassUID", "") or dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    if not sop_class and "Rows" not in dataset:
        raise CorruptFileError(
            f"{path.name} is not a DICOM file (it holds no DICOM object or image attributes)"
        )
    if sop_class in _NON_IMAGE_SOP:
        raise NotAnImageError(f"{path.name} is {_NON_IMAGE_SOP[sop_class]}, not an image")
    if "PixelData" not in dataset and offset is None:
        if "Image Storage" in getattr(pydicom.uid.UID(sop_class), "name", ""):
            raise CorruptFileError(f"{path.name} is truncated: the image has no pixel data")
        kind = getattr(pydicom.uid.UID(sop_class), "name", "") if sop_class else ""
        raise NotAnImageError(
            f"{path.name} is a DICOM {kind or str(dataset.get('Modality', 'object'))} "
            "without pixel data (not an image)"
        )
    try:
        frames_count = int(dataset.get("NumberOfFrames", 1) or 1)
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
        if frames_count > max(1, size // 8) or (per_frame is not None and len(per_frame) != frames_count):
            raise CorruptFileError(
                f"{path.name} claims {frames_count} frames, which its contents do not hold"
            )
        fmt = _format(dataset, offset, size, frames_count)
        enhanced = (
            "PerFrameFunctionalGroupsSequence" in dataset or "SharedFunctionalGroupsSequence" in dataset
        )
        header = _series_header(dataset, enhanced)
        if frames_count > 1 or enhanced:
            frames = _multiframe_frames(path, dataset, fmt)
        else:
            frames = [_classic_frame(path, dataset, fmt)]
    except MedImgReadError:
        raise
    except Exception as error:
        raise CorruptFileError(
            f"{path.name} has invalid image attributes ({type(error).__name__}: {error})"
        ) from error
    return header, frames


# ---- series -------------------------------------------------------------------------------------------------
@dataclass
class DicomSeries:
    """One 3D volume's worth of DICOM images with its derived geometry (no pixels read yet)."""

    header: _SeriesHeader
    slots: list  # ordered _Frame or None (a missing slice filled with blank values)
    label: str
    shape: tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    geometry_source: str
    warnings: list[str]
    dtype: np.dtype
    fill_value: float
    tilt_degrees: float = 0.0
    shear_pixels: tuple[float, float] = (0.0, 0.0)  # in-plane (row, column) shift per slice index when tilted
    source: str = ""

    @property
    def uid(self) -> str:
        return self.header.series_uid

    @property
    def modality(self) -> str:
        return self.header.modality

    @property
    def description(self) -> str:
        return self.header.description

    @property
    def name(self) -> str:
        """Layer name: the series description (never patient data), with the stack label when split."""
        base = self.header.description or f"{self.header.modality} series {self.header.series_number or '?'}"
        return f"{base} [{self.label}]" if self.label else base

    @property
    def frames(self) -> list[_Frame]:
        return [slot for slot in self.slots if slot is not None]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def affine(self) -> np.ndarray:
        return affine_from_geometry(self.spacing, self.origin, self.direction)

    def summary(self) -> dict:
        """PHI-free description: modality, description, dimensions, spacing, orientation, geometry source."""
        windows = [f.window for f in self.frames if f.window is not None]
        summary = {
            "series_uid": self.uid,
            "modality": self.modality,
            "series_description": self.name,
            "series_number": self.header.series_number,
            "stack": self.label,
            "manufacturer": self.header.manufacturer,
            "enhanced_multiframe": self.header.enhanced,
            "files": len({f.path for f in self.frames}),
            "dimensions": list(self.shape),
            "spacing": [round(float(s), 6) for s in self.spacing],
            "orientation": orientation_code(self.direction),
            "geometry_source": self.geometry_source,
            "warnings": list(self.warnings),
            "dtype": str(self.dtype),
            "units": "HU" if self.modality == "CT" else (self.frames[0].units if self.frames else ""),
        }
        if self.header.frame_of_reference:
            summary["frame_of_reference_uid"] = self.header.frame_of_reference
        if windows:
            summary["window_center"], summary["window_width"] = windows[0]
        elif self.modality == "CT":
            summary["window_center"], summary["window_width"] = CT_WINDOW_PRESETS["abdomen"]
        if self.modality == "CT":
            summary["window_presets"] = {k: list(v) for k, v in CT_WINDOW_PRESETS.items()}
        if self.tilt_degrees:
            summary["gantry_tilt_degrees"] = round(self.tilt_degrees, 3)
        return summary


@dataclass
class DicomScan:
    """Result of the header pass: the series found and the files that were skipped, with reasons."""

    series: list[DicomSeries]
    skipped: list[tuple[str, str]]

    def get(self, uid: str) -> list[DicomSeries]:
        return [series for series in self.series if series.uid == uid]


def _output_dtype(frames: list[_Frame], philips_float: bool) -> tuple[np.dtype, float]:
    """``int16`` when slope/intercept keep every possible value an exact int16, else ``float32``; fill value."""
    lows, highs, exact = [], [], not philips_float
    for frame in frames:
        low, high = frame.fmt.raw_range()
        ends = (low * frame.slope + frame.intercept, high * frame.slope + frame.intercept)
        lows.append(min(ends))
        highs.append(max(ends))
        exact &= float(frame.slope).is_integer() and float(frame.intercept).is_integer()
    low, high = min(lows), max(highs)
    if exact and low >= -32768 and high <= 32767:
        return np.dtype(np.int16), float(low)
    if exact and low >= -(2**31) and high < 2**31:
        return np.dtype(np.int32), float(low)  # exact; narrowed to int16 after an eager read when values fit
    if philips_float:
        fills = [
            (f.fmt.raw_range()[0] * f.slope + f.intercept) / (f.slope * (f.philips_scale or 1.0))
            for f in frames
        ]
        return np.dtype(np.float32), float(min(fills))
    return np.dtype(np.float32), float(low)


def _geometry_from_frames(frames: list[_Frame], header: _SeriesHeader):
    """Order, spacing, origin, direction, warnings and tilt of one stack (DESIGN §3)."""
    warnings_: list[str] = []
    first = frames[0]
    if first.pixel_spacing is None:
        dy = dx = 1.0
        warnings_.append(
            "The files give no pixel spacing; 1 mm pixels are assumed, so sizes are not in real mm."
        )
        spacing_words = "pixel spacing unknown (1 mm assumed)"
    else:
        dy, dx = first.pixel_spacing
        if dy <= 0 or dx <= 0:
            raise GeometryError(f"pixel spacing {dy} x {dx} mm is not positive")
        spacing_words = "PixelSpacing as (row, column) = (dy, dx)"
    if first.orientation is None or any(f.position is None for f in frames):
        ordered = sorted(frames, key=lambda f: f.instance)
        dz = header.spacing_between_slices or header.slice_thickness or 1.0
        warnings_.append(
            "The files give no patient position/orientation: slices are ordered by instance number "
            f"and placed {dz:g} mm apart along an assumed axial direction."
        )
        if dz <= 0:
            raise GeometryError(f"slice spacing {dz} mm is not positive")
        direction = np.eye(3)[:, ::-1].copy()
        source = f"no patient geometry in the files; instance-number order, {spacing_words}"
        return ordered, (dz, dy, dx), np.zeros(3), direction, warnings_, source, 0.0, (0.0, 0.0)
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    norm = np.linalg.norm(normal)
    if not (0.5 < np.linalg.norm(row_cos) < 1.5 and 0.5 < np.linalg.norm(col_cos) < 1.5) or norm < 0.5:
        raise GeometryError("ImageOrientationPatient does not hold two perpendicular unit vectors")
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    normal = normal / norm
    projections = np.array([f.position @ normal for f in frames])
    order = np.argsort(projections, kind="stable")
    ordered = [frames[i] for i in order]
    projections = projections[order]
    # duplicates: same position twice; keep the lowest instance number
    keep, dropped = [0], 0
    for index in range(1, len(ordered)):
        if projections[index] - projections[keep[-1]] < _DUPLICATE_TOL_MM:
            dropped += 1
            if ordered[index].instance < ordered[keep[-1]].instance:
                keep[-1] = index
        else:
            keep.append(index)
    if dropped:
        warnings_.append(
            f"{dropped} duplicate slice(s) share a position with another slice; the one with the "
            "lower instance number was kept at each position."
        )
    ordered = [ordered[i] for i in keep]
    projections = projections[keep]
    origin = ordered[0].position.copy()
    source = (
        f"slice order and spacing from ImagePositionPatient projected on the slice normal "
        f"(ImageOrientationPatient row x column); {spacing_words}"
    )
    if len(ordered) == 1:
        dz = header.spacing_between_slices or header.slice_thickness or 1.0
        if dz <= 0:
            dz = 1.0
        direction = np.stack([normal, col_cos, row_cos], axis=1)
        source += f"; single slice, thickness {dz:g} mm from the header"
        return ordered, (dz, dy, dx), origin, direction, warnings_, source, 0.0, (0.0, 0.0)
    steps = np.diff(projections)
    step = float(np.median(steps))
    tolerance = max(0.01 * step, 1e-3)
    slots: list = [ordered[0]]
    uneven = []
    missing = []
    for index, gap in enumerate(steps):
        ratio = gap / step
        count = int(round(ratio))
        if count >= 2 and abs(gap - count * step) <= tolerance * count:
            slots.extend([None] * (count - 1))
            missing.append((count - 1, projections[index], projections[index + 1]))
        elif abs(gap - step) > tolerance:
            uneven.append(gap)
        slots.append(ordered[index + 1])
    if missing:
        total = sum(m[0] for m in missing)
        where = "; ".join(f"{m[0]} between {m[1]:.2f} and {m[2]:.2f} mm" for m in missing[:3])
        warnings_.append(
            f"{total} slice(s) are missing ({where}). Blank slices were inserted so every other "
            "slice keeps its true position."
        )
    extent = projections[-1] - projections[0]
    if uneven:
        dz = float(extent / (len(slots) - 1))
        expected = projections[0] + dz * np.array([i for i, s in enumerate(slots) if s is not None])
        error = float(np.max(np.abs(expected - projections)))
        warnings_.append(
            f"Slice spacing is uneven (steps from {steps.min():.3f} to {steps.max():.3f} mm). "
            f"The volume uses the mean step {dz:.3f} mm; slices are off their true position by up "
            f"to {error:.3f} mm."
        )
    else:
        dz = step
    # gantry tilt: the step between positions is not parallel to the normal
    step_vector = (ordered[-1].position - ordered[0].position) / (len(slots) - 1)
    shear = step_vector - (step_vector @ normal) * normal
    sine = np.linalg.norm(shear) / max(np.linalg.norm(step_vector), 1e-12)
    tilt, shear_pixels = 0.0, (0.0, 0.0)
    if sine > _TILT_TOL:
        tilt = float(np.degrees(np.arcsin(min(sine, 1.0))))
        shear_pixels = (float(shear @ col_cos / dy), float(shear @ row_cos / dx))
        warnings_.append(
            f"Gantry tilt of {tilt:.1f} degrees: slices are sheared. They were resampled onto an "
            f"orthogonal grid (linear interpolation), {dz:.3f} mm apart along the slice normal."
        )
        source += "; gantry tilt resampled to an orthogonal grid"
    direction = np.stack([normal, col_cos, row_cos], axis=1)
    return slots, (dz, dy, dx), origin, direction, warnings_, source, tilt, shear_pixels


def _split_duplicates(frames: list[_Frame]) -> list[list[_Frame]]:
    """Split a stack that repeats positions by the first attribute that tells the repeats apart."""
    if frames[0].position is None or frames[0].orientation is None or len(frames) < 2:
        return [frames]
    normal = np.cross(frames[0].orientation[:3], frames[0].orientation[3:])

    def repeats(group: list[_Frame]) -> bool:
        keys = Counter(round(float(f.position @ normal) / _DUPLICATE_TOL_MM) for f in group)
        return max(keys.values()) > 1

    if not repeats(frames):
        return [frames]
    for name in _SPLIT_ATTRIBUTES:
        values = sorted({f.split_values.get(name, "") for f in frames})
        if len(values) < 2:
            continue
        groups = [[f for f in frames if f.split_values.get(name, "") == v] for v in values]
        # split only when it separates whole stacks: every part has several slices and no repeated position
        if all(len(group) > 1 and not repeats(group) for group in groups):
            for value, group in zip(values, groups, strict=False):
                for frame in group:
                    frame.stack_label = f"{_WORDS.get(name, name)} {value}".strip()
            return groups
    return [frames]


_WORDS = {
    "EchoNumbers": "echo",
    "TemporalPositionIdentifier": "time point",
    "AcquisitionNumber": "acquisition",
    "ImageType": "type",
    "TriggerTime": "trigger",
}


def _stack_key(frame: _Frame) -> tuple:
    orientation = None if frame.orientation is None else tuple(np.round(frame.orientation, 3))
    spacing = None if frame.pixel_spacing is None else tuple(np.round(frame.pixel_spacing, 4))
    fmt = frame.fmt
    multiframe = frame.path if frame.frame is not None else ""
    return (
        multiframe,
        frame.stack_key,
        orientation,
        fmt.rows,
        fmt.cols,
        spacing,
        fmt.bits_allocated,
        fmt.signed,
    )


def _build_series(
    header: _SeriesHeader, frames: list[_Frame], philips_float: bool, source: str
) -> list[DicomSeries]:
    by_key: dict[tuple, list[_Frame]] = defaultdict(list)
    for frame in frames:
        by_key[_stack_key(frame)].append(frame)
    stacks = [group for key in by_key for group in _split_duplicates(by_key[key])]
    result = []
    for number, stack in enumerate(stacks, start=1):
        slots, spacing, origin, direction, notes, how, tilt, shear = _geometry_from_frames(stack, header)
        label = stack[0].stack_label if len(stacks) > 1 else ""
        if len(stacks) > 1 and (not label or sum(s[0].stack_label == label for s in stacks) > 1):
            label = f"{label} part {number}".strip()
            notes.insert(
                0,
                f"This series mixes {len(stacks)} stacks with different orientation, image size "
                f"or pixel spacing; it was split into separate volumes (this is part {number}).",
            )
        present = [s for s in slots if s is not None]
        dtype, fill = _output_dtype(present, philips_float)
        if tilt:
            dtype = np.dtype(np.float32)
        shape = (len(slots), stack[0].fmt.rows, stack[0].fmt.cols)
        result.append(
            DicomSeries(
                header,
                slots,
                label,
                shape,
                np.asarray(spacing, float),
                np.asarray(origin, float),
                direction,
                how,
                notes,
                dtype,
                fill,
                tilt,
                shear,
                source,
            )
        )
    return result


def scan_dicom(
    path: str | os.PathLike | Iterable, progress: ProgressCallback | None = None, philips_float: bool = False
) -> DicomScan:
    """Header-only pass over a file, a folder (recursive) or a list of files: the series found, grouped.

    A single file that cannot be read raises; in a folder, unreadable and non-image files are listed in
    ``DicomScan.skipped`` with the reason, and :class:`NoSeriesError` is raised only when no image is left.
    """
    if isinstance(path, (str, os.PathLike)):
        single = Path(os.fspath(path)).is_file()
        files = find_dicom_files(path)
        source = os.fspath(path)
    else:
        files = [Path(os.fspath(p)) for p in path]
        single, source = len(files) == 1, os.path.commonpath([os.fspath(p) for p in files]) if files else ""
    if not files:
        raise NoSeriesError(f"no DICOM files found in {source}")
    headers: dict[str, _SeriesHeader] = {}
    frames: dict[str, list[_Frame]] = defaultdict(list)
    skipped = []
    for index, file in enumerate(files):
        try:
            header, file_frames = _frames_of_file(file)
        except MedImgReadError as error:
            if single:
                raise
            skipped.append((file.name, str(error)))
        else:
            headers.setdefault(header.series_uid, header)
            frames[header.series_uid].extend(file_frames)
        report(progress, index + 1, len(files))
    series = []
    for uid, header in headers.items():
        try:
            series.extend(_build_series(header, frames[uid], philips_float, source))
        except MedImgReadError as error:
            if single:
                raise
            skipped.append((f"series {header.description or header.series_number}", str(error)))
        except Exception as error:  # values that parse but make no geometric sense
            if single:
                raise GeometryError(f"the slice geometry is inconsistent ({error})") from error
            skipped.append(
                (
                    f"series {header.description or header.series_number}",
                    f"inconsistent slice geometry ({error})",
                )
            )
    if not series:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise NoSeriesError(f"no readable DICOM image series in {source} ({reasons})")
    return DicomScan(series, skipped)


def scan_series_of_file(path: str | os.PathLike, progress: ProgressCallback | None = None) -> DicomScan:
    """The whole series one single-frame file belongs to, from the files beside it (a multi-frame file alone)."""
    path = Path(os.fspath(path))
    header, frames = _frames_of_file(path)
    if frames[0].frame is not None:
        return scan_dicom(path, progress=progress)
    siblings = [
        p
        for p in sorted(path.parent.iterdir())
        if p.is_file() and not p.name.startswith(".") and is_dicom_file(p)
    ]
    scan = scan_dicom(siblings, progress=progress)
    chosen = [series for series in scan.series if series.uid == header.series_uid]
    return DicomScan(chosen, []) if chosen else scan_dicom(path, progress=progress)


# ---- pixels --------------------------------------------------------------------------------------------------
def _decoder_hint(syntax: str) -> str:
    name = getattr(pydicom.uid.UID(syntax), "name", syntax)
    if "JPEG 2000" in name or "HTJ2K" in name:
        package = "pylibjpeg pylibjpeg-openjpeg"
    elif "JPEG-LS" in name or "JPEG" in name:
        package = "pylibjpeg pylibjpeg-libjpeg"
    elif "RLE" in name:
        package = "pylibjpeg pylibjpeg-rle"
    else:
        package = "python-gdcm"
    return f"the pixel data is compressed as {name}; install a decoder: `pip install {package}`"


def _raw_frame(frame: _Frame) -> np.ndarray:
    """Stored pixel values of one frame, shape (rows, cols)."""
    fmt = frame.fmt
    count = fmt.rows * fmt.cols
    if fmt.pixel_offset is not None:
        offset = fmt.pixel_offset + (frame.frame or 0) * count * fmt.raw_dtype.itemsize
        try:
            values = np.fromfile(frame.path, dtype=fmt.raw_dtype, count=count, offset=offset)
        except OSError as error:
            raise CorruptFileError(f"{_name(frame.path)} cannot be read: {error}") from error
        if values.size != count:
            raise CorruptFileError(f"{_name(frame.path)} is truncated")
        if (
            not fmt.signed and fmt.bits_stored < fmt.bits_allocated
        ):  # bits above BitsStored are not pixel data
            values &= values.dtype.type((1 << fmt.bits_stored) - 1)
        return values.reshape(fmt.rows, fmt.cols)
    try:
        with _quiet():
            values = pydicom.pixels.pixel_array(frame.path, index=frame.frame)
    except Cancelled:
        raise
    except (NotImplementedError, RuntimeError) as error:
        if pydicom.uid.UID(fmt.transfer_syntax).is_compressed:
            raise MissingDecoderError(f"{_name(frame.path)}: {_decoder_hint(fmt.transfer_syntax)}") from error
        raise CorruptFileError(f"{_name(frame.path)}: pixel data cannot be decoded ({error})") from error
    except Exception as error:
        raise CorruptFileError(
            f"{_name(frame.path)}: pixel data cannot be decoded ({type(error).__name__}: {error})"
        ) from error
    if values.shape != (fmt.rows, fmt.cols):
        raise CorruptFileError(
            f"{_name(frame.path)}: decoded pixels have shape {values.shape}, expected {(fmt.rows, fmt.cols)}"
        )
    return values


class _SliceReader:
    """Reads, rescales and (for gantry tilt) resamples slice ``k`` of a series."""

    def __init__(self, series: DicomSeries, philips_float: bool):
        self.series = series
        self.philips_float = philips_float

    def into(self, index: int, out: np.ndarray) -> None:
        """Write slice ``index`` into ``out``; reads straight into it when the stored values fit int16."""
        frame = self.series.slots[index]
        if frame is not None and self._direct(frame) and out.flags.c_contiguous:
            fmt = frame.fmt
            with open(frame.path, "rb") as handle:
                handle.seek(fmt.pixel_offset)
                if handle.readinto(memoryview(out).cast("B")) != out.nbytes:
                    raise CorruptFileError(f"{_name(frame.path)} is truncated")
            if not fmt.signed and fmt.bits_stored < 16:  # bits above BitsStored are not pixel data
                np.bitwise_and(out, np.int16((1 << fmt.bits_stored) - 1), out=out)
            if frame.intercept:
                np.add(out, np.int16(frame.intercept), out=out)
            return
        out[...] = self(index)

    def _direct(self, frame: _Frame) -> bool:
        fmt = frame.fmt
        return (
            self.series.dtype == np.int16
            and fmt.pixel_offset is not None
            and fmt.bits_allocated == 16
            and (fmt.signed or fmt.bits_stored <= 15)
            and frame.slope == 1
            and frame.frame is None
            and not self.series.tilt_degrees
        )

    def __call__(self, index: int) -> np.ndarray:
        series = self.series
        frame = series.slots[index]
        shape = series.shape[1:]
        if frame is None:
            return np.full(shape, series.fill_value, dtype=series.dtype)
        raw = _raw_frame(frame)
        if series.dtype.kind == "i":
            values = raw.astype(np.int64 if series.dtype == np.int32 else np.int32)
            if frame.slope != 1:
                values *= int(frame.slope)
            values += int(frame.intercept)
            return values.astype(series.dtype)
        values = raw * np.float64(frame.slope) + np.float64(frame.intercept)
        if self.philips_float and frame.philips_scale:
            values /= frame.slope * frame.philips_scale
        if series.tilt_degrees:
            from scipy import ndimage

            shift = (index * series.shear_pixels[0], index * series.shear_pixels[1])
            values = ndimage.shift(values, shift, order=1, mode="constant", cval=series.fill_value)
        return values.astype(np.float32)


class _LazySeries:
    """Array-like handed to ``dask.array.from_array``: reads slices on demand."""

    def __init__(self, reader: _SliceReader):
        self.reader = reader
        self.shape = reader.series.shape
        self.dtype = reader.series.dtype
        self.ndim = 3

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        indices = range(self.shape[0])[first] if isinstance(first, slice) else None
        if indices is None:
            return self.reader(int(first))[rest] if rest else self.reader(int(first))
        stack = np.empty((len(indices),) + self.shape[1:], self.dtype)
        for out, index in enumerate(indices):
            stack[out] = self.reader(index)
        return stack[(slice(None),) + rest]


def read_series(
    series: DicomSeries,
    lazy: bool | None = None,
    philips_float: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Pixels of one series as a Volume (LPS, z y x). ``lazy=None`` reads lazily above LAZY_THRESHOLD_BYTES.

    ``philips_float`` gives Philips floating-point values (value / (RescaleSlope x private ScaleSlope)),
    as dcm2niix does by default, instead of the DICOM displayed values.
    """
    if philips_float and series.dtype.kind == "i":
        series = _rebuild_dtype(series, philips_float)
    reader = _SliceReader(series, philips_float)
    if lazy is None:
        lazy = series.nbytes > LAZY_THRESHOLD_BYTES
    if lazy and series.dtype == np.int32:
        series = replace(
            series, dtype=np.dtype(np.float32)
        )  # exact for 16-bit data, and known before reading
        reader = _SliceReader(series, philips_float)
    if lazy:
        import dask.array as da

        array = da.from_array(
            _LazySeries(reader),
            chunks=(1,) + series.shape[1:],
            lock=False,
            asarray=False,
            meta=np.empty((0, 0, 0), series.dtype),
            name=f"dicom-{series.uid}-{series.label}",
        )
        report(progress, 1, 1)
    else:
        array = np.empty(series.shape, series.dtype)
        total = series.shape[0]
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:  # file reads release the GIL
            futures = [pool.submit(reader.into, index, array[index]) for index in range(total)]
            try:
                for done, future in enumerate(futures, start=1):
                    future.result()
                    report(progress, done, total)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        if array.dtype == np.int32 and array.size and array.min() >= -32768 and array.max() <= 32767:
            array = array.astype(np.int16)
    metadata = series.summary()
    _check_window(metadata, array if not lazy else reader(series.shape[0] // 2)[None])
    metadata["lazy"] = bool(lazy)
    metadata["dtype"] = str(array.dtype)
    metadata["source_path"] = series.source
    if philips_float:
        metadata["values"] = "Philips floating-point values (displayed value / (RescaleSlope x ScaleSlope))"
    elif any(f.slope != 1 or f.intercept != 0 for f in series.frames):
        metadata["values"] = "stored values x RescaleSlope + RescaleIntercept, per slice"
    else:
        metadata["values"] = "stored values (no rescale in the files)"
    return Volume(array, series.spacing, series.origin, series.direction, metadata)


def _check_window(metadata: dict, array: np.ndarray) -> None:
    """Replace a stored display window that shows almost no voxel by the 0.5-99.5 percentile range."""
    centre, width = metadata.get("window_center"), metadata.get("window_width")
    if centre is None or width is None or array.size == 0:
        return
    sample = array[:: max(1, array.shape[0] // 16)]
    low, high = centre - width / 2, centre + width / 2
    p_low, p_high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if p_high <= p_low:
        return
    inside = np.mean((sample > low) & (sample < high))
    # CT windows are meaningful in HU even when narrow (brain); MR values are arbitrary, so a window far
    # narrower than the values' range is a leftover, not a choice
    narrow = metadata.get("modality") != "CT" and width < 0.05 * (p_high - p_low)
    if inside >= 0.01 and not narrow:
        return
    metadata["window_center"], metadata["window_width"] = (p_low + p_high) / 2, p_high - p_low
    metadata["warnings"] = [
        *metadata["warnings"],
        (
            f"The stored display window (centre {centre:g}, width {width:g}) shows almost none of the image (under 1% "
            f"of voxels inside it, or under 5% of the value range); the initial contrast uses the 0.5-99.5 percentile range ({p_low:g} to {p_high:g}) "
            "instead."
        ),
    ]


def _rebuild_dtype(series: DicomSeries, philips_float: bool) -> DicomSeries:
    dtype, fill = _output_dtype(series.frames, philips_float)
    return replace(series, dtype=dtype, fill_value=fill)


def read_dicom(
    path: str | os.PathLike,
    series_uid: str | None = None,
    lazy: bool | None = None,
    philips_float: bool = False,
    progress: ProgressCallback | None = None,
) -> list[Volume]:
    """Every series (or those of ``series_uid``) in a file or folder, as Volumes."""
    scan = scan_dicom(path, philips_float=philips_float)
    chosen = scan.get(series_uid) if series_uid else scan.series
    if not chosen:
        known = ", ".join(f"{s.uid} ({s.name})" for s in scan.series)
        raise NoSeriesError(f"series {series_uid} is not in {os.fspath(path)}; found: {known}")
    total = sum(s.shape[0] for s in chosen)
    volumes, done = [], 0
    for series in chosen:

        def forward(step, _total, offset=done):
            report(progress, offset + step, total)

        volumes.append(read_series(series, lazy=lazy, philips_float=philips_float, progress=forward))
        done += series.shape[0]
    return volumes


def read_dicom_file(path: str | os.PathLike) -> Volume:
    """The first volume of one DICOM file (a single slice, or a multi-frame file's first stack), read eagerly."""
    if not Path(os.fspath(path)).is_file():
        raise CorruptFileError(f"{os.fspath(path)} is not a file")
    return read_dicom(path, lazy=False)[0]
