"""Header pass over one file: classic images, enhanced multi-frame files and Siemens mosaics to frame records.

Hostile input is refused before anything large is read or allocated: non-DICOM content after 132 bytes,
deflated files that inflate beyond :func:`inflate_limit`, frames larger than ``MAX_FRAME_PIXELS``, frame
counts the file cannot hold, positions beyond ``MAX_POSITION_MM``.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...progress import Cancelled
from .._fastheader import parse_header
from ..errors import CorruptFileError, MedImgReadError, NotAnImageError, UnsupportedFileError
from .diffusion import unit_direction, vendor_diffusion
from .files import BoundedReader, _read_head, looks_like_dicom
from .mosaic import is_mosaic, mosaic_frames, siemens_acquisition
from .records import (
    MAX_FRAME_PIXELS,
    FrameRecord,
    PixelFormat,
    SeriesHeader,
    check_position,
    first,
    is_multi_value,
    joined,
    quiet,
    seconds_of_day,
    to_float,
    to_floats,
    to_int,
    window_of,
)

if TYPE_CHECKING:
    import pydicom

__all__ = ["frames_of_file", "read_header", "inflate", "inflate_limit", "pixel_value_offset"]

_UNCOMPRESSED_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"  # retired, still written by old scanners: read through pydicom
#: the value representations of an explicit-VR Pixel Data element
_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}
_NON_IMAGE_SOP = {
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.66.4": "a Segmentation",
    "1.2.840.10008.1.3.10": "a DICOMDIR (media directory)",
}
#: attributes kept for the older "split by repeated positions" diagnostics and the `info` listing
SPLIT_ATTRIBUTES = (
    "EchoNumbers",
    "TemporalPositionIdentifier",
    "AcquisitionNumber",
    "ImageType",
    "TriggerTime",
)
#: enhanced-file dimensions that index volumes (time, diffusion), not stacks
VOLUME_DIMENSIONS = {
    0x00209128: "TemporalPositionIndex",
    0x00209153: "TriggerDelayTime",
    0x00209156: "FrameAcquisitionNumber",
    0x00209241: "NominalPercentageOfCardiacPhase",
    0x00189087: "DiffusionBValue",
    0x00189089: "DiffusionGradientOrientation",
}
_POSITION_DIMENSIONS = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient
_STACK_ID = 0x00209056
_DIFFUSION_DIMENSIONS = {0x00189087, 0x00189089}  # DiffusionBValue, DiffusionGradientOrientation
#: a deflated file may inflate to at most this many times its size (and never beyond the absolute cap)
MAX_INFLATE_RATIO = 100
MAX_INFLATED_BYTES = 2**30


def inflate_limit(compressed_bytes: int) -> int:
    """Largest inflated size accepted for a deflated file of ``compressed_bytes``.

    Parameters
    ----------
    compressed_bytes : int
        Size of the deflated part of the file.

    Returns
    -------
    int
        ``min(1 GiB, max(16 MiB, 100 x compressed_bytes))``.
    """
    return int(min(MAX_INFLATED_BYTES, max(16 * 2**20, MAX_INFLATE_RATIO * compressed_bytes)))


def inflate(path: str | os.PathLike) -> pydicom.Dataset:
    """A deflated-transfer-syntax file read with capped inflation (a deflate bomb is refused, not inflated).

    Parameters
    ----------
    path : str or os.PathLike
        A file with Transfer Syntax 1.2.840.10008.1.2.1.99.

    Returns
    -------
    pydicom.Dataset
        The whole dataset (pixel data included), with ``file_meta`` saying Explicit VR Little Endian.

    Raises
    ------
    CorruptFileError
        When the data inflates beyond :func:`inflate_limit` (a decompression bomb) or is not valid deflate.
    """
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    name = Path(os.fspath(path)).name
    with open(path, "rb") as handle:
        read_preamble(handle, False)
        meta = _read_file_meta_info(handle)
        start = handle.tell()
        size = os.fstat(handle.fileno()).st_size - start
        limit = inflate_limit(size)
        inflater, out = zlib.decompressobj(-zlib.MAX_WBITS), bytearray()
        try:
            while True:
                chunk = handle.read(2**20)
                data = inflater.unconsumed_tail + chunk if inflater.unconsumed_tail else chunk
                if not data:
                    break
                out += inflater.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise CorruptFileError(
                        f"{name} is a deflate bomb: its {size} compressed bytes inflate to more than "
                        f"{limit} bytes ({MAX_INFLATE_RATIO} times their size); refused without inflating it"
                    )
                if inflater.eof:
                    break
        except zlib.error as error:
            raise CorruptFileError(f"{name}: the deflated data is corrupt ({error})") from error
    dataset = read_dataset(io.BytesIO(bytes(out)), False, True)
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.file_meta = meta
    return dataset


def pixel_value_offset(handle, dataset) -> int | None:
    """Byte offset of the Pixel Data value, from the file position where the header pass stopped.

    Parameters
    ----------
    handle : binary file
        Positioned just after the header (``stop_before_pixels``).
    dataset : pydicom.Dataset
        The header read so far (its transfer syntax says whether the pixel data are native or encapsulated).

    Returns
    -------
    int or None
        The offset of the first pixel value (native pixel data) or of the first item (encapsulated, compressed
        pixel data); None when no Pixel Data element follows, or native pixel data have no defined length.
    """
    start = handle.tell()
    head = handle.read(12)
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    order = "big" if syntax == _BIG_ENDIAN else "little"
    if len(head) < 8 or head[:4] != (0x7FE0).to_bytes(2, order) + (0x0010).to_bytes(2, order):
        return None
    # the element's own bytes say how it is encoded, not the transfer syntax: some writers store an implicit-VR
    # dataset under an explicit-VR syntax (pydicom reads it so, with a warning).  An implicit length whose
    # first bytes spell a pixel VR would be odd, which no valid length is.
    if head[4:6] in _PIXEL_VRS and head[6:8] == b"\0\0":  # explicit VR: tag, VR, 2 reserved bytes, length
        if len(head) < 12:
            return None
        length = int.from_bytes(head[8:12], order)
        offset = start + 12
    else:
        length = int.from_bytes(head[4:8], order)
        offset = start + 8
    native = syntax in _UNCOMPRESSED_LE or syntax == _BIG_ENDIAN
    return None if length == 0xFFFFFFFF and native else offset


def read_header(path: Path, fast: bool = True):
    """``(dataset, pixel_offset, file_size)`` of one file, header only.

    Parameters
    ----------
    path : Path
        The file.
    fast : bool
        Try the byte-level parser of :mod:`napari_medimg.io._fastheader` first (plain single-frame files);
        False always uses ``pydicom.dcmread(stop_before_pixels=True)``.

    Returns
    -------
    tuple
        ``(dataset or FastHeader, pixel value offset or None, file size)``.

    Raises
    ------
    CorruptFileError
        When the file is empty, not DICOM, damaged, or a deflate bomb.
    """
    try:
        size = os.stat(path).st_size
        head = _read_head(path)
    except OSError as error:
        raise CorruptFileError(f"{path.name} cannot be opened: {error.strerror or error}") from error
    if size == 0:
        raise CorruptFileError(f"{path.name} is empty (0 bytes)")
    if not looks_like_dicom(head):
        raise CorruptFileError(
            f"{path.name} is not a DICOM file (no DICM marker and no DICOM element at its start)"
        )
    try:
        with open(path, "rb") as handle:
            if fast:
                parsed = parse_header(handle, size)
                if parsed is not None:
                    return parsed[0], parsed[1], size
                handle.seek(0)
            if _transfer_syntax(head, handle) == _DEFLATED:
                dataset = inflate(path)
                del dataset["PixelData"]
                dataset.file_meta.TransferSyntaxUID = _DEFLATED  # the pixels are read through `inflate` again
                return dataset, None, size
        with BoundedReader(path) as handle:  # a damaged length cannot make pydicom allocate it
            dataset, offset = _pydicom_header(handle, head, path.name)
    except (Cancelled, MedImgReadError):
        raise
    except Exception as error:  # pydicom raises many kinds of errors on damaged files
        raise CorruptFileError(
            f"{path.name} is damaged or truncated ({type(error).__name__}: {error})"
        ) from error
    return dataset, offset, size


def _pydicom_header(handle, head: bytes, name: str):
    """``(dataset, pixel value offset or None)`` read by pydicom, for the files the byte-level parser leaves
    (pydicom, ~0.3 s to import with its decoder plugins, is imported only then)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(handle, stop_before_pixels=True, force=head[128:132] != b"DICM")
    except InvalidDicomError as error:
        raise CorruptFileError(f"{name} is not a DICOM file") from error
    return dataset, pixel_value_offset(handle, dataset) if "PixelData" not in dataset else None


