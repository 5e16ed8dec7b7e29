"""Siemens mosaics and CSA headers: one classic file holding a whole volume as a grid of tiles.

Rule (checked on every shared mosaic against dcm2niix): the slice count is NumberOfImagesInMosaic (private
tag (0019,100A) of "SIEMENS MR HEADER", else the CSA image header); the grid is ``ceil(sqrt(n))`` tiles per
side; tiles past ``n`` are blank padding and are dropped.  ImagePositionPatient is the top-left corner of the
whole mosaic: the first tile lies at ``IPP + row_dir * dx * (Columns - tile_cols) / 2 + col_dir * dy *
(Rows - tile_rows) / 2`` and tile ``k`` at ``first + k * SpacingBetweenSlices * n`` with ``n`` the CSA
SliceNormalVector (which points head to foot, opposite row x column, in an H>>F mosaic).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np

from .records import FrameRecord, SeriesHeader, check_position, to_float

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


def _mosaic_count(dataset, csa: dict) -> int | None:
    if isinstance(dataset, dict) and dataset.get("NumberOfImagesInMosaic"):
        return int(dataset["NumberOfImagesInMosaic"])
    try:
        value = dataset.get_private_item(0x0019, 0x0A, "SIEMENS MR HEADER").value
        count = int(value[0] if isinstance(value, (list, tuple)) else value)
        if count > 0:
            return count
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        pass
    items = csa.get("NumberOfImagesInMosaic") or []
    return int(items[0]) if items and int(items[0]) > 0 else None


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
            frame.b_vector = vector
    positive = csa.get("PhaseEncodingDirectionPositive") or []
    direction = frame.acquisition.get("InPlanePhaseEncodingDirectionDICOM")
    if positive and direction in ("ROW", "COL"):
        axis = "i" if direction == "ROW" else "j"
        values["PhaseEncodingDirection"] = axis + ("" if int(positive[0]) == 1 else "-")
    return values


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
        raise ValueError("a MOSAIC image without NumberOfImagesInMosaic (private tag or CSA header)")
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
        row_dir, col_dir = frame.orientation[:3], frame.orientation[3:]
        dy, dx = frame.pixel_spacing or (1.0, 1.0)
        normal = np.asarray(csa.get("SliceNormalVector") or [], float)
        if normal.shape != (3,) or not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 0.5:
            normal = np.cross(row_dir, col_dir)
        normal = normal / np.linalg.norm(normal)
        step = header.spacing_between_slices or header.slice_thickness or to_float(None, 1.0)
        first = frame.position + row_dir * dx * (cols - tile_cols) / 2 + col_dir * dy * (rows - tile_rows) / 2
        positions = [check_position(first + k * step * normal) for k in range(count)]
    tiles = []
    for k in range(count):
        row0, col0 = (k // grid) * tile_rows, (k % grid) * tile_cols
        tile_acquisition = dict(acquisition)
        if len(times) == count:
            tile_acquisition["SliceTime"] = times[k]
        tiles.append(
            replace(
                frame,
                region=(row0, col0, tile_rows, tile_cols),
                position=positions[k],
                acquisition=tile_acquisition,
                split_values=dict(frame.split_values),
            )
        )
    return tiles
