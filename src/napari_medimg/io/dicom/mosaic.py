"""Siemens mosaics and CSA headers: one classic file holding a whole volume as a grid of tiles.

Rule (checked on every shared mosaic against dcm2niix): the slice count is NumberOfImagesInMosaic of the CSA
image header, else the private tag (0019,100A) of "SIEMENS MR HEADER", else the number of private
MosaicRefAcqTimes (0019,1029) (see ``_mosaic_count``); the grid is ``ceil(sqrt(n))`` tiles per
side; tiles past ``n`` are blank padding and are dropped.  ImagePositionPatient is the top-left corner of the
whole mosaic: the first tile lies at ``IPP + row_dir * dx * (Columns - tile_cols) / 2 + col_dir * dy *
(Rows - tile_rows) / 2`` and tile ``k`` at ``first + k * SpacingBetweenSlices * n`` with ``n`` the CSA
SliceNormalVector (which points head to foot, opposite row x column, in an H>>F mosaic).
"""

from __future__ import annotations

import functools
import math
import struct
import warnings

import numpy as np

from .diffusion import unit_direction
from .records import FrameRecord, SeriesHeader, check_position, is_multi_value, to_float

__all__ = ["is_mosaic", "mosaic_frames", "csa_image_header", "siemens_acquisition"]


def is_mosaic(dataset) -> bool:
    """True for a classic image whose ImageType says MOSAIC.

    Parameters
    ----------
    dataset : pydicom.Dataset
        Header of one file.

    Returns
    -------
    bool
        Whether the file stores a Siemens mosaic.
    """
    image_type = dataset.get("ImageType") or []
    values = image_type.split("\\") if isinstance(image_type, str) else list(image_type)
    return "MOSAIC" in (str(v).upper() for v in values)


#: the CSA elements the reader uses (the rest of the header is skipped unparsed)
CSA_NAMES = frozenset(
    {
        "NumberOfImagesInMosaic",
        "SliceNormalVector",
        "MosaicRefAcqTimes",
        "B_value",
        "DiffusionGradientDirection",
        "PhaseEncodingDirectionPositive",
    }
)
_CSA_FLOAT = {"FD", "FL", "DS"}
_CSA_ITEM = struct.Struct("<4i").unpack_from  # an item's header: its length is the second value
_CSA_INT = {"IS", "SL", "SS", "UL", "US"}


def read_csa2(raw: bytes, names=CSA_NAMES) -> dict | None:
    """The ``names`` elements of a CSA2 (``SV10``) header as ``{name: list of values}``; None if not CSA2.

    The layout nibabel's ``csareader.read`` walks (a test checks both agree on every shared mosaic), but each
    wanted element is found by its name instead of walking all ~100: the header pass reads one per mosaic file.

    Parameters
    ----------
    raw : bytes
        Value of the CSA image header element (0029,xx10).
    names : set of str
        Element names to decode.

    Returns
    -------
    dict or None
        Decoded values (floats or ints by the element's VR), or None for a CSA1 or malformed header.
    """
    if raw[:4] != b"SV10" or len(raw) < 16:
        return None
    try:
        count, _ = struct.unpack_from("<2I", raw, 8)
        if not 0 < count <= 1000:
            return None
        values = {}
        for name in names:
            # each element starts with its 64-byte NUL-padded name: find it instead of walking ~100 elements
            position = raw.find(name.encode("latin-1") + b"\0", 16)
            while position >= 16 and struct.unpack_from("<i", raw, position + 80)[0] not in (77, 205):
                position = raw.find(name.encode("latin-1") + b"\0", position + 1)  # not an element header
            if position < 16:
                continue
            _, vm, vr, _, items, _ = struct.unpack_from("<64si4s3i", raw, position)
            vr = vr.split(b"\0", 1)[0].decode("latin-1")
            if not 0 <= items <= 1000:
                return None
            position += 84
            decoded = []
            number = float if vr in _CSA_FLOAT else int if vr in _CSA_INT else None
            size = len(raw)
            for _ in range(min(items, vm or items)):
                length = _CSA_ITEM(raw, position)[1]
                position += 16
                if length < 0 or position + length > size:
                    return None
                if length == 0:
                    break  # nibabel's rule: the first empty item ends the values
                end = raw.find(b"\0", position, position + length)
                text = raw[position : position + length if end < 0 else end]
                # float() and int() read ASCII bytes (and ignore the spaces around them) directly
                decoded.append(number(text) if number else text.decode("latin-1").strip())
                position += length + (-length % 4)
            values[name] = decoded
        return values
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def _csa_bytes(dataset) -> bytes | None:
    """The raw CSA image header of a pydicom dataset (private block of "SIEMENS CSA HEADER")."""
    try:
        return dataset.get_private_item(0x0029, 0x10, "SIEMENS CSA HEADER").value
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def csa_image_header(dataset) -> dict:
    """The Siemens CSA image header (0029,xx10) as ``{name: list of values}``; empty when absent or broken.

    Parameters
    ----------
    dataset : pydicom.Dataset
        Header of one Siemens file.

    Returns
    -------
    dict
        CSA element name → its items (strings or numbers, as nibabel's CSA reader gives them).
    """
    raw = dataset.get("CSAImageHeader") if isinstance(dataset, dict) else _csa_bytes(dataset)
    if raw:
        values = read_csa2(bytes(raw))
        if values is not None:
            return values
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # nibabel.nicom warns on import that its DICOM readers are experimental
        from nibabel.nicom import csareader
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(dataset, dict):  # the fast header parser's values: the raw CSA bytes, if any
                raw = dataset.get("CSAImageHeader")
                header = csareader.read(raw) if raw else None
            else:
                header = csareader.get_csa_header(dataset, "image")
    except Exception:  # noqa: BLE001 - a damaged private header is ignored: the standard attributes still apply
        return {}
    if not header:
        return {}
    return {name: tag.get("items", []) for name, tag in header.get("tags", {}).items()}


