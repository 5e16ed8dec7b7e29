"""Series and stacks: frame records grouped by series, split into stacks, placed (see ``placement``).

A series is the files sharing SeriesInstanceUID *and* SeriesNumber.  It is split into stacks by everything
that makes two images at one position different images: ImageType (magnitude, phase, real, imaginary, field
map, ...), echo (EchoNumbers, else EchoTime), enhanced-file stack and non-temporal dimensions, orientation,
image size, pixel spacing and pixel format.  Each stack gets a short readable label (``e2``, ``ph``,
``e1_ph``, ``fieldmap``) when the series has several, and becomes one :class:`DicomSeries` (3D, or 4D when
its images repeat positions: volumes).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...geometry import affine_from_geometry, orientation_code
from ...progress import ProgressCallback, report
from ..errors import GeometryError, MedImgReadError, NoSeriesError
from .display import display_defaults
from .files import find_dicom_files, is_dicom_file, is_regular_file
from .header import frames_of_file
from .pixels import raw_frame
from .placement import VOLUME_ORDER, place_stack
from .records import FrameRecord, SeriesHeader, collector_paused

__all__ = ["DicomSeries", "DicomScan", "scan_dicom", "scan_series_of_file", "build_series", "type_token"]

_TYPE_TOKENS = (
    ("ph", {"P", "PHASE", "PHASE MAP", "PHASE_MAP"}),
    ("real", {"R", "REAL"}),
    ("imag", {"I", "IMAGINARY"}),
    ("fieldmap", {"FIELD_MAP", "FIELDMAP", "B0_MAP", "B0 MAP"}),
    ("", {"M", "MAGNITUDE", "MAG"}),
)
_NEUTRAL_TYPES = {"ND", "NORM", "DIS2D", "DIS3D", "MOSAIC", "FILTERED", "NONE", "OTHER", "FFE", "SE", "EPI"}
_TYPE_ORDER = {"": 0, "ph": 1, "real": 2, "imag": 3, "fieldmap": 4}


def type_token(image_type: tuple[str, ...]) -> str:
    """Short name of an ImageType/FrameType: ``''`` (magnitude), ``ph``, ``real``, ``imag``, ``fieldmap`` or other.

    Parameters
    ----------
    image_type : tuple of str
        The ImageType (classic) or FrameType (enhanced) values, upper case.

    Returns
    -------
    str
        The token used in stack labels.
    """
    values = set(image_type[2:])
    for token, names in _TYPE_TOKENS:
        if values & names:
            return token
    rest = [v for v in image_type[2:] if v not in _NEUTRAL_TYPES] or list(image_type[:2])
    return re.sub(r"[^a-z0-9]+", "_", "_".join(rest).lower()).strip("_")


@dataclass
class DicomSeries:
    """One stack of a DICOM series with its derived geometry (no pixels read yet); 3D or 4D.

    Attributes
    ----------
    header : SeriesHeader
        The series.
    volume_slots : list of list
        ``[volume][slice]`` → FrameRecord, or None for a blank image.
    label : str
        The stack label (``e2``, ``ph``, ...; empty when the series is one stack).
    shape : tuple
        ``(z, y, x)`` of one volume (``array_shape`` adds the volume axis).
    spacing, origin, direction : numpy.ndarray
        The grid's geometry in LPS mm.
    warnings : list of str
        What the user should know.
    """

    header: SeriesHeader
    volume_slots: list  # [volume][slice]: FrameRecord, or None for a blank (missing) image
    label: str
    shape: tuple[int, int, int]  # (z, y, x) of one volume
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
    implausible_gap: bool = False

    @property
    def slots(self) -> list:
        """The slots of the first volume (the whole stack for a 3D series)."""
        return self.volume_slots[0]

    @property
    def n_volumes(self) -> int:
        """Number of volumes (1 for a 3D series)."""
        return len(self.volume_slots)

    @property
    def array_shape(self) -> tuple[int, ...]:
        """``(z, y, x)``, or ``(volume, z, y, x)`` for a 4D series."""
        return self.shape if self.n_volumes == 1 else (self.n_volumes, *self.shape)

    @property
    def uid(self) -> str:
        """SeriesInstanceUID."""
        return self.header.series_uid

    @property
    def modality(self) -> str:
        """DICOM Modality."""
        return self.header.modality

    @property
    def description(self) -> str:
        """SeriesDescription."""
        return self.header.description

    @property
    def name(self) -> str:
        """Layer name: the series description (never patient data), with the stack label when split."""
        base = self.header.description or f"{self.header.modality} series {self.header.series_number or '?'}"
        return f"{base} [{self.label}]" if self.label else base

    @property
    def frames(self) -> list[FrameRecord]:
        """Every image placed in this series (all volumes)."""
        return [slot for slots in self.volume_slots for slot in slots if slot is not None]

    @property
    def nbytes(self) -> int:
        """Bytes of the output array."""
        return int(np.prod(self.array_shape)) * self.dtype.itemsize

    @property
    def affine(self) -> np.ndarray:
        """4x4 index ``(k, j, i)`` → LPS matrix of the spatial grid."""
        return affine_from_geometry(self.spacing, self.origin, self.direction)

    def volume_info(self) -> list[dict]:
        """Per-volume metadata: acquisition time (s of day), temporal position, b-value, b-vector (LPS)."""
        info = []
        for slots in self.volume_slots:
            present = [f for f in slots if f is not None]
            entry: dict = {}
            times = [f.acquisition_time for f in present if f.acquisition_time is not None]
            if times:
                entry["acquisition_time"] = round(min(times), 6)
            positions = {f.temporal_position for f in present if f.temporal_position is not None}
            if len(positions) == 1:
                entry["temporal_position"] = positions.pop()
            values = [f.b_value for f in present if f.b_value is not None]
            if values:
                entry["b_value"] = float(values[0])
                vectors = [f.b_vector for f in present if f.b_vector is not None]
                if vectors:
                    entry["b_vector_lps"] = [round(float(v), 6) for v in vectors[0]]
            info.append(entry)
        return info

    def acquisition(self) -> dict:
        """BIDS-style acquisition values of the stack (EchoTime, RepetitionTime, FlipAngle, SliceTiming, ...)."""
        present = [f for f in self.slots if f is not None]
        if not present:
            return {}
        values = dict(present[0].acquisition)
        values.pop("InPlanePhaseEncodingDirectionDICOM", None)
        if present[0].echo_time is not None:
            values["EchoTime"] = round(present[0].echo_time / 1000.0, 9)
        times = [f.slice_time if f is not None else None for f in self.slots]
        if len(self.slots) > 1 and all(t is not None for t in times):
            values["SliceTiming"] = [round(float(t), 6) for t in times]
        elif len(self.slots) > 1:
            starts = [f.acquisition_time if f is not None else None for f in self.slots]
            if all(t is not None for t in starts) and len(set(starts)) > 1:
                values["SliceTiming"] = [round(float(t - min(starts)), 6) for t in starts]
        if self.n_volumes > 1:
            starts = [v.get("acquisition_time") for v in self.volume_info()]
            if all(s is not None for s in starts) and len(set(starts)) == len(starts):
                steps = np.diff(starts)
                if np.all(steps > 0):
                    values.setdefault("RepetitionTimeVolumes", round(float(np.median(steps)), 6))
        return values

    def summary(self) -> dict:
        """PHI-free description: modality, description, dimensions, spacing, orientation, geometry source."""
        frames = self.frames
        windows = [f.window for f in frames if f.window is not None]
        summary = {
            "series_uid": self.uid,
            "modality": self.modality,
            "series_description": self.name,
            "series_number": self.header.series_number,
            "stack": self.label,
            "manufacturer": self.header.manufacturer,
            "enhanced_multiframe": self.header.enhanced,
            "files": len({f.path for f in frames}),
            "images": len(frames),
            "dimensions": list(self.array_shape),
            "volumes": self.n_volumes,
            "spacing": [round(float(s), 6) for s in self.spacing],
            "orientation": orientation_code(self.direction),
            "geometry_source": self.geometry_source,
            "warnings": list(self.warnings),
            "dtype": str(self.dtype),
            "units": "HU" if self.modality == "CT" else (frames[0].units if frames else ""),
        }
        if any(f.region is not None for f in frames):
            summary["mosaic"] = True
        if self.n_volumes > 1:
            summary["volume_axis"] = 0
            summary["volume_order"] = VOLUME_ORDER
            summary["volume_info"] = self.volume_info()
        if self.implausible_gap:
            summary["implausible_gap"] = True
        if self.header.frame_of_reference:
            summary["frame_of_reference_uid"] = self.header.frame_of_reference
        summary.update(display_defaults(self.modality, windows))
        if self.tilt_degrees:
            summary["gantry_tilt_degrees"] = round(self.tilt_degrees, 3)
        return summary


@dataclass
class DicomScan:
    """Result of the header pass: the series found and the files that were skipped, with reasons.

    Attributes
    ----------
    series : list of DicomSeries
        One per stack.
    skipped : list of tuple
        ``(file or series name, reason)``.
    """

    series: list[DicomSeries]
    skipped: list[tuple[str, str]]

    def get(self, uid: str) -> list[DicomSeries]:
        """The stacks of the series with SeriesInstanceUID ``uid``."""
        return [series for series in self.series if series.uid == uid]


def output_dtype(frames: list[FrameRecord], philips_float: bool) -> tuple[np.dtype, float]:
    """``int16`` when slope/intercept keep every possible value an exact int16, else ``float32``; fill value."""
    lows, highs, exact = [], [], not philips_float
    distinct = {(id(f.fmt), f.slope, f.intercept, f.philips_scale): f for f in frames}.values()
    for frame in distinct:
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


def _enhanced_scaling_varies(slots: list[list[FrameRecord | None]]) -> bool:
    """The frames of an enhanced (multi-frame) stack with a Philips ScaleSlope do not share one
    RescaleSlope, RescaleIntercept and ScaleSlope.  dcm2niix (v1.0.20260724) then writes such a stack as float
    displayed values (stored x RescaleSlope + RescaleIntercept of each frame), not Philips floating-point ones."""
    present = [f for volume in slots for f in volume if f is not None]
    if not any(f.philips_scale for f in present) or any(f.fmt.frames < 2 for f in present):
        return False
    return len({(f.slope, f.intercept, f.philips_scale) for f in present}) > 1


def _echo_of(frame: FrameRecord) -> tuple:
    return (frame.echo_number, None if frame.echo_time is None else round(frame.echo_time, 3))


def _stack_key(frame: FrameRecord) -> tuple:
    orientation = None if frame.orientation is None else tuple(round(float(v), 3) for v in frame.orientation)
    spacing = None if frame.pixel_spacing is None else tuple(round(float(v), 4) for v in frame.pixel_spacing)
    fmt = frame.fmt
    return (
        frame.stack_key,
        frame.image_type,
        _echo_of(frame),
        orientation,
        frame.shape,
        spacing,
        fmt.bits_allocated,
        fmt.signed,
    )


#: makers whose derived trace images stay among a DWI's volumes, by the first two letters of Manufacturer as
#: dcm2niix reads it (Siemens and its venture CPS, GE, Hitachi, Mediso, Toshiba, Canon, UIH, Bruker)
_TRACE_KEPT_BY = ("SI", "CP", "GE", "HI", "ME", "TO", "CA", "UI", "BR")
#: the stack of every image of a DWI series with its derived trace images last (dcm2niix's ``_ADC`` file)
ADC_LABEL = "adc"


def _derived_trace(frame: FrameRecord, manufacturer: str) -> bool:
    """A derived isotropic (trace-weighted) diffusion image, left out of the diffusion volumes.

    Such an image has b > 0 and a zero gradient direction (Philips' private direction, or an enhanced frame
    whose DiffusionDirectionality is ISOTROPIC).  As dcm2niix does, Philips' and those of makers it does not know
    are left out of the DWI (its ``.bval``/``.bvec`` describe diffusion directions only); the other makers'
    stay among its volumes.
    """
    if not (frame.b_value and frame.b_value > 0) or frame.b_vector is None or np.any(frame.b_vector):
        return False
    return manufacturer.strip().upper()[:2] not in _TRACE_KEPT_BY


def _adc_stack(dwi: list[FrameRecord], traces: list[FrameRecord]) -> list[FrameRecord]:
    """Every image of a DWI stack and its derived trace images, the trace images as the last volumes: the
    stack dcm2niix writes as its ``_ADC`` file (copies of the records, whose volume order says which come last)."""
    return [
        replace(frame, volume_key=(last, *frame.volume_key))
        for last, frames in ((0, dwi), (1, traces))
        for frame in frames
    ]


def _same_pixels(a: FrameRecord, b: FrameRecord) -> bool:
    try:
        return bool(np.array_equal(raw_frame(a), raw_frame(b)))
    except MedImgReadError:
        return False


def _labels(stacks: list[list[FrameRecord]]) -> list[str]:
    """Readable stack labels: echo (``e2``), type (``ph``) and enhanced StackID (``stack2``) parts where the
    stacks differ in them."""
    if len(stacks) == 1:
        return [""]
    echoes = [_echo_of(s[0]) for s in stacks]
    times = sorted({t for _, t in echoes if t})  # an EchoTime of 0 (a derived field map) is no echo
    echo_ids = [n if n is not None else (times.index(t) + 1 if t else None) for n, t in echoes]
    tokens = [type_token(s[0].image_type) for s in stacks]
    stack_ids = [dict(s[0].stack_key).get("stack", "") for s in stacks]
    labels = []
    for echo, token, stack_id, stack in zip(echo_ids, tokens, stack_ids, stacks, strict=True):
        parts = []
        if len(set(echo_ids)) > 1 and echo is not None:
            parts.append(f"e{echo}")
        if len(set(tokens)) > 1 and token:
            parts.append(token)
        if len(set(stack_ids)) > 1 and stack_id:
            parts.append(f"stack{stack_id}")
        # the frame's own type word (FrameType value 4: M, P, ...); NONE says there is none
        own = stack[0].stack_label.lower() if stack[0].stack_label.upper() != "NONE" else ""
        label = "_".join(parts) or ("mag" if len(set(tokens)) > 1 else own)
        labels.append(re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_"))
    return labels


def build_series(
    header: SeriesHeader, frames: list[FrameRecord], philips_float: bool, source: str
) -> list[DicomSeries]:
    """The stacks of one series as :class:`DicomSeries` (split, labelled, placed).

    Parameters
    ----------
    header : SeriesHeader
        The series.
    frames : list of FrameRecord
        Every image of the series.
    philips_float : bool
        Choose the output dtype for Philips floating-point values.
    source : str
        The path the series was scanned from (kept in metadata).

    Returns
    -------
    list of DicomSeries
        One per stack, images that could not be placed in a volume as an extra stack naming its files.
    """
    by_key: dict[tuple, list[FrameRecord]] = defaultdict(list)
    unit_keys: dict = {}  # the tiles of one mosaic share their key
    for frame in frames:
        if frame.region is None:
            key = _stack_key(frame), _derived_trace(frame, header.manufacturer)
        else:
            unit = frame.path, frame.frame  # frame.unit, inlined: 7,200 tiles in a 200-file mosaic
            key = unit_keys.get(unit)
            if key is None:
                key = unit_keys[unit] = _stack_key(frame), _derived_trace(frame, header.manufacturer)
        by_key[key].append(frame)
    stacks = sorted(
        by_key.values(),
        key=lambda s: (
            _echo_of(s[0])[0] or 0,
            _TYPE_ORDER.get(type_token(s[0].image_type), 9),
            _echo_of(s[0])[1] or 0.0,
            min(f.instance for f in s),
        ),
    )
    dwi = [s for s in stacks if not _derived_trace(s[0], header.manufacturer)]
    # derived trace images leave the diffusion volumes of their stack (a series of them only stays whole)
    traced = {_stack_key(s[0]): s for s in stacks if dwi and _derived_trace(s[0], header.manufacturer)}
    keys = [_stack_key(s[0]) for s in dwi]
    alone = [t for key, t in traced.items() if key not in keys]  # no diffusion volumes beside them
    stacks = (dwi + alone) if dwi else stacks
    labels = _labels(stacks)
    main_stacks = len(stacks)
    for stack, label, key in list(zip(stacks, labels, keys + [None] * len(alone), strict=True)):
        if key in traced:
            stacks.append(_adc_stack(stack, traced[key]))
            labels.append(f"{label}_{ADC_LABEL}".strip("_"))
    result, pending = [], list(zip(range(len(stacks)), stacks, labels, strict=True))
    while pending:
        index, stack, label = pending.pop(0)
        placed = place_stack(stack, header, _same_pixels)
        notes = list(placed.warnings)
        if placed.unplaced:
            names = ", ".join(sorted({Path(f.path).name for f in placed.unplaced})[:5])
            pending.append((len(stacks), placed.unplaced, f"{label}_extra".strip("_")))
            notes.append(
                f"The images that could not be placed are in the stack '{label}_extra'.".replace("'_", "'")
            )
            if label.endswith("extra"):
                raise GeometryError(f"images of series {header.description!r} cannot be placed: {names}")
        if labels.count(label) > 1 or (not label and main_stacks > 1):
            number = sum(1 for r in result if r.label.startswith(label or "part")) + 1
            label = f"{label}_{number}" if label else f"part{number}"
            notes.insert(
                0,
                f"This series mixes {main_stacks} stacks with different orientation, image size or pixel "
                f"spacing; it was split into separate volumes (this is {label}).",
            )
        if label.endswith(ADC_LABEL) and index >= main_stacks:
            notes.append(
                "Every image of the series, its derived trace-weighted (isotropic) images last: b > 0 without a "
                "gradient direction (the file dcm2niix writes as _ADC; it is not an ADC map)."
            )
        elif traced and not label.endswith("extra"):
            notes.append(
                "The series' derived trace-weighted (isotropic) images (b > 0 without a gradient direction) are "
                f"left out of these diffusion volumes, as dcm2niix does; the stack '{ADC_LABEL}' holds every "
                "image with them last."
            )
        if _enhanced_scaling_varies(placed.slots):
            placed.slots = [
                [None if f is None else replace(f, philips_scale=None) for f in volume]
                for volume in placed.slots
            ]
            if philips_float:
                notes.append(
                    "RescaleSlope/Intercept or the Philips ScaleSlope differ between the frames of this stack: "
                    "its values are the displayed values (stored x RescaleSlope + RescaleIntercept of each frame), "
                    "not Philips floating-point values, as dcm2niix writes them."
                )
        present = [f for slots in placed.slots for f in slots if f is not None]
        dtype, fill = output_dtype(present, philips_float)
        if placed.tilt_degrees:
            dtype = np.dtype(np.float32)
        shape = (len(placed.slots[0]),) + present[0].shape
        result.append(
            DicomSeries(
                header,
                placed.slots,
                label,
                shape,
                np.asarray(placed.spacing, float),
                np.asarray(placed.origin, float),
                placed.direction,
                placed.source,
                notes,
                dtype,
                fill,
                placed.tilt_degrees,
                placed.shear_pixels,
                source,
                placed.implausible_gap,
            )
        )
    return result


def _describe(header: SeriesHeader) -> str:
    return f"series {header.description or header.series_number}"


def scan_dicom(
    path: str | os.PathLike | Iterable,
    progress: ProgressCallback | None = None,
    philips_float: bool = False,
    fast: bool = True,
) -> DicomScan:
    """Header-only pass over a file, a folder (recursive) or a list of files: the series found, split into stacks.

    A single file that cannot be read raises; in a folder, unreadable and non-image files are listed in
    ``DicomScan.skipped`` with the reason, and :class:`NoSeriesError` is raised only when no image is left.

    Parameters
    ----------
    path : str, os.PathLike or iterable of paths
        A DICOM file, a folder, or a list of files.
    progress : callable, optional
        ``progress(done, total)`` per file.
    philips_float : bool
        Choose output dtypes for Philips floating-point values.
    fast : bool
        Use the byte-level header parser where it applies (False: pydicom for every file).

    Returns
    -------
    DicomScan
        The stacks found (one :class:`DicomSeries` each) and the skipped files with reasons.

    Raises
    ------
    NoSeriesError
        When no readable image series is found.
    MedImgReadError
        For a single file that cannot be read.
    """
    if isinstance(path, (str, os.PathLike)):
        single = is_regular_file(path)
        files = find_dicom_files(path)
        source = os.fspath(path)
    else:
        files = [Path(os.fspath(p)) for p in path]
        single, source = len(files) == 1, os.path.commonpath([os.fspath(p) for p in files]) if files else ""
    if not files:
        raise NoSeriesError(f"no DICOM files found in {source}")
    with collector_paused():  # tens of thousands of small records, no cycles
        headers: dict[tuple, SeriesHeader] = {}
        frames: dict[tuple, list[FrameRecord]] = defaultdict(list)
        skipped = []
        for index, file in enumerate(files):
            try:
                header, file_frames = frames_of_file(file, fast)
            except MedImgReadError as error:
                if single:
                    raise
                skipped.append((file.name, str(error)))
            else:
                headers.setdefault(header.key, header)
                frames[header.key].extend(file_frames)
            report(progress, index + 1, len(files))
        series = []
        for key, header in headers.items():
            try:
                series.extend(build_series(header, frames[key], philips_float, source))
            except MedImgReadError as error:
                if single:
                    raise
                skipped.append((_describe(header), str(error)))
            except (
                ValueError,
                ArithmeticError,
                FloatingPointError,
            ) as error:  # values that make no geometric sense
                if single:
                    raise GeometryError(f"the slice geometry is inconsistent ({error})") from error
                skipped.append((_describe(header), f"inconsistent slice geometry ({error})"))
    if not series:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise NoSeriesError(f"no readable DICOM image series in {source} ({reasons})")
    return DicomScan(series, skipped)


def scan_series_of_file(path: str | os.PathLike, progress: ProgressCallback | None = None) -> DicomScan:
    """The whole series one single-frame file belongs to, from the files beside it (a multi-frame file alone).

    Parameters
    ----------
    path : str or os.PathLike
        One DICOM file.
    progress : callable, optional
        ``progress(done, total)`` per file.

    Returns
    -------
    DicomScan
        The stacks of that file's series.
    """
    path = Path(os.fspath(path))
    header, frames = frames_of_file(path)
    if frames[0].frame is not None:
        return scan_dicom(path, progress=progress)
    siblings = [p for p in sorted(path.parent.iterdir()) if not p.name.startswith(".") and is_dicom_file(p)]
    scan = scan_dicom(siblings, progress=progress)
    chosen = [series for series in scan.series if series.header.key == header.key]
    return DicomScan(chosen, []) if chosen else scan_dicom(path, progress=progress)
