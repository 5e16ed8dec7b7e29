"""A small header parser for the common case: single-frame, little-endian DICOM (uncompressed or encapsulated).

The header pass over a series of hundreds of files is dominated by pydicom's general machinery (file meta
parsing, element objects, value validation).  For the plain case this module reads the few top-level values
the geometry needs straight from the bytes and stops at Pixel Data.  Anything it does not expect (another
transfer syntax, a multi-frame or enhanced file, an unusual character set, a malformed length) makes it
return None, and the caller falls back to pydicom.  Tests check that both paths agree on real files.

The files of one series usually share one header layout: the same elements with the same lengths, in the
same order.  After a file is walked, its layout (the offset and bytes of every element header, and where each
wanted value lies) is kept; the next file of the same size is read in one piece and checked against it with
one array comparison of those header bytes.  When every header matches, the walk would visit exactly the
same elements, so only the wanted values are taken from their known offsets (and decoded again only where
their bytes differ); otherwise the file is walked as usual.
"""

from __future__ import annotations

# kept because faster: 0.100 s vs 0.250 s for pydicom.dcmread(specific_tags, stop_before_pixels), 200 mosaics
import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["parse_header", "FastHeader"]

_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
#: JPEG (baseline, extended, lossless, JPEG-LS, JPEG 2000, HTJ2K) and RLE: explicit VR little-endian datasets
_COMPRESSED = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_ENCODINGS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}

# tag -> (keyword, kind): "str" text, "multi" backslash-separated text, "us" unsigned short, "fd" doubles,
# "bytes" raw value (the Siemens CSA image header, parsed by nibabel); private tags only under their creator
_WANTED = {
    0x00080005: ("SpecificCharacterSet", "str"),
    0x00080008: ("ImageType", "multi"),
    0x00080016: ("SOPClassUID", "uid"),
    0x00080018: ("SOPInstanceUID", "uid"),
    0x00080032: ("AcquisitionTime", "str"),
    0x00080033: ("ContentTime", "str"),
    0x00080060: ("Modality", "str"),
    0x00080070: ("Manufacturer", "str"),
    0x0008103E: ("SeriesDescription", "str"),
    0x00180050: ("SliceThickness", "str"),
    0x00180080: ("RepetitionTime", "str"),
    0x00180081: ("EchoTime", "str"),
    0x00180086: ("EchoNumbers", "str"),
    0x00180087: ("MagneticFieldStrength", "str"),
    0x00180088: ("SpacingBetweenSlices", "str"),
    0x00181060: ("TriggerTime", "str"),
    0x00181164: ("ImagerPixelSpacing", "multi"),
    0x00181312: ("InPlanePhaseEncodingDirection", "str"),
    0x00181314: ("FlipAngle", "str"),
    0x00189087: ("DiffusionBValue", "fd"),
    0x00189089: ("DiffusionGradientOrientation", "fd"),
    0x00190010: ("_creator_0019", "str"),
    0x0019100A: ("NumberOfImagesInMosaic", "us"),
    0x00191029: ("MosaicRefAcqTimes", "fd"),
    0x001910BB: ("GEGradientX", "str"),
    0x001910BC: ("GEGradientY", "str"),
    0x001910BD: ("GEGradientZ", "str"),
    0x20010010: ("_creator_2001", "str"),
    0x20011003: ("PhilipsBValue", "fl"),
    0x00290010: ("_creator_0029", "str"),
    0x00291010: ("CSAImageHeader", "bytes"),
    0x00430010: ("_creator_0043", "str"),
    0x00431039: ("GEBValue", "multi"),
    0x20050010: ("_creator_2005", "str"),
    0x2005100E: ("PhilipsScaleSlope", "fl"),
    0x200510B0: ("PhilipsGradientRL", "fl"),
    0x200510B1: ("PhilipsGradientAP", "fl"),
    0x200510B2: ("PhilipsGradientFH", "fl"),
    0x0020000E: ("SeriesInstanceUID", "uid"),
    0x00200011: ("SeriesNumber", "str"),
    0x00200012: ("AcquisitionNumber", "str"),
    0x00200013: ("InstanceNumber", "str"),
    0x00200032: ("ImagePositionPatient", "multi"),
    0x00200037: ("ImageOrientationPatient", "multi"),
    0x00200052: ("FrameOfReferenceUID", "uid"),
    0x00200100: ("TemporalPositionIdentifier", "str"),
    0x00280002: ("SamplesPerPixel", "us"),
    0x00280004: ("PhotometricInterpretation", "str"),
    0x00280008: ("NumberOfFrames", "str"),
    0x00280010: ("Rows", "us"),
    0x00280011: ("Columns", "us"),
    0x00280030: ("PixelSpacing", "multi"),
    0x00280100: ("BitsAllocated", "us"),
    0x00280101: ("BitsStored", "us"),
    0x00280103: ("PixelRepresentation", "us"),
    0x00281050: ("WindowCenter", "multi"),
    0x00281051: ("WindowWidth", "multi"),
    0x00281052: ("RescaleIntercept", "str"),
    0x00281053: ("RescaleSlope", "str"),
}
#: (creator keyword, creator, the private values of its block 10xx) read above
_PRIVATE = (
    ("_creator_0019", "SIEMENS MR HEADER", ("NumberOfImagesInMosaic", "MosaicRefAcqTimes")),
    ("_creator_0019", "GEMS_ACQU_01", ("GEGradientX", "GEGradientY", "GEGradientZ")),
    ("_creator_0029", "SIEMENS CSA HEADER", ("CSAImageHeader",)),
    ("_creator_0043", "GEMS_PARM_01", ("GEBValue",)),
    ("_creator_2001", "Philips Imaging DD 001", ("PhilipsBValue",)),
    (
        "_creator_2005",
        "Philips MR Imaging DD 001",
        ("PhilipsScaleSlope", "PhilipsGradientRL", "PhilipsGradientAP", "PhilipsGradientFH"),
    ),
)
_CREATORS = sorted({creator for creator, _, _ in _PRIVATE})
_REFUSE = {0x52009229, 0x52009230}
_CHUNK = 65536  # bytes read at a time  # functional groups: enhanced files go through pydicom


