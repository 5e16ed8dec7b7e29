"""Pixel reading: stored values of one image, rescaled and placed into a 3D or 4D array, eagerly or lazily.

Each stored image (a file, a frame of a multi-frame file) is decoded once, whatever number of slots it
feeds (a mosaic feeds one slot per tile).  Uncompressed little-endian pixels are read straight from the file
(into the output array when the values fit); compressed transfer syntaxes go through pydicom's decoder
plugins (installed with napari-medimg: pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls, Pillow, python-gdcm and
imagecodecs (:mod:`.imagecodecs_decoders`), all permissive licences), deflated files through a capped inflation.  Eager reads decode on a thread pool; lazy
reads return a dask array with one chunk per slice of each volume; :func:`stream_pixels` hands each image's
slices to a writer instead (the converter's path: the stack is never held whole).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...progress import Cancelled, ProgressCallback, report
from ..errors import CorruptFileError, MedImgReadError, MissingDecoderError
from . import imagecodecs_decoders
from .files import BoundedReader
from .header import inflate
from .records import FrameRecord, collector_paused, quiet

if TYPE_CHECKING:
    from .series import DicomSeries

__all__ = [
    "decode_image",
    "raw_frame",
    "SliceReader",
    "read_pixels",
    "stream_pixels",
    "decoder_hint",
    "READ_THREADS",
]

#: threads that decode compressed images (uncompressed ones are read on the calling thread: see _threads)
READ_THREADS = 4


def _name(path) -> str:
    return Path(str(path)).name


def decoder_hint(syntax: str, bits_stored: int | None = None) -> str:
    """What to install to decode ``syntax`` (all of these are napari-medimg dependencies).

    Parameters
    ----------
    syntax : str
        A TransferSyntaxUID.
    bits_stored : int, optional
        BitsStored (12-bit JPEG Extended needs libjpeg-turbo 3, in imagecodecs).

    Returns
    -------
    str
        A sentence naming the transfer syntax and the ``pip install`` that decodes it.
    """
    import pydicom

    name = getattr(pydicom.uid.UID(syntax), "name", syntax)
    if _needs_turbo(syntax, bits_stored) or syntax in imagecodecs_decoders.LOSSLESS_JPEG_SYNTAXES:
        return (
            f"the pixel data is compressed as {name}, which libjpeg-turbo 3 decodes: "
            '`pip install "imagecodecs>=2024.1"`'
        )
    if "JPEG 2000" in name or "HTJ2K" in name:
        package = "pylibjpeg pylibjpeg-openjpeg"
    elif "JPEG-LS" in name:
        package = "pyjpegls"
    elif "JPEG" in name:
        package = "pillow"
    elif "RLE" in name:
        package = "pylibjpeg pylibjpeg-rle"
    else:
        package = "python-gdcm"
    return f"the pixel data is compressed as {name}; install a decoder: `pip install {package}`"


_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


def _needs_turbo(syntax: str, bits_stored: int | None) -> bool:
    """JPEG Extended with more than 8 bits (12-bit process 4): gdcm and Pillow refuse it, libjpeg-turbo decodes it."""
    return syntax == _JPEG_EXTENDED and bits_stored is not None and bits_stored > 8


#: the decoder chosen where pydicom's first choice, gdcm, kills the whole process on some corrupt streams (a
#: C++ exception through C, or a segmentation fault, found by fuzzing): Pillow (libjpeg-turbo) for 8-bit JPEG,
#: pyjpegls (CharLS) for JPEG-LS, imagecodecs (:mod:`.imagecodecs_decoders`: libjpeg-turbo 3, OpenJPEG) for JPEG
#: Lossless, 12-bit JPEG and JPEG 2000; each raises on corrupt data and gave the same values as gdcm on every
#: lossless sample tried
_SAFER_PLUGIN = {
    "1.2.840.10008.1.2.4.50": "pillow",
    "1.2.840.10008.1.2.4.51": "pillow",
    **dict.fromkeys(
        imagecodecs_decoders.LOSSLESS_JPEG_SYNTAXES + imagecodecs_decoders.JPEG2000_SYNTAXES,
        imagecodecs_decoders.PLUGIN,
    ),
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
}


def decoding_plugin(syntax: str, bits_stored: int | None) -> str:
    """The pydicom decoding plugin for compressed pixel data of ``syntax`` ("" for pydicom's default order).

    Parameters
    ----------
    syntax : str
        The TransferSyntaxUID.
    bits_stored : int or None
        BitsStored (12-bit JPEG Extended goes to libjpeg-turbo, 8-bit to Pillow).

    Returns
    -------
    str
        A plugin name (``"pillow"``, ``"pyjpegls"``, :data:`.imagecodecs_decoders.PLUGIN`) when it is
        installed, else ``""``.
    """
    import pydicom

    plugin = (
        imagecodecs_decoders.PLUGIN if _needs_turbo(syntax, bits_stored) else _SAFER_PLUGIN.get(syntax, "")
    )
    if not plugin:
        return ""
    if plugin == imagecodecs_decoders.PLUGIN:
        imagecodecs_decoders.register()
    try:
        available = plugin in pydicom.pixels.get_decoder(syntax).available_plugins
    except Exception:  # noqa: BLE001 - no decoder class for this syntax: pydicom's default says why
        return ""
    return plugin if available else ""


def _decoder_available(syntax: str) -> bool:
    import pydicom

    try:
        return bool(pydicom.pixels.get_decoder(syntax).is_available)
    except Exception:  # noqa: BLE001 - no decoder class at all for this transfer syntax
        return False


def decode_image(path: str, frame: int | None, fmt) -> np.ndarray:
    """Stored values of one whole stored image (all tiles of a mosaic), shape ``(rows, cols)``.

    Parameters
    ----------
    path : str
        The file.
    frame : int or None
        Frame index of a multi-frame file, None for a single-frame file.
    fmt : PixelFormat
        How the file stores its pixels.

    Returns
    -------
    numpy.ndarray
        The stored (not rescaled) values; bits above BitsStored cleared.

    Raises
    ------
    MissingDecoderError
        When no installed package decodes the transfer syntax.
    CorruptFileError
        When the pixel data is truncated or cannot be decoded (corrupt compressed data included).
    """
    count = fmt.rows * fmt.cols
    if fmt.pixel_offset is not None:
        offset = fmt.pixel_offset + (frame or 0) * count * fmt.raw_dtype.itemsize
        try:
            values = np.fromfile(path, dtype=fmt.raw_dtype, count=count, offset=offset)
        except OSError as error:
            raise CorruptFileError(f"{_name(path)} cannot be read: {error}") from error
        if values.size != count:
            raise CorruptFileError(f"{_name(path)} is truncated")
        if (
            not fmt.signed and fmt.bits_stored < fmt.bits_allocated
        ):  # bits above BitsStored are not pixel data
            values &= values.dtype.type((1 << fmt.bits_stored) - 1)
        return values.reshape(fmt.rows, fmt.cols)
    import pydicom  # compressed, deflated or big-endian data: pydicom's decoders (imported only then)

    with quiet():
        try:
            compressed = pydicom.uid.UID(fmt.transfer_syntax).is_compressed
        except ValueError as error:  # not a transfer syntax UID at all
            raise CorruptFileError(
                f"{_name(path)}: {fmt.transfer_syntax!r} is not a transfer syntax; the pixels cannot be read"
            ) from error
        if _needs_turbo(fmt.transfer_syntax, fmt.bits_stored):
            available = imagecodecs_decoders.is_available(
                fmt.transfer_syntax
            )  # neither gdcm nor Pillow decodes it
        else:
            available = not compressed or _decoder_available(fmt.transfer_syntax)
    if not available:
        raise MissingDecoderError(f"{_name(path)}: {decoder_hint(fmt.transfer_syntax, fmt.bits_stored)}")
    try:
        with quiet():
            if fmt.deflated:
                values = inflate(path).pixel_array
                values = values[frame] if frame is not None and values.ndim == 3 else values
            elif compressed:
                with BoundedReader(path) as handle:
                    dataset = pydicom.dcmread(handle)
                values = compressed_pixel_array(dataset, frame, fmt.frames, _name(path))
            else:
                values = pydicom.pixels.pixel_array(path, index=frame)
    except (Cancelled, MedImgReadError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as error:  # Rust decoders (pylibjpeg-rle) panic with a BaseException on bad data
        what = "compressed pixel data is corrupt" if compressed else "pixel data cannot be decoded"
        raise CorruptFileError(f"{_name(path)}: {what} ({type(error).__name__}: {error})") from error
    if values.shape != (fmt.rows, fmt.cols):
        raise CorruptFileError(
            f"{_name(path)}: decoded pixels have shape {values.shape}, expected {(fmt.rows, fmt.cols)}"
        )
    return values


def compressed_pixel_array(dataset, frame: int | None, frames: int, name: str) -> np.ndarray:
    """The decoded values of one frame of encapsulated pixel data, checked before a decoder sees them.

    The frame's codestream must declare Rows x Columns (:func:`check_codestream`), and the decoder is
    :func:`decoding_plugin`'s choice (not gdcm where gdcm can abort the process).  Shared by the grey reader
    (:func:`decode_image`) and the colour one (:mod:`.colour`).

    Parameters
    ----------
    dataset : pydicom.Dataset
        The whole file.
    frame : int or None
        Frame index, None for a single-frame file.
    frames : int
        NumberOfFrames.
    name : str
        File name for messages.

    Returns
    -------
    numpy.ndarray
        What ``pydicom.pixels.pixel_array`` returns (colour converted to RGB).
    """
    import pydicom

    syntax = str(dataset.file_meta.TransferSyntaxUID)
    for index, encoded in enumerate(
        pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=frames)
    ):
        if index == (frame or 0):
            check_codestream(encoded, (int(dataset.Rows), int(dataset.Columns)), name)
            break
    else:
        raise CorruptFileError(f"the encapsulated pixel data holds fewer than {(frame or 0) + 1} frames")
    plugin = decoding_plugin(syntax, int(dataset.get("BitsStored", dataset.get("BitsAllocated", 8))))
    try:
        return pydicom.pixels.pixel_array(dataset, index=frame, decoding_plugin=plugin)
    except RuntimeError as error:  # "Unable to decode ... all available plugins:" and one line per plugin
        raise ValueError(" ".join(str(error).split())) from error


def _codestream_size(encoded: bytes) -> tuple[int, int] | None:
    """``(rows, columns)`` a JPEG, JPEG-LS or JPEG 2000 codestream declares, None when it is none of them.

    Raises
    ------
    ValueError
        For a JPEG codestream whose segments do not lead to a frame header (a corrupt stream that gdcm's
        JPEG decoder would abort the process on).
    """
    if encoded[:4] == b"\xff\x4f\xff\x51" and len(encoded) >= 24:  # J2K: SOC, then SIZ
        xsiz, ysiz, xosiz, yosiz = (int.from_bytes(encoded[i : i + 4], "big") for i in (8, 12, 16, 20))
        return ysiz - yosiz, xsiz - xosiz
    if encoded[:2] != b"\xff\xd8":  # JPEG / JPEG-LS: SOI, then segments up to the start of frame
        return None
    position = 2
    while position + 9 <= len(encoded):
        if encoded[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position} before the frame header")
        marker = encoded[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7):
            rows = int.from_bytes(encoded[position + 5 : position + 7], "big")
            return rows, int.from_bytes(encoded[position + 7 : position + 9], "big")
        if marker in (0x00, 0xD8, 0xD9, 0xDA):  # stuffing, a second SOI, EOI or scan data before any frame
            raise ValueError(f"JPEG marker 0x{marker:02X} at byte {position} before the frame header")
        position += 2 + int.from_bytes(encoded[position + 2 : position + 4], "big")
    raise ValueError("the JPEG codestream ends before its frame header")


def check_codestream(encoded: bytes, shape: tuple[int, int], name: str) -> None:
    """Refuse a compressed frame whose codestream declares another size than Rows x Columns, before decoding.

    Parameters
    ----------
    encoded : bytes
        One encoded frame.
    shape : tuple of int
        ``(Rows, Columns)`` of the file.
    name : str
        File name for the message.

    Raises
    ------
    CorruptFileError
        When the sizes differ (a decoder would allocate and decode the codestream's size), or when a JPEG
        codestream does not reach its frame header.
    """
    try:
        size = _codestream_size(encoded)
    except ValueError as error:
        raise CorruptFileError(
            f"{name}: the compressed frame is corrupt ({error}); refused before decoding"
        ) from error
    if size is not None and size != tuple(shape):
        raise CorruptFileError(
            f"{name}: the compressed frame declares {size[0]} x {size[1]} pixels but the header "
            f"{shape[0]} x {shape[1]}; refused before decoding"
        )


def _tile(values: np.ndarray, frame: FrameRecord) -> np.ndarray:
    if frame.region is None:
        return values
    row0, col0, rows, cols = frame.region
    return values[row0 : row0 + rows, col0 : col0 + cols]


def raw_frame(frame: FrameRecord) -> np.ndarray:
    """Stored pixel values of one image (a mosaic tile cut out of its mosaic), shape ``frame.shape``.

    Parameters
    ----------
    frame : FrameRecord
        The image.

    Returns
    -------
    numpy.ndarray
        Stored values, not rescaled.
    """
    return _tile(decode_image(frame.path, frame.frame, frame.fmt), frame)


class SliceReader:
    """Reads, rescales and (for gantry tilt) resamples slice ``k`` of volume ``v`` of a series.

    Parameters
    ----------
    series : DicomSeries
        The stack to read.
    philips_float : bool
        Philips floating-point values instead of displayed values.
    """

    def __init__(self, series: DicomSeries, philips_float: bool):
        self.series = series
        self.philips_float = philips_float
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _decoded(self, frame: FrameRecord) -> np.ndarray:
        """The decoded stored image behind ``frame``; the last few are cached (a mosaic feeds many slots)."""
        if frame.region is None:
            return decode_image(frame.path, frame.frame, frame.fmt)
        with self._lock:
            if frame.unit in self._cache:
                self._cache.move_to_end(frame.unit)
                return self._cache[frame.unit]
        values = decode_image(frame.path, frame.frame, frame.fmt)
        with self._lock:
            self._cache[frame.unit] = values
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return values

    def direct(self, frame: FrameRecord) -> bool:
        """True when the stored values can be read straight into an int16 output slice."""
        fmt = frame.fmt
        return (
            self.series.dtype == np.int16
            and fmt.pixel_offset is not None
            and fmt.bits_allocated == 16
            and (fmt.signed or fmt.bits_stored <= 15)
            and frame.slope == 1
            and frame.frame is None
            and frame.region is None
            and not self.series.tilt_degrees
        )

    def read_direct(self, frame: FrameRecord, out: np.ndarray) -> None:
        """Read the stored values of ``frame`` into the int16 slice ``out`` and add the intercept."""
        fmt = frame.fmt
        with open(frame.path, "rb") as handle:
            handle.seek(fmt.pixel_offset)
            if handle.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise CorruptFileError(f"{_name(frame.path)} is truncated")
        if not fmt.signed and fmt.bits_stored < 16:  # bits above BitsStored are not pixel data
            np.bitwise_and(out, np.int16((1 << fmt.bits_stored) - 1), out=out)
        if frame.intercept:
            np.add(out, np.int16(frame.intercept), out=out)

    def rescale(self, raw: np.ndarray, frame: FrameRecord, index: int) -> np.ndarray:
        """Stored values of ``frame`` (slice ``index``) as output values of the series' dtype."""
        series = self.series
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

    def __call__(self, volume: int, index: int) -> np.ndarray:
        """Output values of slice ``index`` of volume ``volume``."""
        frame = self.series.volume_slots[volume][index]
        if frame is None:
            return np.full(self.series.shape[1:], self.series.fill_value, dtype=self.series.dtype)
        return self.rescale(_tile(self._decoded(frame), frame), frame, index)

    def fill_unit(
        self,
        entries: list[tuple[int, int, FrameRecord]],
        out: np.ndarray,
        at: list[tuple[int, int]] | None = None,
    ) -> int:
        """Decode one stored image once and write every slot it feeds into the 4D ``out``.

        ``entries`` are ``(volume, slice, frame)``; each goes to ``out[volume, slice]``, or to ``out[at[j]]``
        when ``at`` is given (a smaller buffer; the slice index still decides a gantry-tilt shift).
        """
        at = at if at is not None else [(volume, index) for volume, index, _ in entries]
        if len(entries) == 1 and self.direct(entries[0][2]) and out[at[0]].flags.c_contiguous:
            self.read_direct(entries[0][2], out[at[0]])
            return 1
        first = entries[0][2]
        decoded = decode_image(first.path, first.frame, first.fmt)
        if self._fill_tiles(entries, decoded, out, at):
            return len(entries)
        for (_, index, frame), where in zip(entries, at, strict=True):
            if self.exact_int16(frame):  # stored values fit int16: assign (a cast), add the intercept
                target = out[where]
                target[...] = _tile(decoded, frame)
                if frame.intercept:
                    target += np.int16(frame.intercept)
            else:
                out[where] = self.rescale(_tile(decoded, frame), frame, index)
        return len(entries)

    def _fill_tiles(
        self, entries: list[tuple[int, int, FrameRecord]], decoded: np.ndarray, out, at: list[tuple[int, int]]
    ) -> bool:
        """The tiles of a mosaic into their slots with one gather and one scatter (what the per-tile loop of
        :meth:`fill_unit` does); False (nothing written) unless the tiles are exact int16 copies.  The entries
        are the tiles of one stored image: copies of one record, so they share its format, slope and
        intercept, and their regions one size."""
        first = entries[0][2]
        region = first.region
        if region is None or len(entries) < 2:
            return False
        _, _, tile_rows, tile_cols = region
        if decoded.shape[0] % tile_rows or decoded.shape[1] % tile_cols or not self.exact_int16(first):
            return False
        across = decoded.shape[1] // tile_cols
        tiles = decoded.reshape(-1, tile_rows, across, tile_cols).swapaxes(1, 2)  # (grid row, grid col, y, x)
        which = [(f.region[0] // tile_rows, f.region[1] // tile_cols) for _, _, f in entries]
        rows, cols = [r for r, _ in which], [c for _, c in which]
        volumes, indices = [v for v, _ in at], [i for _, i in at]
        if len(set(volumes)) == 1 and indices == list(range(indices[0], indices[0] + len(indices))):
            target = out[volumes[0], indices[0] : indices[0] + len(indices)]  # consecutive slots: no scatter
            target[...] = tiles[rows, cols]
        else:
            target = None
            out[volumes, indices] = tiles[rows, cols]
        intercept = first.intercept
        if intercept and target is not None:
            target += np.int16(intercept)
        elif intercept:
            out[volumes, indices] += np.int16(intercept)
        return True

    def exact_int16(self, frame: FrameRecord) -> bool:
        """True when the int16 output is the stored value plus an integer intercept (no scaling, no tilt)."""
        fmt = frame.fmt
        return (
            self.series.dtype == np.int16
            and frame.slope == 1
            and not self.series.tilt_degrees
            and fmt.bits_allocated <= 16
            and (fmt.signed or fmt.bits_stored <= 15)
        )


class _LazySeries:
    """Array-like handed to ``dask.array.from_array``: reads slices on demand (3D or volume-first 4D)."""

    def __init__(self, reader: SliceReader, shape: tuple[int, ...]):
        self.reader = reader
        self.shape = shape
        self.dtype = reader.series.dtype
        self.ndim = len(shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if self.ndim == 3:
            volumes, rest = [0], key
            squeeze_volume = True
        else:
            first = key[0]
            volumes = list(range(self.shape[0])[first]) if isinstance(first, slice) else [int(first)]
            squeeze_volume, rest = not isinstance(first, slice), key[1:]
        second = rest[0]
        indices = list(range(self.shape[-3])[second]) if isinstance(second, slice) else [int(second)]
        stack = np.empty((len(volumes), len(indices)) + self.shape[-2:], self.dtype)
        for i, volume in enumerate(volumes):
            for j, index in enumerate(indices):
                stack[i, j] = self.reader(volume, index)
        stack = stack[(slice(None), slice(None) if isinstance(second, slice) else 0) + tuple(rest[1:])]
        return stack[0] if squeeze_volume else stack


def read_pixels(
    series: DicomSeries, lazy: bool, philips_float: bool, progress: ProgressCallback | None = None
) -> tuple[object, SliceReader]:
    """The series' output array: numpy (eager, thread pool) or dask (lazy, one chunk per slice).

    Parameters
    ----------
    series : DicomSeries
        What to read.
    lazy : bool
        Return a dask array instead of reading now.
    philips_float : bool
        Philips floating-point values instead of displayed values.
    progress : callable, optional
        ``progress(done, total)`` per image read.

    Returns
    -------
    tuple
        ``(array, reader)``; the array is ``(z, y, x)`` or ``(volume, z, y, x)``.
    """
    reader = SliceReader(series, philips_float)
    shape = series.array_shape
    if lazy:
        import dask.array as da

        chunks = (1,) * (len(shape) - 2) + series.shape[1:]
        array = da.from_array(
            _LazySeries(reader, shape),
            chunks=chunks,
            lock=False,
            asarray=False,
            meta=np.empty((0,) * len(shape), series.dtype),
            name=f"dicom-{series.uid}-{series.header.series_number}-{series.label}",
        )
        report(progress, 1, 1)
        return array, reader
    array = np.empty(shape, series.dtype)
    out = array.reshape((series.n_volumes,) + series.shape)
    units: dict = defaultdict(list)
    for volume, slots in enumerate(series.volume_slots):
        for index, frame in enumerate(slots):
            if frame is None:
                out[volume, index] = series.fill_value
            else:
                units[frame.unit].append((volume, index, frame))
    _each_unit(lambda entries: reader.fill_unit(entries, out), units.values(), _threads(units), progress)
    if array.dtype == np.int32 and array.size and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
        reader.series = replace(series, dtype=np.dtype(np.int16))
    return array, reader


def stream_pixels(
    series: DicomSeries,
    write: Callable[[int, np.ndarray], None],
    philips_float: bool = False,
    progress: ProgressCallback | None = None,
) -> None:
    """The series' output values handed to ``write`` image by image, never held whole (what a converter needs).

    Each stored image is decoded once and the slots it feeds are written as runs of consecutive slots: ``write(slot, values)`` with ``slot = volume * z + slice`` (the C order of the
    ``(volume, z, y, x)`` output) and ``values`` of shape ``(n, y, x)``, a new array the caller may keep.
    Compressed images are decoded on a thread pool (the decoders release the GIL), so ``write`` must be
    thread-safe (``os.pwrite`` to distinct offsets is); uncompressed ones are copied on the calling thread
    (threads would only contend for the GIL): a ``write`` that hands the bytes to a writer thread then lets
    the disk write overlap the reading.

    Parameters
    ----------
    series : DicomSeries
        What to read; its dtype must be final (not the ``int32`` that an eager read narrows afterwards).
    write : callable
        ``write(slot, values)``.
    philips_float : bool
        Philips floating-point values instead of displayed values.
    progress : callable, optional
        ``progress(done, total)`` per image read.
    """
    if series.dtype == np.int32:
        raise ValueError("an int32 stack is narrowed after an eager read; read it with read_pixels")
    reader = SliceReader(series, philips_float)
    depth = series.shape[0]
    units: dict = defaultdict(list)
    blanks = []
    for volume, slots in enumerate(series.volume_slots):
        for index, frame in enumerate(slots):
            if frame is None:
                blanks.append(volume * depth + index)
            else:
                units[frame.path, frame.frame].append((volume, index, frame))  # frame.unit, inlined
    if blanks:
        blank = np.full((1,) + series.shape[1:], series.fill_value, series.dtype)
        for slot in blanks:
            write(slot, blank)

    def fill(entries: list[tuple[int, int, FrameRecord]]) -> int:
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        slots = [volume * depth + index for volume, index, _ in entries]
        buffer = np.empty((1, len(entries)) + series.shape[1:], series.dtype)
        reader.fill_unit(entries, buffer, [(0, j) for j in range(len(entries))])
        start = 0
        for end in range(1, len(slots) + 1):  # one write per run of consecutive slots
            if end == len(slots) or slots[end] != slots[end - 1] + 1:
                write(slots[start], buffer[0, start:end])
                start = end
        return len(entries)

    with collector_paused():
        _each_unit(fill, units.values(), _threads(units), progress)


def _threads(units: dict) -> int:
    """Reader threads for these stored images: :data:`READ_THREADS` when some are compressed (the decoders
    release the GIL), else 1.  Uncompressed images are copies, which hold the GIL or are bound by memory
    bandwidth: on this project's 2-core machine a 200-file mosaic was read in 35 ms on one thread against 55 ms
    on four, and a 512 x 512 x 300 CT converted in 282 ms against 351 ms (read into memory: the same)."""
    compressed = any(entries[0][2].fmt.pixel_offset is None for entries in units.values())
    return READ_THREADS if compressed else 1


def _each_unit(work: Callable[[list], int], units, threads: int, progress: ProgressCallback | None) -> None:
    """``work(entries)`` for the entries of every stored image on a thread pool (on the calling thread when
    ``threads`` is 1), with progress per image; an error (or a cancel raised by ``progress``) cancels what has
    not started and is raised."""
    units = list(units)
    total, done = sum(len(entries) for entries in units), 0
    if threads <= 1:
        for entries in units:
            done += work(entries)
            report(progress, done, total)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(work, entries) for entries in units]
        try:
            for future in futures:
                done += future.result()
                report(progress, done, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
