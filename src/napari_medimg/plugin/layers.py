"""Conversions between core :class:`~napari_medimg.geometry.Volume` values and napari layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..geometry import Volume

if TYPE_CHECKING:
    import napari

__all__ = ["layer_data_tuple", "layer_to_volume", "set_or_add_layer", "current_slice_index"]

#: metadata key under which a layer keeps the Volume's geometry and PHI-free summary
GEOMETRY_KEY = "napari_medimg"


def _metadata(volume: Volume) -> dict:
    summary = {}
    if volume.ndim == 3 and not volume.is_axis_aligned:
        summary["display_note"] = (
            f"obliquity of {volume.obliquity_degrees:.2f}° not applied to the display (napari slices only "
            "along its world axes); measurements and exports use the exact geometry"
        )
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
    flipped (a view, no copy) so that napari slices them along its world axes.
    """
    volume = volume.canonical()
    layer_kwargs = {**volume.napari_geometry(), "metadata": _metadata(volume)}
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
    if stored and len(stored.get("spacing", ())) == data.ndim:
        extra = {
            k: v for k, v in stored.items() if k not in ("spacing", "origin", "direction", "display_note")
        }
        return Volume(data, stored["spacing"], stored["origin"], stored["direction"], extra)
    ndim = data.ndim
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


def current_slice_index(viewer: napari.Viewer, layer: napari.layers.Layer) -> int:
    """Index along the layer's first data axis of the slice the viewer shows now."""
    point = viewer.dims.point
    data_point = layer.world_to_data(point[-layer.ndim :]) if len(point) >= layer.ndim else point
    index = int(np.round(np.asarray(data_point)[0]))
    return int(np.clip(index, 0, layer.data.shape[0] - 1))