class FastHeader(dict):
    """The values :mod:`napari_medimg.io.dicom` reads, keyed by keyword (a stand-in for a pydicom Dataset).

    Parameters
    ----------
    values : dict
        Keyword → value (str, list of str, int or float; ``CSAImageHeader`` as bytes).
    transfer_syntax : str
        The file's TransferSyntaxUID, kept as ``file_meta["TransferSyntaxUID"]``.
    """

    def __init__(self, values: dict, transfer_syntax: str):
        super().__init__(values)
        self.file_meta = {"TransferSyntaxUID": transfer_syntax}

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Stop(Exception):
    pass


_EXPLICIT_HEAD = struct.Struct("<HH2sH").unpack_from  # group, element, VR, 16-bit length
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
_TAG, _U32, _U16 = (
    struct.Struct("<HH").unpack_from,
    struct.Struct("<I").unpack_from,
    struct.Struct("<H").unpack_from,
)


def _element_header(buffer: bytes, position: int, explicit: bool):
    """(tag, vr, length, value start) of the element at ``position``."""
    group, element = _TAG(buffer, position)
    tag = (group << 16) | element
    if group == 0xFFFE:
        return tag, b"", _U32(buffer, position + 4)[0], position + 8
    if explicit:
        vr = buffer[position + 4 : position + 6]
        if vr in _LONG_VRS:
            return tag, vr, _U32(buffer, position + 8)[0], position + 12
        if not vr.isalpha() or not vr.isupper():
            raise _Stop()
        return tag, vr, _U16(buffer, position + 6)[0], position + 8
    return tag, b"", _U32(buffer, position + 4)[0], position + 8


def _skip_undefined(buffer: bytes, position: int, explicit: bool, end_tag: int, depth: int = 0) -> int:
    """Position after the delimiter ``end_tag`` of an undefined-length sequence or item."""
    if depth > 16:
        raise _Stop()
    while True:
        tag, vr, length, start = _element_header(buffer, position, explicit)
        if tag == end_tag:
            return start
        if length == _UNDEFINED:
            if tag == _ITEM:
                position = _skip_undefined(buffer, start, explicit, _ITEM_END, depth + 1)
            else:  # a nested sequence (SQ, or UN holding implicit VR)
                position = _skip_undefined(buffer, start, explicit and vr != b"UN", _SEQUENCE_END, depth + 1)
        else:
            position = start + length
        if position > len(buffer):
            raise _Stop()


def _text(raw: bytes, encoding: str) -> str:
    return raw.decode(encoding).strip(" \x00")


