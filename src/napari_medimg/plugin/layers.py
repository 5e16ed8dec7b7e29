"""Conversions between core :class:`~napari_medimg.geometry.Volume` values and napari layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..geometry import CANONICAL_DIRECTION, DISPLAY_TOLERANCE_MM, Volume

if TYPE_CHECKING:
    import napari

__all__ = [
    "layer_data_tuple",
    "layer_to_volume",
    "set_or_add_layer",
    "current_slice_index",
    "shown_volume",
    "OBLIQUE_DISPLAY",
    "set_oblique_display",
    "layer_frame",
    "viewer_frame",
    "own_frame",
]

#: metadata key under which a layer keeps the Volume's geometry and PHI-free summary
GEOMETRY_KEY = "napari_medimg"


#: how a volume more oblique than ``DISPLAY_TOLERANCE_MM`` to the display frame is shown: ``"resample"`` onto
#: the frame's axes (patient axes by default; what 3D Slicer does when it reslices), or ``"frame"``: the
#: volume's own axes become the display frame (its voxels are shown as they are; other series are then
#: resampled onto that frame).  The Orthogonal views dock offers the choice.
OBLIQUE_DISPLAY = {"mode": "resample"}


def set_oblique_display(mode: str) -> None:
    """Choose how oblique volumes opened from now on are shown: ``"resample"`` or ``"frame"``."""
    if mode not in ("resample", "frame"):
        raise ValueError(f"oblique display must be 'resample' or 'frame', got {mode!r}")
    OBLIQUE_DISPLAY["mode"] = mode


def own_frame(volume: Volume) -> np.ndarray:
    """The display frame made of the volume's own axes (after ``canonical``), orthonormalised."""
    direction = volume.canonical().direction
    u, _, vt = np.linalg.svd(direction)
    return u @ vt


def layer_frame(layer) -> np.ndarray | None:
    """The display frame a layer was placed in (None: patient axes S, P, L)."""
    stored = getattr(layer, "metadata", {}).get(GEOMETRY_KEY) or {}
    frame = stored.get("display_frame")
    return None if frame is None else np.asarray(frame, float)


def viewer_frame(viewer) -> np.ndarray | None:
    """The display frame of the viewer's medical layers (the first layer that has one), or None."""
    if viewer is None:
        return None
    for layer in viewer.layers:
        frame = layer_frame(layer)
        if frame is not None:
            return frame
    return None


def _current_viewer_frame() -> np.ndarray | None:
    import napari

    return viewer_frame(napari.current_viewer())


def _spatial(volume: Volume) -> Volume:
    """A 3D stand-in (no voxel memory) with the geometry of one volume of a 3D or 4D (volume, z, y, x) Volume."""
    shape = tuple(volume.array.shape[-3:])
    return Volume(
        np.broadcast_to(np.zeros((), np.uint8), shape), volume.spacing, volume.origin, volume.direction
    )


def _resampled(volume: Volume, frame, nearest: bool) -> Volume:
    """``volume`` (3D, or 4D volume by volume) resampled onto the axes of ``frame``."""
    from ..processing.registration import resample_to_frame

    interpolation = "nearest" if nearest else "linear"
    if volume.array.ndim == 3:
        return resample_to_frame(volume, frame, interpolation=interpolation)
    parts = [
        resample_to_frame(
            Volume(
                np.asarray(volume.array[t]), volume.spacing, volume.origin, volume.direction, volume.metadata
            ),
            frame,
            interpolation=interpolation,
        )
        for t in range(volume.array.shape[0])
    ]
    first = parts[0]
    stacked = np.stack([p.array for p in parts])
    return Volume(stacked, first.spacing, first.origin, first.direction, first.metadata)


def _display(volume: Volume, layer_type: str, frame, mode: str) -> tuple[Volume, dict]:
    """The volume as it will be shown (canonical in its frame, resampled when too oblique) and a summary."""
    if volume.array.ndim not in (3, 4) or volume.metadata.get("rgb"):  # 2D, RGB (y, x, 3): nothing to do
        return volume, {}
    if frame is None:
        frame = volume.metadata.get("display_frame")
    if frame is None and mode == "frame":
        frame = _current_viewer_frame()
        if frame is None and _spatial(volume).display_residual()[1] > DISPLAY_TOLERANCE_MM:
            frame = own_frame(_spatial(volume))
    if frame is not None and np.allclose(frame, CANONICAL_DIRECTION, atol=1e-9):
        frame = None
    shown = volume.canonical(frame)
    angle, shift = _spatial(shown).display_residual(frame)
    summary = {
        "frame": "patient axes (S, P, L)" if frame is None else "own frame of an oblique series",
        "residual_degrees": round(angle, 3),
        "residual_mm": round(shift, 3),
        "mode": "as acquired",
    }
    if shift > DISPLAY_TOLERANCE_MM:
        index = (slice(0, 1),) * shown.array.ndim
        nearest = layer_type == "labels" or np.asarray(shown.array[index]).dtype == bool
        shown = _resampled(shown, frame, nearest)
        summary["mode"] = f"resampled onto the frame's axes ({'nearest' if nearest else 'linear'})"
        summary["source_obliquity_degrees"] = round(angle, 3)
        summary["residual_degrees"], summary["residual_mm"] = 0.0, 0.0
    if frame is not None:
        shown.metadata["display_frame"] = np.asarray(frame, float).tolist()
    else:
        shown.metadata.pop("display_frame", None)
    return shown, summary