def _transfer_syntax(head: bytes, handle) -> str:
    """The TransferSyntaxUID of a Part 10 file, read from its file meta without parsing the dataset."""
    if head[128:132] != b"DICM":
        return ""
    handle.seek(132)
    meta = handle.read(4096)
    index = meta.find(b"\x02\x00\x10\x00")
    if index < 0 or index + 8 > len(meta):
        return ""
    length = int.from_bytes(meta[index + 6 : index + 8], "little")
    return meta[index + 8 : index + 8 + length].decode("ascii", "replace").strip(" \x00")


def _format(dataset, pixel_offset: int | None, file_size: int, frames: int, name: str) -> PixelFormat:
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    rows, cols = int(dataset.Rows), int(dataset.Columns)
    bits_allocated = int(dataset.BitsAllocated)
    bits_stored = int(dataset.get("BitsStored", dataset.BitsAllocated))
    samples = int(dataset.get("SamplesPerPixel", 1))
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise CorruptFileError(f"image size {rows} x {cols} x {frames} frames is empty")
    if rows * cols > MAX_FRAME_PIXELS:
        raise UnsupportedFileError(
            f"{name} declares {rows} x {cols} pixels per frame ({rows * cols * bits_allocated // 8 / 2**30:.1f} GiB "
            f"per frame), more than the {MAX_FRAME_PIXELS} pixels accepted; refused before decoding"
        )
    if samples != 1:
        raise UnsupportedFileError(
            f"colour images ({samples} samples per pixel) are not part of a volume series; a single colour "
            "file is read as an RGB image by napari and the pixel classifier (io.dicom.colour)"
        )
    if bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise UnsupportedFileError(
            f"{bits_allocated}-bit pixels with {bits_stored} bits stored are not supported"
        )
    deflated = syntax == _DEFLATED
    fmt = PixelFormat(
        rows,
        cols,
        frames,
        bits_allocated,
        bits_stored,
        int(dataset.get("PixelRepresentation", 0)) == 1,
        syntax,
        str(dataset.get("PhotometricInterpretation", "MONOCHROME2")),
        None,
        deflated,
    )
    if syntax in _UNCOMPRESSED_LE or syntax == _BIG_ENDIAN:
        expected = rows * cols * frames * bits_allocated // 8
        if pixel_offset is None or file_size - pixel_offset < expected:
            raise CorruptFileError(
                f"the file is truncated: its pixel data needs {expected} bytes "
                f"({rows} x {cols} x {frames} frames) but the file is {file_size} bytes"
            )
        if syntax != _BIG_ENDIAN and (not fmt.signed or bits_stored == bits_allocated):
            fmt.pixel_offset = pixel_offset  # else decoded by pydicom
    return fmt