def parse_header(handle, size: int) -> tuple[FastHeader, int] | None:
    """``(header, pixel value offset)`` of a single-frame little-endian file, or None to use pydicom instead.

    Parameters
    ----------
    handle : binary file
        The open file (read from its start).
    size : int
        The file's size in bytes.

    Returns
    -------
    tuple or None
        ``(FastHeader, offset of the first pixel value)`` (offset None for encapsulated compressed pixel
        data), or None for anything unexpected.
    """
    global _last_layout
    layout = _last_layout
    try:
        if layout is not None and layout.size == size:
            parsed = _parse_like(handle, layout)
            if parsed is not None:
                return parsed
        walk = _Walk()
        parsed = _parse(handle, size, walk)
        if parsed is not None and walk.complete and walk.end:
            handle.seek(0)
            _last_layout = walk.layout(size, parsed, handle.read(walk.end))
        return parsed
    except (_Stop, struct.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def _parse(handle, size: int, walk: _Walk):
    handle.seek(0)
    buffer, base = handle.read(min(size, _CHUNK)), 0  # Siemens headers (CSA) often pass 16 KiB
    if len(buffer) < 144 or buffer[128:132] != b"DICM":
        return None
    position, syntax = 132, None
    walk.spans.append((128, 4))  # b"DICM"
    while position + 8 <= len(buffer):  # file meta: always explicit VR little endian
        tag, vr, length, start = _element_header(buffer, position, True)
        if tag >> 16 != 0x0002:
            break
        if length == _UNDEFINED:
            return None
        walk.spans.append((position, start - position))
        if tag == 0x00020010:
            syntax = buffer[start : start + length].decode("ascii").strip(" \x00")
            walk.spans.append((start, length))  # the syntax decides how the rest is read
        position = start + length
    if not syntax or (syntax not in (_EXPLICIT_LE, _IMPLICIT_LE) and not syntax.startswith(_COMPRESSED)):
        return None
    explicit = syntax != _IMPLICIT_LE  # compressed syntaxes encode the dataset as explicit VR little endian
    values: dict = {}
    encoding = "ascii"
    while True:
        if position + 12 > len(buffer):
            if base + position + 12 > size:  # no room for another element header before the end
                return None
            # read on from this element (positions are relative to `base`, the buffer's file offset): a
            # large element that is not wanted (the 70 KB Siemens series CSA header) is never read
            base += position
            handle.seek(base)
            buffer, position = handle.read(min(size - base, _CHUNK)), 0
            continue
        if explicit:  # _element_header, inlined: this loop runs ~150 times a file
            group, element, vr, length = _EXPLICIT_HEAD(buffer, position)
            tag = (group << 16) | element
            if group == 0xFFFE:
                vr, length, start = b"", _U32(buffer, position + 4)[0], position + 8
            elif vr in _LONG_VRS:
                length, start = _U32(buffer, position + 8)[0], position + 12
            elif vr in _SHORT_VRS or (vr.isalpha() and vr.isupper()):
                start = position + 8
            else:
                raise _Stop()
        else:
            tag, vr, length, start = _element_header(buffer, position, explicit)
        if tag == _PIXEL_DATA:
            if (length == _UNDEFINED) != (syntax not in (_EXPLICIT_LE, _IMPLICIT_LE)):
                return None  # encapsulated pixel data exactly when the syntax is compressed
            walk.spans.append((base + position, start - position))
            walk.end, walk.syntax = base + start, syntax
            walk.offset = None if length == _UNDEFINED else base + start
            return _finish(values, syntax, walk.offset)
        if tag in _REFUSE or tag > _PIXEL_DATA:
            return None
        if length == _UNDEFINED:
            walk.complete = False  # the elements inside are not recorded: no layout from this file
            if base or len(buffer) < size:  # make sure the whole sequence is in the buffer before walking it
                handle.seek(0)
                buffer, start, base = handle.read(size), base + start, 0
            position = _skip_undefined(buffer, start, explicit and vr != b"UN", _SEQUENCE_END)
            continue
        walk.spans.append((base + position, start - position))
        wanted = _WANTED.get(tag)
        if wanted is not None:
            if start + length > len(buffer):  # read the element whole, from its header on
                base += position
                handle.seek(base)
                start -= position
                buffer, position = handle.read(min(size - base, max(_CHUNK, start + length + 16))), 0
                if start + length > len(buffer):
                    return None
            raw = buffer[start : start + length]
            keyword, kind = wanted
            encoding = _decode(values, keyword, kind, raw, encoding)
            if encoding is None:
                return None
            walk.wanted.append((keyword, kind, base + start, length, raw))
        position = start + length


def _decode(values: dict, keyword: str, kind: str, raw: bytes, encoding: str) -> str | None:
    """Decode one wanted value into ``values``; the text encoding for what follows, None to give up."""
    length = len(raw)
    if kind == "us":
        if length != 2:
            return None
        values[keyword] = struct.unpack("<H", raw)[0]
    elif kind == "fd":
        if length % 8 or not length:
            return None
        numbers = [float(v) for v in struct.unpack(f"<{length // 8}d", raw)]
        values[keyword] = numbers if len(numbers) > 1 else numbers[0]
    elif kind == "fl":
        if length != 4:
            return None
        values[keyword] = float(struct.unpack("<f", raw)[0])
    elif kind == "bytes":
        values[keyword] = bytes(raw)
    elif kind == "multi":
        parts = [part.strip(" \x00") for part in raw.decode(encoding).split("\\")]
        values[keyword] = parts if len(parts) > 1 else parts[0]
    else:
        values[keyword] = _text(raw, encoding)
    if keyword == "SpecificCharacterSet":
        return _ENCODINGS.get(values[keyword])
    return encoding


def _finish(values: dict, syntax: str, offset: int | None):
    """``(FastHeader, pixel value offset)`` from the values read, or None (a multi-frame file)."""
    if values.get("NumberOfFrames", "1") not in ("", "1"):
        return None
    values["PixelData"] = True
    creators = {key: values.pop(key, None) for key in _CREATORS}
    for creator, name, keywords in _PRIVATE:  # a private value counts only under its creator
        if creators[creator] != name:
            for keyword in keywords:
                values.pop(keyword, None)
    return FastHeader(values, syntax), offset


class _Walk:
    """What :func:`_parse` saw of one file: its element headers, wanted values and Pixel Data offset."""

    def __init__(self):
        self.spans: list[tuple[int, int]] = []  # (file offset, length) of bytes that decide the walk
        self.wanted: list[tuple] = []  # (keyword, kind, file offset, length, raw bytes) in file order
        self.complete = True
        self.end = 0
        self.syntax = ""
        self.offset: int | None = None

    def layout(self, size: int, parsed, head: bytes) -> _Layout | None:
        """The layout of the file just walked (``head``: its first :attr:`end` bytes), None if unusable."""
        if len(head) != self.end:
            return None
        index = np.concatenate([np.arange(at, at + n) for at, n in self.spans])
        expected = np.frombuffer(head, np.uint8)[index].copy()
        return _Layout(
            size, self.end, self.syntax, self.offset, index, expected, tuple(self.wanted), parsed[0]
        )


@dataclass(frozen=True)
class _Layout:
    """One file's header layout (see the module docstring); ``expected`` is filled from the file's bytes."""

    size: int
    end: int  # bytes before the first pixel value
    syntax: str
    offset: int | None
    index: np.ndarray  # file offsets of every byte that decides the walk
    expected: np.ndarray  # those bytes in the walked file
    wanted: tuple  # (keyword, kind, file offset, length, raw bytes) of the wanted values, in file order
    decoded: dict  # that file's final values, by keyword (reused where a value's bytes are the same)


_last_layout: _Layout | None = None


def _parse_like(handle, layout: _Layout):
    """``(header, offset)`` read at the offsets of ``layout``; None when this file's walk would differ."""
    handle.seek(0)
    buffer = handle.read(layout.end)
    if len(buffer) != layout.end:
        return None
    if not np.array_equal(np.frombuffer(buffer, np.uint8)[layout.index], layout.expected):
        return None
    values: dict = {}
    encoding, reuse = "ascii", True
    for keyword, kind, at, length, raw in layout.wanted:
        value = buffer[at : at + length]
        if keyword == "SpecificCharacterSet":
            reuse = value == raw  # the same bytes decode alike only under the same character set
        elif reuse and value == raw and keyword in layout.decoded:
            known = layout.decoded[keyword]
            values[keyword] = list(known) if isinstance(known, list) else known
            continue
        encoding = _decode(values, keyword, kind, value, encoding)
        if encoding is None:
            return None
    return _finish(values, layout.syntax, layout.offset)
