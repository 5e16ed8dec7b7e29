"""napari reader contribution: a DICOM file, a folder of DICOM files (recursive) or a NIfTI file.

``napari_get_reader`` never raises and returns None for what it cannot read.  A folder opens every series as
its own layer named by the series description; large series come as lazy dask arrays (one chunk per slice).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..geometry import Volume
from ..io.dicom import is_dicom_file, read_series, scan_dicom, scan_series_of_file
from ..io.nifti import read_nifti
from .layers import layer_data_tuple

__all__ = ["napari_get_reader", "read_dicom_layers", "read_nifti_layers", "volume_layer", "unique_names"]

logger = logging.getLogger(__name__)
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_FOLDER_PROBE = 200  # files looked at before deciding a folder holds no DICOM


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES) and path.is_file()


def _folder_has_dicom(folder: Path) -> bool:
    looked = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if is_dicom_file(Path(root) / name):
                return True
            looked += 1
            if looked >= _FOLDER_PROBE:
                return False
    return False


def napari_get_reader(path):
    """Return a reader function for ``path`` (str or list of str), or None; never raises."""
    try:
        paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        if not paths:
            return None
        if len(paths) == 1 and paths[0].is_dir():
            return read_dicom_layers if _folder_has_dicom(paths[0]) else None
        if len(paths) == 1 and _is_nifti(paths[0]):
            return read_nifti_layers
        if all(p.is_file() and is_dicom_file(p) for p in paths):
            return read_dicom_layers
    except Exception:  # napari must never see an error from get_reader
        logger.debug("napari-medimg cannot read %r", path, exc_info=True)
    return None


def volume_layer(volume: Volume, name: str | None = None) -> tuple:
    """An Image layer tuple for a Volume (shown in SPL order); contrast limits from the window or one slice."""
    kwargs = {"colormap": "gray"}
    meta = volume.metadata
    if meta.get("window_center") is None and meta.get("lazy"):
        middle = np.asarray(volume.array[volume.shape[0] // 2])
        low, high = np.percentile(middle, [0.5, 99.5]) if middle.size else (0.0, 1.0)
        kwargs["contrast_limits"] = (float(low), float(high) if high > low else float(low) + 1.0)
    return layer_data_tuple(volume, "image", name=name, **kwargs)


def unique_names(series_list) -> list[str]:
    """Layer names: the series names, with the series number (then a count) added where two are the same."""
    names: list[str] = []
    for series in series_list:
        name = series.name
        if name in names:
            name = f"{name} (series {series.header.series_number})"
        base, count = name, 2
        while name in names:
            name, count = f"{base} ({count})", count + 1
        names.append(name)
    return names


def _progress_bar(description: str):
    from napari.utils import progress

    bar = progress(total=0, desc=description)

    def callback(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, callback


def read_dicom_layers(path) -> list[tuple]:
    """Every series in the DICOM folder/files as an Image layer (one per series or stack).

    One single-frame file opens the whole series it belongs to, from the files in the same folder.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    bar, callback = _progress_bar("Reading DICOM headers")
    try:
        if len(paths) == 1 and paths[0].is_file():
            scan = scan_series_of_file(paths[0], progress=callback)
        else:
            scan = scan_dicom(paths[0] if len(paths) == 1 else paths, progress=callback)
        for name, reason in scan.skipped:
            logger.warning("napari-medimg skipped %s: %s", name, reason)
        bar.set_description("Reading DICOM pixels")
        layers = []
        for series, name in zip(scan.series, unique_names(scan.series), strict=False):
            volume = read_series(series, progress=callback)
            if scan.skipped:
                volume.metadata["skipped_files"] = len(scan.skipped)
            layers.append(volume_layer(volume, name=name))
        return layers
    finally:
        bar.close()


def read_nifti_layers(path) -> list[tuple]:
    """A NIfTI file as one Image layer in LPS world geometry."""
    path = path[0] if isinstance(path, (list, tuple)) else path
    return [volume_layer(read_nifti(path))]
