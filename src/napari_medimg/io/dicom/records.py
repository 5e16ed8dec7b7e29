"""Header records: what one file (or one frame, or one mosaic tile) contributes to a series, no pixels read.

Values are read once, checked (finite numbers, plausible positions and sizes) and kept in small dataclasses:
:class:`PixelFormat` (how a file stores its pixels), :class:`FrameRecord` (one 2D image) and
:class:`SeriesHeader` (PHI-free attributes shared by a series).  Patient name, ID and birth date are never
read into them.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "PixelFormat",
    "FrameRecord",
    "SeriesHeader",
    "quiet",
    "collector_paused",
    "MAX_POSITION_MM",
    "MAX_FRAME_PIXELS",
]

#: |ImagePositionPatient| components beyond this (1 km) are refused as not plausible
MAX_POSITION_MM = 1e6
#: a frame with more pixels than this (16384 x 16384) is refused before anything is allocated
MAX_FRAME_PIXELS = 2**28

_QUIET_LOCK = threading.Lock()
_quiet_blocks: list = [
    0,
    None,
]  # blocks inside quiet() (all threads), and the catch_warnings that saved the state


@contextlib.contextmanager
def quiet():
    """pydicom warns about every odd value in real-world files; our own checks report what matters.

    ``catch_warnings`` swaps process-wide state, so the first block to start (in any thread) saves the warning
    filters and silences them, and the last one to end restores them; the lock is held only for that count, not
    for the block, so reader threads decode in parallel (holding it for the block serialised every compressed
    frame of an eager read).

    Yields
    ------
    None
        Inside the block warnings are ignored.
    """
    with _QUIET_LOCK:
        if _quiet_blocks[0] == 0:
            saved = warnings.catch_warnings()
            saved.__enter__()
            warnings.simplefilter("ignore")
            _quiet_blocks[1] = saved
        _quiet_blocks[0] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_blocks[0] -= 1
            if _quiet_blocks[0] == 0:
                _quiet_blocks[1].__exit__(None, None, None)
                _quiet_blocks[1] = None


_COLLECTOR_LOCK = threading.Lock()
_collector_pauses = [0, False]  # blocks inside collector_paused(), and whether the collector was on before


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the block (on again when the last such block ends).

    A header pass makes tens of thousands of small records (a mosaic series: one per tile) that hold no
    reference cycles; each collection they trigger walks every object of the process (the whole of pydicom,
    numpy, ..., and in napari the viewer), which cost a 200-file mosaic conversion 5-45 ms of its ~150 ms.
    Reference counting still frees everything at once; cycles made meanwhile wait for the next collection.

    Yields
    ------
    None
        Inside the block the collector does not run (in any thread: it is process-wide state).
    """
    with _COLLECTOR_LOCK:
        if _collector_pauses[0] == 0:
            _collector_pauses[1] = gc.isenabled()
            gc.disable()
        _collector_pauses[0] += 1
    try:
        yield
    finally:
        with _COLLECTOR_LOCK:
            _collector_pauses[0] -= 1
            if _collector_pauses[0] == 0 and _collector_pauses[1]:
                gc.enable()


@dataclass
class PixelFormat:
    """How one file stores its pixels (size, bits, sign, transfer syntax, raw offset when uncompressed).

    Attributes
    ----------
    rows, cols, frames : int
        Image size and frame count.
    bits_allocated, bits_stored : int
        Bits per stored value and bits used.
    signed : bool
        PixelRepresentation 1.
    transfer_syntax, photometric : str
        TransferSyntaxUID and PhotometricInterpretation.
    pixel_offset : int or None
        Byte offset of the first value when the raw path applies.
    deflated : bool
        Deflated transfer syntax (read through the capped inflation).
    """

    rows: int
    cols: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntax: str
    photometric: str
    pixel_offset: int | None  # byte offset of the first pixel value when the fast raw path applies
    deflated: bool = False

    @property
    def raw_dtype(self) -> np.dtype:
        """Little-endian numpy dtype of one stored value."""
        kind = "i" if self.signed else "u"
        return np.dtype(f"<{kind}{self.bits_allocated // 8}")

    def raw_range(self) -> tuple[int, int]:
        """Smallest and largest value BitsStored can hold."""
        if self.signed:
            return -(2 ** (self.bits_stored - 1)), 2 ** (self.bits_stored - 1) - 1
        return 0, 2**self.bits_stored - 1


