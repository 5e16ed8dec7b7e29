"""napari reader contribution: a DICOM file, a folder of DICOM files (recursive), a DICOM-SEG or a NIfTI file.

``napari_get_reader`` never raises, never opens anything but regular files (a FIFO would block the GUI thread)
and returns None for what it cannot read.  A folder opens every stack of every series as its own layer named
by the series description and stack label; a 4D stack (fMRI, DWI, ...) is one layer with a volume slider,
read lazily (dask, one chunk per slice of each volume).  Every layer carries the reader's warnings as
``metadata["warnings"]`` (a list of strings).  A DICOM-SEG opens as a Labels layer with its segment names on
the grid of its source series; a NIfTI holding labels (integer values, few of them) opens as Labels.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import napari
import nibabel as nib
import numpy as np

from ..geometry import Volume
from ..io.dicom import is_dicom_file, is_regular_file, read_series, scan_dicom, scan_series_of_file
from ..io.dicom.colour import is_colour_file, read_colour_dicom
from ..io.errors import NoSeriesError
from ..io.nifti import read_nifti
from ..io.volumes import is_nifti_path
from .layers import layer_data_tuple
from .messages import announce_layers
from .names import distinct_name

__all__ = [
    "napari_get_reader",
    "read_dicom_layers",
    "read_nifti_layers",
    "read_seg_layers",
    "volume_layer",
    "unique_names",
    "is_labels_volume",
]

logger = logging.getLogger(__name__)
_FOLDER_PROBE = 200  # files looked at before deciding a folder holds no DICOM
_SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
_LABEL_NAMES = ("label", "mask", "seg", "roi")
_MAX_LABEL_VALUES = 64


def _is_nifti(path: Path) -> bool:
    """A NIfTI file, or either file of a ``.hdr``/``.img`` pair whose other file is there (an ``.img`` alone
    is left to other readers: many formats use that suffix)."""
    if not (is_nifti_path(path) and is_regular_file(path)):
        return False
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return True
    try:
        files = nib.AnalyzeImage.filespec_to_file_map(os.fspath(path))
    except (nib.filebasedimages.ImageFileError, ValueError):
        return False
    return all(is_regular_file(holder.filename) for holder in files.values())


def _folder_state(folder: Path) -> str:
    """``"dicom"`` when a DICOM file is found, ``"empty"`` for a folder without any file, else ``"other"``."""
    looked = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            if is_dicom_file(Path(root) / name):
                return "dicom"
            looked += 1
            if looked >= _FOLDER_PROBE:
                return "other"
    return "empty" if looked == 0 else "other"


def _empty_folder_reader(path) -> list[tuple]:
    raise NoSeriesError(f"no DICOM files found in {path}")


def _distinct(layers: list[tuple]) -> list[tuple]:
    """Layer tuples renamed where napari's layer list would elide their name to an existing layer's."""
    viewer = napari.current_viewer()
    names = [existing.name for existing in viewer.layers] if viewer is not None else []
    for _, kwargs, *_ in layers:
        kwargs["name"] = distinct_name(str(kwargs.get("name", "")), names)
        names.append(kwargs["name"])
    return layers


def napari_get_reader(path):
    """Return a reader function for ``path`` (str or list of str), or None; never raises.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open.

    Returns
    -------
    callable or None
        A reader returning layer data tuples, or None when napari-medimg does not read ``path``.
    """
    try:
        paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        if not paths:
            return None
        if len(paths) == 1 and paths[0].is_dir():
            state = _folder_state(paths[0])
            return {"dicom": read_dicom_layers, "empty": _empty_folder_reader}.get(state)
        if len(paths) == 1 and _is_nifti(paths[0]):
            return read_nifti_layers
        if all(is_regular_file(p) and is_dicom_file(p) for p in paths):
            return read_dicom_layers
    except Exception:  # noqa: BLE001 - napari must never see an error from get_reader
        logger.debug("napari-medimg cannot read %r", path, exc_info=True)
    return None


def _warnings(volume: Volume, extra: list[str] = ()) -> list[str]:
    return [str(w) for w in volume.metadata.get("warnings", [])] + [str(w) for w in extra]


def volume_layer(volume: Volume, name: str | None = None, warnings: list[str] = ()) -> tuple:
    """An Image layer tuple for a Volume (shown in SPL order; 4D with the volume axis first).

    Parameters
    ----------
    volume : Volume
        3D or 4D image.
    name : str, optional
        Layer name (default: the series description).
    warnings : list of str
        Messages added to the volume's own warnings in ``metadata["warnings"]``.

    Returns
    -------
    tuple
        ``(data, kwargs, "image")``; contrast limits from the stored window, else from one slice.
    """
    kwargs = {"colormap": "gray"}
    meta = volume.metadata
    if meta.get("window_center") is None and (meta.get("lazy") or volume.ndim == 4):
        middle = (
            volume.array[0, volume.shape[1] // 2] if volume.ndim == 4 else volume.array[volume.shape[0] // 2]
        )
        middle = np.asarray(middle)
        low, high = np.percentile(middle, [0.5, 99.5]) if middle.size else (0.0, 1.0)
        kwargs["contrast_limits"] = (float(low), float(high) if high > low else float(low) + 1.0)
    if volume.ndim == 4:
        volume = volume.canonical()  # the volume axis stays first; napari shows it as a slider
    data, layer_kwargs, layer_type = layer_data_tuple(volume, "image", name=name, **kwargs)
    layer_kwargs["metadata"]["warnings"] = _warnings(volume, warnings)
    return data, layer_kwargs, layer_type


def unique_names(series_list) -> list[str]:
    """Layer names: the series names, with the series number (then a count) added where two are the same.

    Parameters
    ----------
    series_list : list of DicomSeries
        The stacks to name.

    Returns
    -------
    list of str
        One distinct name per stack.
    """
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


def _is_segmentation(path: Path) -> bool:
    from ..io.dicom.header import read_header

    try:
        dataset = read_header(path)[0]
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a SEG
        return False
    sop_class = str(dataset.get("SOPClassUID", "") or dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    return sop_class == _SEGMENTATION


def read_dicom_layers(path) -> list[tuple]:
    """Every stack in the DICOM folder/files as an Image layer (a DICOM-SEG as a Labels layer).

    One single-frame file opens the whole series it belongs to, from the files in the same folder; a DICOMDIR
    opens the folder it lies in.

    Parameters
    ----------
    path : str or list of str
        A folder, a file, or several files.

    Returns
    -------
    list of tuple
        Layer data tuples.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if (
        len(paths) == 1 and paths[0].name.upper() == "DICOMDIR"
    ):  # a media directory: open the folder it indexes
        paths = [paths[0].parent]
    if len(paths) == 1 and is_regular_file(paths[0]) and _is_segmentation(paths[0]):
        return read_seg_layers(paths[0])
    if len(paths) == 1 and is_regular_file(paths[0]) and is_colour_file(paths[0]):  # a photograph: RGB
        return announce_layers([layer_data_tuple(read_colour_dicom(paths[0]), "image", rgb=True)])
    bar, callback = _progress_bar("Reading DICOM headers")
    try:
        if len(paths) == 1 and is_regular_file(paths[0]):
            scan = scan_series_of_file(paths[0], progress=callback)
        else:
            scan = scan_dicom(paths[0] if len(paths) == 1 else paths, progress=callback)
        skipped = [
            f"skipped {name}: {reason}" for name, reason in scan.skipped if "a Segmentation" not in reason
        ]
        for message in skipped:
            logger.warning("napari-medimg %s", message)
        bar.set_description("Reading DICOM pixels")
        layers = []
        for series, name in zip(scan.series, unique_names(scan.series), strict=True):
            volume = read_series(series, progress=callback)
            if scan.skipped:
                volume.metadata["skipped_files"] = len(scan.skipped)
            layers.append(volume_layer(volume, name=name, warnings=skipped))
        if len(paths) == 1 and paths[0].is_dir():
            for name, reason in scan.skipped:
                if "a Segmentation" in reason:
                    for seg in sorted(paths[0].rglob(name)):
                        layers.extend(read_seg_layers(seg, scan))
        return announce_layers(_distinct(layers))
    finally:
        bar.close()