def _series_header(dataset, enhanced: bool) -> SeriesHeader:
    return SeriesHeader(
        series_uid=str(dataset.get("SeriesInstanceUID", "") or "unknown-series"),
        modality=str(dataset.get("Modality", "") or "OT"),
        description=str(dataset.get("SeriesDescription", "") or "").strip(),
        series_number=to_int(dataset.get("SeriesNumber")),
        frame_of_reference=str(dataset.get("FrameOfReferenceUID", "") or ""),
        manufacturer=str(dataset.get("Manufacturer", "") or ""),
        sop_class=str(dataset.get("SOPClassUID", "") or ""),
        slice_thickness=to_float(dataset.get("SliceThickness")),
        spacing_between_slices=to_float(dataset.get("SpacingBetweenSlices")),
        enhanced=enhanced,
    )


def _acquisition(dataset) -> dict:
    """BIDS-style acquisition values present at the top level of a dataset (seconds, degrees)."""
    values = {}
    for keyword, bids, scale in (
        ("RepetitionTime", "RepetitionTime", 1e-3),
        ("FlipAngle", "FlipAngle", 1.0),
        ("EchoTime", "EchoTime", 1e-3),
        ("MagneticFieldStrength", "MagneticFieldStrength", 1.0),
    ):
        with_value = to_float(dataset.get(keyword))
        if with_value is not None:
            values[bids] = round(with_value * scale, 9)
    direction = str(dataset.get("InPlanePhaseEncodingDirection", "") or "")
    if direction in ("ROW", "COL"):
        values["InPlanePhaseEncodingDirectionDICOM"] = direction
    return values


