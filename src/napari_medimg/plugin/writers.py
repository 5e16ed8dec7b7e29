"""napari writer contributions: Image/Labels → NIfTI (same world geometry), Labels → DICOM-SEG.

napari's save dialog has already asked before replacing a file, so these writers overwrite; every write is
atomic (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..geometry import Volume
from ..io.nifti import write_nifti
from ..io.seg import find_source_series, write_dicom_seg
from .layers import GEOMETRY_KEY, layer_to_volume

__all__ = ["write_nifti_layer", "write_dicom_seg_layer", "volume_from_layer_meta", "LayerNotWritten"]


class LayerNotWritten(RuntimeError):
    """Why a layer was not written, for the user.  Not a ValueError on purpose: napari turns a writer's
    ValueError into a bare "No data written!"; this reaches the user as our own message."""


def _refusing(writer):
    """Wrap a writer so that our ValueErrors (bad layer for this format) reach the user as one message."""

    def write(path: str, data, meta: dict) -> list[str]:
        try:
            return writer(path, data, meta)
        except ValueError as error:
            raise LayerNotWritten(f"{Path(path).name} was not written: {error}") from None

    write.__name__, write.__doc__ = writer.__name__, writer.__doc__
    return write


def volume_from_layer_meta(data, meta: dict) -> Volume:
    """The Volume of a layer given as napari's writer arguments ``(data, meta)``."""
    ndim = np.ndim(data)
    affine = meta.get("affine")
    layer = SimpleNamespace(
        data=np.asarray(data),
        metadata=meta.get("metadata") or {},
        name=meta.get("name", "layer"),
        scale=meta.get("scale", np.ones(ndim)),
        translate=meta.get("translate", np.zeros(ndim)),
        affine=SimpleNamespace(affine_matrix=np.eye(ndim + 1) if affine is None else np.asarray(affine)),
    )
    return layer_to_volume(layer)


@_refusing
def write_nifti_layer(path: str, data, meta: dict) -> list[str]:
    """Write an Image or Labels layer to ``.nii``/``.nii.gz`` with the layer's world geometry."""
    volume = volume_from_layer_meta(data, meta)
    if volume.array.dtype == np.int64:  # napari labels default; NIfTI readers handle int32 more widely
        volume = volume.with_array(volume.array.astype(np.int32))
    segments = _segment_names(meta)
    write_nifti(volume, path, overwrite=True, sidecar={"segments": segments} if segments else None)
    return [path]


def _segment_names(meta: dict) -> dict[str, str]:
    """Segment names of a Labels layer (the Segments panel keeps them in the layer metadata)."""
    stored = (meta.get("metadata") or {}).get(GEOMETRY_KEY, {})
    return {str(k): str(v) for k, v in (stored.get("segments") or {}).items()}


@_refusing
def write_dicom_seg_layer(path: str, data, meta: dict) -> list[str]:
    """Write a Labels layer as DICOM-SEG referencing the DICOM series it was drawn on."""
    volume = volume_from_layer_meta(data, meta)
    stored = (meta.get("metadata") or {}).get(GEOMETRY_KEY, {})
    source, uid = stored.get("source_path"), stored.get("series_uid")
    if not source or not uid:
        raise ValueError(
            "this labels layer does not say which DICOM series it was drawn on; DICOM-SEG needs "
            "labels made from a layer opened from DICOM (use NIfTI for other labels)"
        )
    names = {int(k): v for k, v in _segment_names(meta).items()}
    write_dicom_seg(volume, path, find_source_series(source, uid), names=names, overwrite=True)
    return [path]