def read_seg_layers(path, scan=None) -> list[tuple]:
    """A DICOM-SEG as one Labels layer on the grid of its source series, with its segment names.

    The source series is looked for in ``scan`` (when given), else in the SEG's folder and the folder above.

    Parameters
    ----------
    path : str or Path
        The DICOM-SEG file.
    scan : DicomScan, optional
        Already scanned series to find the source in.

    Returns
    -------
    list of tuple
        ``[(labels, kwargs, "labels")]`` with ``features`` naming every label value's segment.

    Raises
    ------
    NoSeriesError
        When the source series is not found.
    """
    import highdicom as hd

    from ..io.dicom.records import quiet
    from ..io.seg import read_dicom_seg

    path = Path(path)
    with quiet():
        seg = hd.seg.segread(os.fspath(path))
    referenced = {str(ref.SeriesInstanceUID) for ref in seg.ReferencedSeriesSequence}
    candidates = list(scan.series) if scan is not None else []
    for folder in (path.parent, path.parent.parent):
        if any(s.uid in referenced for s in candidates):
            break
        try:
            candidates = scan_dicom(folder).series
        except NoSeriesError:
            continue
    sources = [s for s in candidates if s.uid in referenced]
    if not sources:
        raise NoSeriesError(
            f"{path.name} is a DICOM-SEG of series {', '.join(sorted(referenced))}, which is not in its folder "
            "or the folder above; open it from the folder holding that series"
        )
    labels = read_dicom_seg(path, sources[0])
    names = {0: "background"}
    for index, item in enumerate(seg.SegmentSequence, start=1):
        description = str(item.get("SegmentDescription", ""))
        value = int(description.rsplit(" ", 1)[-1]) if description.startswith("label value ") else index
        names[value] = str(item.get("SegmentLabel", "") or f"segment {index}")
    data, kwargs, _ = layer_data_tuple(labels, "labels", name=labels.metadata["series_description"])
    kwargs["features"] = {"label": list(names), "segment": list(names.values())}
    kwargs["metadata"]["warnings"] = []
    kwargs["metadata"]["segment_names"] = {str(k): v for k, v in names.items()}
    return [(data, kwargs, "labels")]