def _private_times_count(dataset) -> int | None:
    """How many values the private MosaicRefAcqTimes (0019,xx29) of "SIEMENS MR HEADER" holds (None if absent)."""
    if isinstance(dataset, dict):  # the fast header parser's values (kept only under that creator)
        value = dataset.get("MosaicRefAcqTimes")
    else:
        try:
            value = dataset.get_private_item(0x0019, 0x29, "SIEMENS MR HEADER").value
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
    count = (
        len(value) if isinstance(value, (list, tuple)) or is_multi_value(value) else int(value is not None)
    )
    return count or None


def _mosaic_count(dataset, csa: dict) -> int | None:
    """NumberOfImagesInMosaic: the CSA image header's, else the private (0019,xx0A) one, else the number of
    private MosaicRefAcqTimes (0019,xx29).  Without a CSA count dcm2niix goes by those times: where they and
    (0019,xx0A) disagree the tile count is unknown and the file is refused."""
    items = csa.get("NumberOfImagesInMosaic") or []
    if items and int(items[0]) > 0:
        return int(items[0])
    private = None
    if isinstance(dataset, dict) and dataset.get("NumberOfImagesInMosaic"):
        private = int(dataset["NumberOfImagesInMosaic"])
    else:
        try:
            value = dataset.get_private_item(0x0019, 0x0A, "SIEMENS MR HEADER").value
            private = int(value[0] if isinstance(value, (list, tuple)) else value) or None
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            pass
    times = _private_times_count(dataset)
    if private and times and private != times:
        raise ValueError(
            f"a MOSAIC image without a CSA tile count whose NumberOfImagesInMosaic ({private}) and "
            f"MosaicRefAcqTimes ({times} values) disagree"
        )
    return private or times


