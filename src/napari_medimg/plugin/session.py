"""Sessions: save the viewer's medical layers to one folder and open them again.

A session folder holds ``session.json`` (the layer list, in order, with display settings and the display
frame), one NIfTI file per Image/Labels layer with its JSON sidecar (geometry summary, segment names), one CSV
per layer with a features table, Points layers as LPS mm, and ``steps.json`` (the recorded recipe steps).
The folder is written atomically (:func:`napari_medimg.io.atomic.atomic_directory`): a failed save leaves
nothing, and an existing folder is replaced only with ``overwrite`` and only when napari-medimg wrote it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, FileEdit, Label, PushButton

from ..geometry import lps_to_world, world_to_lps
from ..io.atomic import atomic_directory
from ..io.nifti import read_nifti, write_nifti
from ..pipeline.steps import session_log
from .layers import GEOMETRY_KEY, layer_data_tuple, layer_frame, layer_to_volume
from .widgets._common import ScrollableContainer, chosen_path

if TYPE_CHECKING:
    import napari

__all__ = ["save_session", "read_session", "open_session", "SessionWidget", "SESSION_FILE"]

SESSION_FILE = "session.json"
_DISPLAY = {
    "image": ("colormap", "contrast_limits", "opacity", "visible", "blending", "gamma"),
    "labels": ("opacity", "visible", "blending"),
    "points": ("opacity", "visible", "size", "face_color"),
}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "layer"


def _display(layer) -> dict:
    settings = {}
    for key in _DISPLAY.get(layer._type_string, ()):
        value = getattr(layer, key)
        if key == "colormap":
            value = value.name
        elif key == "face_color":
            value = np.asarray(value).tolist()[:1] or None
        elif isinstance(value, (tuple, list, np.ndarray)):
            value = np.asarray(value).tolist()
        elif hasattr(value, "value"):
            value = value.value
        settings[key] = value.item() if isinstance(value, np.generic) else value
    return settings


def save_session(viewer: napari.Viewer, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the viewer's Image, Labels and Points layers, their tables and the recipe steps to ``folder``.

    Parameters
    ----------
    viewer : napari.Viewer
    folder : path-like
        The session folder (created atomically).
    overwrite : bool
        Replace an existing session folder napari-medimg wrote.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Raises
    ------
    ValueError
        When the viewer has no layer a session can hold.
    """
    layers = [layer for layer in viewer.layers if layer._type_string in _DISPLAY]
    if not layers:
        raise ValueError("the viewer has no image, labels or points layer to save")
    folder = Path(folder)
    entries = []
    with atomic_directory(folder, overwrite, kind="session") as temporary:
        for number, layer in enumerate(layers):
            stem = f"{number:02d}_{_safe(layer.name)}"
            entry = {"name": layer.name, "type": layer._type_string, "display": _display(layer)}
            frame = layer_frame(layer)
            entry["display_frame"] = None if frame is None else frame.tolist()
            if layer._type_string == "points":
                world = np.array([layer.data_to_world(p) for p in np.asarray(layer.data)], float)
                lps = world_to_lps(world[:, -3:], frame) if len(world) else np.zeros((0, 3))
                entry["file"] = f"{stem}.json"
                (temporary / entry["file"]).write_text(json.dumps({"lps_mm": lps.tolist()}))
            else:
                volume = layer_to_volume(layer)
                volume = volume.with_array(np.asarray(volume.array))
                stored = {
                    k: v
                    for k, v in (layer.metadata.get(GEOMETRY_KEY) or {}).items()
                    if k not in ("spacing", "origin", "direction")
                }
                entry["file"] = f"{stem}.nii.gz"
                write_nifti(
                    volume, temporary / entry["file"], sidecar=json.loads(json.dumps(stored, default=str))
                )
            features = getattr(layer, "features", None)
            if features is not None and len(features.columns):
                entry["table"] = f"{stem}.csv"
                features.to_csv(temporary / entry["table"], index=False)
            entries.append(entry)
        (temporary / "steps.json").write_text(session_log().to_json())
        (temporary / SESSION_FILE).write_text(json.dumps({"version": 1, "layers": entries}, indent=1))
    return folder