def _metadata(volume: Volume, display: dict | None = None) -> dict:
    summary = {"display": display} if display else {}
    return {
        GEOMETRY_KEY: {
            **summary,
            "spacing": volume.spacing.tolist(),
            "origin": volume.origin.tolist(),
            "direction": volume.direction.tolist(),
            **{
                k: v for k, v in volume.metadata.items() if isinstance(v, (str, int, float, bool, list, dict))
            },
        }
    }


def layer_data_tuple(volume: Volume, layer_type: str = "image", name: str | None = None, **kwargs) -> tuple:
    """A napari LayerDataTuple for ``volume`` with scale/translate/affine, units mm and geometry metadata.

    3D volumes are shown in canonical (S, P, L) axis order: sagittal and coronal stacks are transposed and
    flipped (a view, no copy) so that napari slices them along its world axes.  A volume more oblique to
    the display frame than ``DISPLAY_TOLERANCE_MM`` is resampled onto the frame's axes, or (``"frame"`` mode
    of :data:`OBLIQUE_DISPLAY`) shown in its own frame; ``metadata["napari_medimg"]["display"]`` says which,
    and ``frame=`` (a 3x3 rotation) places it in a given display frame.
    """
    volume, display = _display(volume, layer_type, kwargs.pop("frame", None), OBLIQUE_DISPLAY["mode"])
    frame = volume.metadata.get("display_frame")
    layer_kwargs = {**volume.napari_geometry(frame), "metadata": _metadata(volume, display)}
    layer_kwargs["name"] = name or volume.metadata.get("series_description") or "volume"
    if layer_type == "image":
        centre = volume.metadata.get("window_center")
        width = volume.metadata.get("window_width")
        if centre is not None and width is not None:
            layer_kwargs["contrast_limits"] = (
                float(centre) - float(width) / 2,
                float(centre) + float(width) / 2,
            )
    layer_kwargs.update(kwargs)
    return (volume.array, layer_kwargs, layer_type)


def layer_to_volume(layer: napari.layers.Layer) -> Volume:
    """The Volume behind a layer: geometry from the metadata our reader wrote, else from scale/translate/affine."""
    stored = layer.metadata.get(GEOMETRY_KEY)
    data = layer.data
    if stored and len(stored.get("spacing", ())) == (3 if data.ndim == 4 else data.ndim):
        extra = {
            k: v
            for k, v in stored.items()
            if k not in ("spacing", "origin", "direction", "display_note", "display")
        }
        return Volume(data, stored["spacing"], stored["origin"], stored["direction"], extra)
    ndim = data.ndim
    if getattr(layer, "rgb", False) and ndim == 3:  # an RGB image: (y, x, 3) on a 2D layer
        scale, translate = np.asarray(layer.scale, float)[-2:], np.asarray(layer.translate, float)[-2:]
        metadata = {"name": layer.name, "rgb": True}
        return Volume(data, np.abs(scale), np.r_[translate, 0.0], np.eye(3)[:, ::-1], metadata)
    scale = np.asarray(layer.scale, float)[-ndim:]
    translate = np.asarray(layer.translate, float)[-ndim:]
    if ndim == 2:
        return Volume(data, np.abs(scale), np.r_[translate, 0.0], np.eye(3)[:, ::-1], {"name": layer.name})
    linear = np.asarray(layer.affine.affine_matrix, float)[-4:, -4:]
    reverse = np.eye(3)[::-1]
    direction = reverse @ linear[:3, :3]
    norms = np.linalg.norm(direction, axis=0)
    direction = direction / np.where(norms == 0, 1, norms)
    origin = reverse @ (linear[:3, :3] @ translate + linear[:3, 3])
    return Volume(
        data, np.abs(scale) * np.where(norms == 0, 1, norms), origin, direction, {"name": layer.name}
    )


def set_or_add_layer(viewer: napari.Viewer, data_tuple: tuple) -> napari.layers.Layer:
    """Replace the data of the layer of the same name and type, or add a new layer (main thread only)."""
    data, kwargs, layer_type = data_tuple
    name = kwargs.get("name")
    if name in viewer.layers and viewer.layers[name]._type_string == layer_type:
        layer = viewer.layers[name]
        layer.data = data
        for key in ("scale", "translate", "affine"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        layer.metadata.update(kwargs.get("metadata", {}))
        return layer
    from napari.layers import Layer

    return viewer.add_layer(Layer.create(data, kwargs, layer_type))


def _data_point(viewer: napari.Viewer, layer: napari.layers.Layer) -> np.ndarray:
    point = viewer.dims.point
    return np.asarray(layer.world_to_data(point[-layer.ndim :]) if len(point) >= layer.ndim else point)


def current_slice_index(viewer: napari.Viewer, layer: napari.layers.Layer) -> int:
    """Index of the slice the viewer shows now, along the layer's slice axis (its first spatial axis: the
    first data axis, or the second of a 4D ``(volume, z, y, x)`` layer)."""
    axis = 1 if layer.ndim == 4 else 0
    index = int(np.round(_data_point(viewer, layer)[axis]))
    return int(np.clip(index, 0, layer.data.shape[axis] - 1))


def shown_volume(viewer: napari.Viewer, layer: napari.layers.Layer) -> Volume:
    """The Volume a tool works on: the layer's, or for a 4D ``(volume, z, y, x)`` layer the volume its slider
    shows now (a 3D Volume with that volume's metadata, see :func:`napari_medimg.io.select_volume`)."""
    volume = layer_to_volume(layer)
    if np.ndim(layer.data) != 4 or getattr(layer, "rgb", False):  # (z, y, x, colour) is one volume
        return volume
    from ..io import select_volume

    index = int(np.clip(np.round(_data_point(viewer, layer)[0]), 0, layer.data.shape[0] - 1))
    return select_volume(volume, index)