def is_labels_volume(volume: Volume, path: str | os.PathLike) -> bool:
    """True for a NIfTI that holds labels: its JSON sidecar says so, or integer values, few of them.

    Parameters
    ----------
    volume : Volume
        The image read from ``path``.
    path : str or os.PathLike
        Its file (the sidecar ``x.json`` beside ``x.nii.gz`` and the name are looked at).

    Returns
    -------
    bool
        Whether to open it as a Labels layer.
    """
    from ..io.nifti import sidecar_path

    sidecar = sidecar_path(path)
    if is_regular_file(sidecar):
        try:
            kind = json.loads(sidecar.read_text()).get("layer_type")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind in ("labels", "image"):
            return kind == "labels"
    array = volume.array
    if array.dtype.kind not in "iub" or volume.ndim not in (2, 3):
        return False
    sample = np.asarray(array[:: max(1, array.shape[0] // 8)])
    if sample.size == 0 or sample.min() < 0:
        return False
    values = np.unique(sample)
    named = any(word in Path(os.fspath(path)).name.lower() for word in _LABEL_NAMES)
    return len(values) <= (_MAX_LABEL_VALUES * 4 if named else _MAX_LABEL_VALUES)


def read_nifti_layers(path) -> list[tuple]:
    """A NIfTI file as one Image layer in LPS world geometry (a Labels layer when it holds labels).

    Parameters
    ----------
    path : str or list of str
        The NIfTI file.

    Returns
    -------
    list of tuple
        One layer data tuple.
    """
    path = path[0] if isinstance(path, (list, tuple)) else path
    volume = read_nifti(path)
    if is_labels_volume(volume, path):
        data, kwargs, _ = layer_data_tuple(volume, "labels")
        kwargs["metadata"]["warnings"] = []
        return _distinct([(data, kwargs, "labels")])
    return announce_layers(_distinct([volume_layer(volume)]))