def siemens_acquisition(dataset, frame: FrameRecord, csa: dict | None = None) -> dict:
    """Diffusion and phase-encoding values of a Siemens image from its CSA header (updates ``frame``).

    Parameters
    ----------
    dataset : pydicom.Dataset
        Header of one Siemens file.
    frame : FrameRecord
        Its record; b-value and b-vector (patient LPS) are set when the CSA header gives them.
    csa : dict, optional
        An already parsed CSA image header.

    Returns
    -------
    dict
        BIDS-style values (``PhaseEncodingDirection`` in the voxel axes written by ``medimg convert``).
    """
    csa = csa_image_header(dataset) if csa is None else csa
    values = {}
    b_value = csa.get("B_value") or []
    if b_value and frame.b_value is None:
        frame.b_value = float(b_value[0])
    gradient = csa.get("DiffusionGradientDirection") or []
    if len(gradient) == 3 and frame.b_vector is None:
        vector = np.asarray(gradient, float)
        if np.all(np.isfinite(vector)):
            frame.b_vector = unit_direction(vector)
    positive = csa.get("PhaseEncodingDirectionPositive") or []
    direction = frame.acquisition.get("InPlanePhaseEncodingDirectionDICOM")
    if positive and direction in ("ROW", "COL"):
        axis = "i" if direction == "ROW" else "j"
        values["PhaseEncodingDirection"] = axis + ("" if int(positive[0]) == 1 else "-")
    return values


@functools.lru_cache(maxsize=64)
def _tile_positions(position, orientation, spacing, csa_normal, step, sizes) -> tuple:
    """The LPS positions of a mosaic's tiles (the rule in this module's docstring), read-only: the volumes of
    an fMRI or DWI series share them, so they are computed once per geometry."""
    count, rows, cols, tile_rows, tile_cols = sizes
    row_dir, col_dir = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    dy, dx = spacing
    normal = np.asarray(csa_normal, float)
    if normal.shape != (3,) or not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 0.5:
        normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal)
    first = (
        np.asarray(position) + row_dir * dx * (cols - tile_cols) / 2 + col_dir * dy * (rows - tile_rows) / 2
    )
    positions = first + np.arange(count)[:, None] * (step * normal)  # evenly spaced: check the ends
    check_position(positions[0])
    check_position(positions[-1])
    positions.flags.writeable = False
    return tuple(positions)


def mosaic_frames(frame: FrameRecord, dataset, header: SeriesHeader) -> list[FrameRecord]:
    """One record per used tile of a mosaic file, placed by the rule in this module's docstring.

    Parameters
    ----------
    frame : FrameRecord
        The record of the whole stored image.
    dataset : pydicom.Dataset
        Its header (private tags and CSA header read here).
    header : SeriesHeader
        Its series header (SpacingBetweenSlices).

    Returns
    -------
    list of FrameRecord
        ``NumberOfImagesInMosaic`` records sharing the file, each with its tile ``region`` and position.

    Raises
    ------
    ValueError
        When the mosaic's tile count or grid does not fit its image size.
    """
    csa = csa_image_header(dataset)
    count = _mosaic_count(dataset, csa)
    if count is None:
        raise ValueError(
            "a MOSAIC image without NumberOfImagesInMosaic or MosaicRefAcqTimes (private tags or CSA header)"
        )
    grid = math.ceil(math.sqrt(count))
    rows, cols = frame.fmt.rows, frame.fmt.cols
    if rows % grid or cols % grid:
        raise ValueError(f"a {rows} x {cols} mosaic cannot hold a {grid} x {grid} grid of {count} tiles")
    tile_rows, tile_cols = rows // grid, cols // grid
    acquisition = {**frame.acquisition, **siemens_acquisition(dataset, frame, csa)}
    times = [float(t) / 1000.0 for t in (csa.get("MosaicRefAcqTimes") or [])]
    if frame.position is None or frame.orientation is None:
        positions = [None] * count
    else:
        step = header.spacing_between_slices or header.slice_thickness or to_float(None, 1.0)
        positions = _tile_positions(
            tuple(frame.position.tolist()),
            tuple(frame.orientation.tolist()),
            tuple(frame.pixel_spacing or (1.0, 1.0)),
            tuple(csa.get("SliceNormalVector") or ()),
            float(step),
            (count, rows, cols, tile_rows, tile_cols),
        )
    tiles = []
    base = frame.__dict__
    timed = len(times) == count
    new = object.__new__
    for k in range(count):
        tile = new(FrameRecord)  # a shallow copy (36 tiles a file): faster than copy/replace
        tile.__dict__ = {
            **base,
            "region": ((k // grid) * tile_rows, (k % grid) * tile_cols, tile_rows, tile_cols),
            "position": positions[k],
            "acquisition": acquisition,  # one dict shared by the tiles
            "slice_time": times[k] if timed else None,
        }
        tiles.append(tile)
    return tiles