def _classic_frame(path: Path, dataset, fmt: PixelFormat) -> FrameRecord:
    spacing = to_floats(dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing"), 2)
    image_type = tuple(str(v).upper() for v in (dataset.get("ImageType") or []))
    if isinstance(dataset.get("ImageType"), str):
        image_type = tuple(v.upper() for v in dataset.get("ImageType").split("\\"))
    frame = FrameRecord(
        path=os.fspath(path),
        frame=None,
        fmt=fmt,
        position=check_position(to_floats(dataset.get("ImagePositionPatient"), 3)),
        orientation=to_floats(dataset.get("ImageOrientationPatient"), 6),
        pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
        slope=to_float(dataset.get("RescaleSlope"), 1.0) or 1.0,
        intercept=to_float(dataset.get("RescaleIntercept"), 0.0),
        instance=to_int(dataset.get("InstanceNumber")) or 0,
        window=window_of(dataset),
        sop_uid=str(dataset.get("SOPInstanceUID", "")),
        image_type=image_type,
        echo_number=to_int(dataset.get("EchoNumbers")),
        echo_time=to_float(dataset.get("EchoTime")),
        acquisition_time=seconds_of_day(dataset.get("AcquisitionTime") or dataset.get("ContentTime")),
        temporal_position=to_int(dataset.get("TemporalPositionIdentifier")),
        trigger_time=to_float(dataset.get("TriggerTime")),
        b_value=to_float(dataset.get("DiffusionBValue")),
        b_vector=unit_direction(to_floats(dataset.get("DiffusionGradientOrientation"), 3)),
        acquisition=_acquisition(dataset),
    )
    frame.split_values = {name: joined(dataset.get(name, "")) for name in SPLIT_ATTRIBUTES}
    frame.philips_scale = _classic_philips_scale(dataset)
    if frame.b_value is None:
        frame.b_value = _ge_b_value(dataset)
    vendor_diffusion(dataset, frame)  # GE / Philips private b-vectors (and Philips b-value) when not standard
    return frame


def _ge_b_value(dataset) -> float | None:
    """GE's b-value (private (0043,1039) of "GEMS_PARM_01", first value, less a 10^9 flag), None when 0."""
    if isinstance(dataset, dict):  # the fast header parser's values
        value = dataset.get("GEBValue")
    else:
        try:
            value = dataset.get_private_item(0x0043, 0x39, "GEMS_PARM_01").value
        except (KeyError, ValueError, TypeError, AttributeError):
            return None
    try:
        number = float(first(value.split("\\") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        return None
    number = number % 1e9 if number >= 1e9 else number
    return number if np.isfinite(number) and number > 0 else None


def _classic_philips_scale(dataset) -> float | None:
    """Philips private ScaleSlope (2005,100E) of a classic image."""
    if isinstance(dataset, dict):  # the fast header parser's values
        value = dataset.get("PhilipsScaleSlope")
    else:
        try:
            value = first(dataset.get_private_item(0x2005, 0x0E, "Philips MR Imaging DD 001").value)
        except (KeyError, ValueError, TypeError, AttributeError):
            return None
    if value is None:  # the common case, without raising
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value != 0 else None


def _item(sequence_owner, keyword):
    """First item of sequence ``keyword`` in a functional-groups item, or None."""
    if sequence_owner is None or keyword not in sequence_owner:
        return None
    sequence = sequence_owner[keyword].value
    return sequence[0] if sequence else None


def _group(shared, frame, keyword):
    """A functional group macro item, per-frame first, then shared."""
    return _item(frame, keyword) or _item(shared, keyword)


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
    try:
        value = float(
            first(private.value[0].get_private_item(0x2005, 0x0E, "Philips MR Imaging DD 001").value)
        )
    except (KeyError, ValueError, TypeError):
        return None
    return value if np.isfinite(value) and value != 0 else None


def _multiframe_frames(path: Path, dataset, fmt: PixelFormat) -> list[FrameRecord]:
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    pointers = [
        int(d.DimensionIndexPointer)
        for d in dataset.get("DimensionIndexSequence", [])
        if "DimensionIndexPointer" in d
    ]
    acquisition = _acquisition(dataset)
    timing = _item(shared, "MRTimingAndRelatedParametersSequence")
    if timing is not None:
        acquisition.update({k: v for k, v in _acquisition(timing).items() if k != "EchoTime"})
    frames = []
    for index in range(fmt.frames):
        item = per_frame[index] if per_frame is not None and index < len(per_frame) else None
        position = _group(shared, item, "PlanePositionSequence")
        orientation = _group(shared, item, "PlaneOrientationSequence")
        measures = _group(shared, item, "PixelMeasuresSequence")
        transform = _group(shared, item, "PixelValueTransformationSequence")
        voi = _group(shared, item, "FrameVOILUTSequence")
        content = _item(item, "FrameContentSequence")
        echo = _group(shared, item, "MREchoSequence")
        diffusion = _group(shared, item, "MRDiffusionSequence")
        frame_type = _group(shared, item, "MRImageFrameTypeSequence") or _group(
            shared, item, "CTImageFrameTypeSequence"
        )
        real_world = _group(shared, item, "RealWorldValueMappingSequence")
        spacing = to_floats(measures.get("PixelSpacing"), 2) if measures is not None else None
        if spacing is None:
            spacing = to_floats(dataset.get("PixelSpacing"), 2)
        stack_key, volume_key, private_key, label, image_type = [], [], [], "", ()
        if content is not None:
            stack_key.append(("stack", str(content.get("StackID", ""))))
            values = content.get("DimensionIndexValues", [])
            values = list(values) if is_multi_value(values) and not isinstance(values, tuple) else [values]
            if len(values) == len(pointers):
                for pointer, value in zip(pointers, values, strict=True):
                    if pointer in VOLUME_DIMENSIONS:
                        volume_key.append(int(value))
                    elif (pointer >> 16) & 1:  # a private dimension (Philips): orders volumes, never splits
                        private_key.append(int(value))
                    elif pointer not in _POSITION_DIMENSIONS and pointer != _STACK_ID:
                        stack_key.append((hex(pointer), int(value)))
                volume_key += private_key
                if _DIFFUSION_DIMENSIONS & set(pointers):  # dcm2niix: the last dimension is the slowest
                    volume_key.reverse()
        if frame_type is not None and "FrameType" in frame_type:
            image_type = tuple(str(v).upper() for v in frame_type.FrameType)
            stack_key.append(("type", image_type))
            label = str(image_type[3] if len(image_type) > 3 else image_type[-1])
        slope = to_float((transform or dataset).get("RescaleSlope"), 1.0)
        intercept = to_float((transform or dataset).get("RescaleIntercept"), 0.0)
        b_vector = None
        if diffusion is not None and diffusion.get("DiffusionGradientDirectionSequence"):
            b_vector = unit_direction(
                to_floats(
                    diffusion.DiffusionGradientDirectionSequence[0].get("DiffusionGradientOrientation"), 3
                )
            )
        elif (
            diffusion is not None and str(diffusion.get("DiffusionDirectionality", "")).upper() == "ISOTROPIC"
        ):
            b_vector = np.zeros(3)  # a trace image: diffusion-weighted, no direction
        frames.append(
            FrameRecord(
                path=os.fspath(path),
                frame=index,
                fmt=fmt,
                position=check_position(
                    to_floats(position.get("ImagePositionPatient"), 3) if position is not None else None
                ),
                orientation=to_floats(orientation.get("ImageOrientationPatient"), 6)
                if orientation is not None
                else None,
                pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
                slope=slope or 1.0,
                intercept=intercept,
                instance=(to_int(dataset.get("InstanceNumber")) or 0) * 100000 + index + 1,
                window=window_of(voi) if voi is not None else window_of(dataset),
                stack_key=tuple(stack_key),
                stack_label=label,
                volume_key=tuple(volume_key),
                philips_scale=_philips_scale(item),
                units=_frame_units(real_world),
                sop_uid=str(dataset.get("SOPInstanceUID", "")),
                image_type=image_type,
                echo_time=to_float(echo.get("EffectiveEchoTime")) if echo is not None else None,
                acquisition_time=seconds_of_day(
                    (content.get("FrameAcquisitionDateTime") if content is not None else None)
                    or dataset.get("AcquisitionDateTime")
                    or dataset.get("AcquisitionTime")
                ),
                temporal_position=to_int(content.get("TemporalPositionIndex"))
                if content is not None
                else None,
                b_value=to_float(diffusion.get("DiffusionBValue")) if diffusion is not None else None,
                b_vector=b_vector,
                acquisition=dict(acquisition),
            )
        )
    return frames


def frames_of_file(path: Path, fast: bool = True) -> tuple[SeriesHeader, list[FrameRecord]]:
    """The series header and the frame records of one file (a mosaic gives one record per used tile).

    Parameters
    ----------
    path : Path
        One DICOM file.
    fast : bool
        Try the byte-level header parser first (see :func:`read_header`).

    Returns
    -------
    tuple
        ``(SeriesHeader, list of FrameRecord)``.

    Raises
    ------
    MedImgReadError
        A subclass saying why the file cannot be used (not DICOM, truncated, not an image, too large, ...).
    """
    try:
        with quiet():  # values are converted (and validated, with warnings) lazily on first access
            return _frames_of_header(path, fast)
    except (MedImgReadError, Cancelled):
        raise
    except Exception as error:  # pydicom raises many kinds of errors on damaged files
        raise CorruptFileError(f"{path.name} is damaged ({type(error).__name__}: {error})") from error


def _frames_of_header(path: Path, fast: bool) -> tuple[SeriesHeader, list[FrameRecord]]:
    dataset, offset, size = read_header(path, fast)
    sop_class = str(dataset.get("SOPClassUID", "") or dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    if not sop_class and "Rows" not in dataset:
        raise CorruptFileError(
            f"{path.name} is not a DICOM file (it holds no DICOM object or image attributes)"
        )
    if sop_class in _NON_IMAGE_SOP:
        raise NotAnImageError(f"{path.name} is {_NON_IMAGE_SOP[sop_class]}, not an image")
    deflated = str(dataset.file_meta.get("TransferSyntaxUID", "")) == _DEFLATED or (
        offset is None and "PixelData" not in dataset and _is_deflated_file(path)
    )
    if "PixelData" not in dataset and offset is None and not deflated:
        import pydicom

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
        fmt = _format(dataset, offset, size, frames_count, path.name)
        if deflated:
            fmt.deflated, fmt.pixel_offset = True, None
        enhanced = (
            "PerFrameFunctionalGroupsSequence" in dataset or "SharedFunctionalGroupsSequence" in dataset
        )
        header = _series_header(dataset, enhanced)
        if frames_count > 1 or enhanced:
            frames = _multiframe_frames(path, dataset, fmt)
        else:
            frames = [_classic_frame(path, dataset, fmt)]
            if is_mosaic(dataset):
                frames = mosaic_frames(frames[0], dataset, header)
            elif "SIEMENS" in header.manufacturer.upper():
                frames[0].acquisition.update(siemens_acquisition(dataset, frames[0]))
    except MedImgReadError:
        raise
    except Exception as error:
        raise CorruptFileError(
            f"{path.name} has invalid image attributes ({type(error).__name__}: {error})"
        ) from error
    return header, frames


def _is_deflated_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
        return _transfer_syntax(head, handle) == _DEFLATED