@dataclass
class FrameRecord:
    """One 2D image: a single-frame file, one frame of a multi-frame file or one tile of a mosaic.

    Attributes
    ----------
    path : str
        The file.
    frame : int or None
        Frame index in a multi-frame file.
    fmt : PixelFormat
        How the file stores its pixels.
    position, orientation : numpy.ndarray or None
        ImagePositionPatient and ImageOrientationPatient.
    pixel_spacing : tuple or None
        ``(dy, dx)`` in mm.
    slope, intercept : float
        RescaleSlope and RescaleIntercept.
    region : tuple or None
        ``(row0, col0, rows, cols)`` of a mosaic tile.
    """

    path: str
    frame: int | None
    fmt: PixelFormat
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    instance: int
    window: tuple[float, float] | None
    #: what makes this image a different stack: (name, value) pairs (ImageType, echo, enhanced dimensions)
    stack_key: tuple = ()
    stack_label: str = ""
    #: what orders images at one position into volumes (see ``volumes.VOLUME_ORDER``)
    volume_key: tuple = ()
    split_values: dict = field(default_factory=dict)
    philips_scale: float | None = None
    units: str = ""
    sop_uid: str = ""
    #: (row0, col0, rows, cols) of a mosaic tile inside the stored image, None for the whole image
    region: tuple[int, int, int, int] | None = None
    image_type: tuple[str, ...] = ()
    echo_number: int | None = None
    echo_time: float | None = None
    acquisition_time: float | None = None  # seconds since midnight
    temporal_position: int | None = None
    trigger_time: float | None = None
    b_value: float | None = None
    b_vector: np.ndarray | None = None  # unit gradient direction in patient LPS
    #: BIDS-style acquisition values (RepetitionTime, FlipAngle, PhaseEncodingDirection, ...), maybe shared
    acquisition: dict = field(default_factory=dict)
    slice_time: float | None = None  # seconds from the volume's start (Siemens MosaicRefAcqTimes)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of this image (a tile's size for a mosaic tile)."""
        if self.region is not None:
            return self.region[2], self.region[3]
        return self.fmt.rows, self.fmt.cols

    @property
    def unit(self) -> tuple[str, int | None]:
        """The stored image this record's pixels come from: ``(path, frame)`` (shared by a mosaic's tiles)."""
        return self.path, self.frame


@dataclass
class SeriesHeader:
    """PHI-free attributes shared by the frames of a series.

    Attributes
    ----------
    series_uid, modality, description : str
        SeriesInstanceUID, Modality, SeriesDescription.
    series_number : int or None
        SeriesNumber.
    enhanced : bool
        True for an enhanced multi-frame file.
    """

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

    @property
    def key(self) -> tuple[str, int | None]:
        """Series identity: SeriesInstanceUID and SeriesNumber (copies sharing a UID stay apart)."""
        return self.series_uid, self.series_number


# ---- value helpers ---------------------------------------------------------------------------------------------
def to_float(value, default=None):
    """A finite float from a DICOM value (``default`` when empty); ValueError when not finite."""
    value = first(value)
    if value is None or value == "":
        return default
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(f"non-finite value {value!r}")
    return result


def is_multi_value(value) -> bool:
    """A list, tuple or pydicom ``MultiValue`` (pydicom is imported only where its reader is needed: a
    ``MultiValue`` exists only once it is)."""
    if isinstance(value, (list, tuple)):
        return True
    if isinstance(value, (str, int, float)) or value is None:  # the common single values, answered at once
        return False
    multival = sys.modules.get("pydicom.multival")
    return multival is not None and isinstance(value, multival.MultiValue)


def to_floats(value, count: int) -> np.ndarray | None:
    """``count`` finite floats from a multi-valued DICOM value, None when empty; ValueError otherwise."""
    if value is None or value == "":
        return None
    items = value if is_multi_value(value) else [value]
    values = np.asarray([float(v) for v in items], float)
    if values.shape != (count,) or not np.isfinite(values).all():
        raise ValueError(f"expected {count} finite numbers, got {value!r}")
    return values


def first(value):
    """The first item of a multi-value (or the value itself)."""
    if is_multi_value(value):
        return value[0] if len(value) else None
    return value


def joined(value) -> str:
    """A multi-value as backslash-joined text (how DICOM stores it)."""
    if is_multi_value(value):
        return "\\".join(str(v) for v in value)
    return str(value if value is not None else "")


def to_int(value) -> int | None:
    """An integer from a DICOM IS/US value, None when empty or not a number."""
    value = first(value)
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def seconds_of_day(value) -> float | None:
    """Seconds since midnight of a DICOM TM (``HHMMSS.ffffff``) or DT value, None when unreadable."""
    text = str(first(value) or "").strip()
    if len(text) >= 14 and text[:8].isdigit():  # DT: YYYYMMDDHHMMSS
        text = text[8:]
    text = text.split("+")[0].split("-")[0]
    try:
        hours = int(text[0:2])
        minutes = int(text[2:4]) if len(text) >= 4 else 0
        seconds = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def window_of(item) -> tuple[float, float] | None:
    """``(centre, width)`` of the first stored display window of a dataset or sequence item."""
    centre, width = first(item.get("WindowCenter")), first(item.get("WindowWidth"))
    if centre is None or width is None or centre == "" or width == "":
        return None
    centre, width = float(centre), float(width)
    return (centre, width) if np.isfinite(centre) and np.isfinite(width) and width > 0 else None


def check_position(position: np.ndarray | None) -> np.ndarray | None:
    """Refuse positions beyond :data:`MAX_POSITION_MM` (they make an infinite or absurd affine)."""
    if position is not None and np.abs(position).max() > MAX_POSITION_MM:
        raise ValueError(
            f"ImagePositionPatient {position.tolist()} lies more than {MAX_POSITION_MM:g} mm from the "
            "scanner origin; it is not a plausible position"
        )
    return position
