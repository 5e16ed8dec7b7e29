"""Shared plumbing of the processing and segmentation dock widgets: a worker job with progress, cancel and
status, the step record, slice previews, one-step undo and Points → world LPS conversion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, Label, PushButton

from ...geometry import Volume, world_to_lps
from ...pipeline.steps import record_step
from ..layers import current_slice_index, layer_data_tuple, set_or_add_layer, shown_volume
from ..units import keep_units_consistent
from ..workers import start_job

if TYPE_CHECKING:
    import napari

__all__ = [
    "JobWidget",
    "ScrollableContainer",
    "chosen_path",
    "add_without_selecting",
    "points_to_world",
    "slab_around",
]


def chosen_path(edit) -> Path | None:
    """The path typed or picked in a magicgui FileEdit, or None while it is empty (magicgui reads an empty
    field as '.', the launch folder, which a tool must never scan or write to unasked)."""
    text = edit.line_edit.value.strip()
    return Path(text).expanduser().resolve() if text else None


def add_without_selecting(viewer: napari.viewer.Viewer, layer_tuple: tuple):
    """Add (or update by name) a helper layer such as a preview, keeping the user's layer selection."""
    selected, active = set(viewer.layers.selection), viewer.layers.selection.active
    layer = set_or_add_layer(viewer, layer_tuple)
    viewer.layers.selection.clear()
    viewer.layers.selection.update(selected)
    viewer.layers.selection.active = active
    return layer


class ScrollableContainer(Container):
    """A magicgui Container shown inside a scroll area when docked, so a tall panel never makes the napari
    window taller than the screen.  napari docks a magicgui widget's ``native``, which for a scrollable
    Container is the inner widget; here ``native`` is the scroll area itself (magicgui's root widget)."""

    def __init__(self, **kwargs):
        super().__init__(scrollable=True, **kwargs)

    @property
    def native(self):
        return self.root_native_widget

    @property
    def content_widget(self):
        """The Qt widget that holds the layout (inside the scroll area): add extra Qt widgets here."""
        return self._widget._mgui_get_native_widget()


def points_to_world(points_layer: napari.layers.Points, volume: Volume) -> np.ndarray:
    """The points of a Points layer in the world of ``volume``'s core functions: LPS mm (x, y, z) for 3D
    (napari's world is (S, P, L)), (y, x) mm for 2D."""
    data = np.asarray(points_layer.data, float)
    if data.size == 0:
        raise ValueError(f"the points layer {points_layer.name!r} has no points; add a seed first")
    world = np.array([points_layer.data_to_world(p) for p in data], float)[:, -volume.ndim :]
    if volume.ndim != 3:
        return world
    return world_to_lps(world, volume.metadata.get("display_frame"))


def slab_around(volume: Volume, index: int, halo: int = 6) -> tuple[Volume, int]:
    """A sub-volume of ``volume`` of ±``halo`` slices around slice ``index`` and the slice's index in it
    (previews filter the slab, not the whole volume)."""
    lo, hi = max(0, index - halo), min(volume.shape[0], index + halo + 1)
    origin = volume.index_to_world([lo, 0, 0])
    sub = Volume(
        np.asarray(volume.array[lo:hi]), volume.spacing, origin, volume.direction, dict(volume.metadata)
    )
    return sub, index - lo


class JobWidget(ScrollableContainer):
    """A Container with Apply / Cancel / Undo buttons, a status line and one worker at a time.

    Subclasses define ``apply()`` (what the Apply button runs), add their inputs, then call
    ``_finish_layout()``; long work goes through ``run_job``.
    """

    #: status shown when the user cancels a job
    cancel_message = "cancelled"

    def __init__(self, napari_viewer: napari.viewer.Viewer, apply_text: str = "Apply", undo: bool = False):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        keep_units_consistent(napari_viewer)
        self.worker = None
        self._undo: tuple | None = None
        self.apply_button = PushButton(text=apply_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.undo_button = PushButton(text="Undo", enabled=False, visible=undo)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # long messages wrap instead of widening the panel
        self.apply_button.changed.connect(self.apply)
        self.cancel_button.changed.connect(self.cancel)
        self.undo_button.changed.connect(self.undo)

    def _finish_layout(self):
        self.extend([self.apply_button, self.cancel_button, self.undo_button, self.status])

    def _connect_layer_choices(self, *widgets):
        for widget in widgets:
            self.viewer.layers.events.inserted.connect(widget.reset_choices)
            self.viewer.layers.events.removed.connect(widget.reset_choices)
            widget.reset_choices()

    # ---- jobs ------------------------------------------------------------------------------------------
    def run_job(self, function: Callable, *args, description: str, on_done: Callable, **kwargs):
        """Run ``function(*args, progress=..., **kwargs)`` in a worker; ``on_done(result)`` on the main thread."""
        if self.worker is not None:
            return None
        self.apply_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"{description}…"

        def failed(error):
            self.status.value = f"error: {error}"

        self.worker = start_job(
            function,
            *args,
            description=description,
            on_done=on_done,
            on_error=failed,
            on_finished=self._job_finished,
            owner=self.native,
            **kwargs,
        )
        return self.worker

    def cancel(self, *_):
        if self.worker is not None:
            self.worker.quit()
            self.status.value = self.cancel_message

    def _job_finished(self):
        self.worker = None
        self.apply_button.enabled, self.cancel_button.enabled = True, False

    # ---- results ---------------------------------------------------------------------------------------
    def show_result(
        self, volume: Volume, layer_type: str, name: str, step: str, params: dict, inputs=(), **layer_kwargs
    ):
        """Add or update the result layer by name and record the step."""
        layer = set_or_add_layer(self.viewer, layer_data_tuple(volume, layer_type, name=name, **layer_kwargs))
        record_step(step, params, [getattr(i, "name", i) for i in inputs], name)
        return layer

    def edit_in_place(self, layer, new_data: np.ndarray, step: str, params: dict, inputs=()):
        """Replace a Labels layer's data (keeping the old data for Undo) and record the step."""
        self._undo = (layer, np.array(layer.data, copy=True))
        layer.data = new_data
        self.undo_button.enabled = True
        record_step(step, params, [getattr(i, "name", i) for i in inputs] or [layer.name], layer.name)

    def undo(self, *_):
        if self._undo is None:
            return
        layer, data = self._undo
        if layer in self.viewer.layers:
            layer.data = data
            record_step("undo", {}, [layer.name], layer.name)
            self.status.value = "undone"
        self._undo = None
        self.undo_button.enabled = False

    # ---- helpers ---------------------------------------------------------------------------------------
    def volume_of(self, layer) -> Volume:
        """The Volume the tool works on: the layer's, or the volume a 4D layer's slider shows."""
        return shown_volume(self.viewer, layer)

    def slice_index(self, layer) -> int:
        return current_slice_index(self.viewer, layer)