def read_session(folder: str | os.PathLike) -> list[tuple]:
    """LayerDataTuples of a session folder, in the saved order (for a napari reader or :func:`open_session`).

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` per layer.

    Raises
    ------
    ValueError
        When the folder is not a session or a file it lists is missing.
    """
    import pandas as pd

    folder = Path(folder)
    manifest = folder / SESSION_FILE
    if not manifest.is_file():
        raise ValueError(f"{folder} is not a napari-medimg session (no {SESSION_FILE})")
    session = json.loads(manifest.read_text())
    tuples = []
    for entry in session.get("layers", []):
        path = folder / Path(str(entry["file"])).name  # never outside the folder
        if not path.is_file():
            raise ValueError(f"the session lists {path.name}, which is missing")
        display = dict(entry.get("display") or {})
        frame = entry.get("display_frame")
        kind = entry["type"]
        if kind == "points":
            lps = np.asarray(json.loads(path.read_text())["lps_mm"], float).reshape(-1, 3)
            display.pop("face_color", None)
            tuples.append((lps_to_world(lps, frame), {"name": entry["name"], **display}, "points"))
            continue
        volume = read_nifti(path)
        sidecar = path.with_name(path.name[: -len(".nii.gz")] + ".json")
        if sidecar.is_file():
            volume.metadata.update(json.loads(sidecar.read_text()))
        volume.metadata.pop("display", None)
        if frame is not None:
            volume.metadata["display_frame"] = frame
        kwargs = {**display}
        if "table" in entry and (folder / Path(entry["table"]).name).is_file():
            kwargs["features"] = pd.read_csv(folder / Path(entry["table"]).name)
        tuples.append(layer_data_tuple(volume, kind, name=entry["name"], **kwargs))
    return tuples


def open_session(viewer: napari.Viewer, folder: str | os.PathLike) -> list:
    """Add the layers of a session folder to ``viewer`` (main thread).

    Parameters
    ----------
    viewer : napari.Viewer
    folder : path-like

    Returns
    -------
    list of napari.layers.Layer
    """
    from napari.layers import Layer

    return [viewer.add_layer(Layer.create(*t)) for t in read_session(folder)]


class SessionWidget(ScrollableContainer):
    """A small panel: a session folder, *Save session*, *Open session* and *replace an existing session*.

    A class, not a function: napari hands the viewer to a dock widget's ``__init__`` only.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose medical layers are saved or into which a session is opened.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.folder = FileEdit(mode="d", label="session folder", value="")
        self.overwrite = CheckBox(text="replace an existing session", value=False)
        self.save_button, self.open_button = PushButton(text="Save session"), PushButton(text="Open session")
        self.status = Label(value="")
        self.extend([self.folder, self.overwrite, self.save_button, self.open_button, self.status])
        self.save_button.changed.connect(self.save)
        self.open_button.changed.connect(self.open)

    def _chosen(self) -> Path | None:
        folder = chosen_path(self.folder)
        if folder is None:
            self.status.value = "error: choose a session folder first"
        return folder

    def save(self, *_):
        """Save the viewer's medical layers into the chosen folder."""
        folder = self._chosen()
        if folder is None:
            return
        try:
            save_session(self.viewer, folder, overwrite=self.overwrite.value)
            self.status.value = f"saved {len(read_session(folder))} layers to {folder}"
        except (OSError, ValueError) as error:
            self.status.value = f"error: {error}"

    def open(self, *_):
        """Open the session in the chosen folder as layers."""
        folder = self._chosen()
        if folder is None:
            return
        try:
            self.status.value = f"opened {len(open_session(self.viewer, folder))} layers from {folder}"
        except (OSError, ValueError) as error:
            self.status.value = f"error: {error}"
