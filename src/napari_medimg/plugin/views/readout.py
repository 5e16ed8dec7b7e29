"""Cursor readout: the world position as a radiologist reads it, the voxel index and the value of every layer.

All positions go through :func:`napari_medimg.geometry.world_to_lps` with the layer's display frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...geometry import world_to_lps
from ..layers import GEOMETRY_KEY, layer_frame

if TYPE_CHECKING:
    import napari

__all__ = ["format_lps", "axis_letter", "layer_value", "readout", "readout_text", "segment_names"]

_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))


def format_lps(lps) -> str:
    """``"L 45.4 P 40.4 S 30.0 mm"`` for LPS ``(45.4, 40.4, 30.0)`` (R, A, I for negative values).

    Parameters
    ----------
    lps : sequence of 3 float
        LPS position in mm.

    Returns
    -------
    str
    """
    parts = []
    for value, (plus, minus) in zip(np.asarray(lps, float), _LETTERS, strict=True):
        letter = plus if value >= 0 else minus
        parts.append(f"{letter} {abs(value):.1f}")
    return " ".join(parts) + " mm"


def axis_letter(vector) -> str:
    """The patient direction letter (L/R, P/A, S/I) an LPS vector points to most.

    Parameters
    ----------
    vector : sequence of 3 float
        A direction in LPS.

    Returns
    -------
    str
    """
    vector = np.asarray(vector, float)
    axis = int(np.argmax(np.abs(vector)))
    return _LETTERS[axis][0] if vector[axis] > 0 else _LETTERS[axis][1]


def segment_names(layer) -> dict[int, str]:
    """Segment names of a Labels layer (``metadata["napari_medimg"]["segments"]``), value → name.

    Parameters
    ----------
    layer : napari.layers.Labels

    Returns
    -------
    dict
    """
    stored = (layer.metadata.get(GEOMETRY_KEY) or {}).get("segments") or {}
    return {int(k): str(v) for k, v in stored.items()}


def layer_value(layer, world) -> tuple[tuple[int, ...] | None, object]:
    """The voxel index of ``layer`` under a world point and its value (None outside the data).

    Parameters
    ----------
    layer : napari.layers.Layer
        An Image or Labels layer.
    world : sequence of float
        World position (all viewer dimensions).

    Returns
    -------
    index : tuple of int or None
    value : scalar or None
    """
    data = layer.data
    ndim = layer.ndim
    point = np.asarray(world, float)[-ndim:]
    index = np.rint(np.asarray(layer.world_to_data(point), float)).astype(int)
    shape = np.asarray(data.shape[:ndim])
    if np.any(index < 0) or np.any(index >= shape):
        return None, None
    value = data[tuple(index)]
    value = np.asarray(value)
    return tuple(int(i) for i in index), value.item() if value.ndim == 0 else value.tolist()


def readout(viewer: napari.Viewer, world=None) -> dict:
    """What the cursor (or ``world``) points at: LPS mm, and per visible Image/Labels layer index and value.

    Parameters
    ----------
    viewer : napari.Viewer
    world : sequence of float, optional
        World position; default the cursor position.

    Returns
    -------
    dict
        ``lps`` (list of 3 floats or None), ``position`` (``"L 45.4 P 40.4 S 30.0 mm"``) and ``layers``: a list
        of dicts with ``name``, ``index``, ``value``, ``units`` and, for Labels, ``label`` (the segment name).
    """
    world = np.asarray(viewer.cursor.position if world is None else world, float)
    frame = None
    layers = []
    for layer in viewer.layers:
        if layer._type_string not in ("image", "labels") or not layer.visible:
            continue
        if frame is None:
            frame = layer_frame(layer)
        index, value = layer_value(layer, world)
        entry = {"name": layer.name, "index": index, "value": value}
        stored = layer.metadata.get(GEOMETRY_KEY) or {}
        entry["units"] = str(stored.get("units", "")) if layer._type_string == "image" else ""
        if layer._type_string == "labels" and value is not None:
            names = segment_names(layer)
            entry["label"] = names.get(int(value), "background" if value == 0 else f"label {int(value)}")
        layers.append(entry)
    lps = world_to_lps(world[-3:], frame) if world.size >= 3 else None
    return {
        "lps": None if lps is None else [float(v) for v in lps],
        "position": "" if lps is None else format_lps(lps),
        "layers": layers,
    }


def readout_text(info: dict) -> str:
    """One-line text of a :func:`readout` result, e.g. ``"L 45.4 P 40.4 S 30.0 mm · CT [12, 200, 301] 40 HU"``.

    Parameters
    ----------
    info : dict
        A :func:`readout` result.

    Returns
    -------
    str
    """
    parts = [info["position"]] if info["position"] else []
    for entry in info["layers"]:
        if entry["index"] is None:
            continue
        value = entry["value"]
        if "label" in entry:
            text = f"{entry['label']} ({value})"
        elif isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
        units = f" {entry['units']}" if entry.get("units") else ""
        parts.append(f"{entry['name']} {list(entry['index'])} {text}{units}")
    return " · ".join(parts)
