"""Threshold an Image layer into a Labels layer: live preview on the current slice, full volume in a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, create_widget

from ...processing.threshold import AUTOMATIC_METHODS, threshold_mask, threshold_range
from ..layers import current_slice_index, layer_data_tuple, layer_to_volume, set_or_add_layer
from ..workers import start_job

if TYPE_CHECKING:
    import napari

__all__ = ["ThresholdWidget"]

MANUAL = "manual"


class ThresholdWidget(Container):
    """Manual or automatic (Otsu, Li, Yen, triangle) threshold with preview and apply-to-volume."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.method = ComboBox(choices=[MANUAL, *AUTOMATIC_METHODS], value="otsu", label="method")
        self.low = FloatSpinBox(label="low", min=-1e9, max=1e9, step=1.0)
        self.high = FloatSpinBox(label="high", min=-1e9, max=1e9, step=1.0)
        self.preview = CheckBox(text="live preview on current slice", value=True)
        self.apply_button = PushButton(text="Apply to volume")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.extend([self.image, self.method, self.low, self.high, self.preview, self.apply_button,
                     self.cancel_button, self.status])
        self.worker = None
        self._preview_slice: int | None = None

        self.image.changed.connect(self._on_method_changed)
        self.method.changed.connect(self._on_method_changed)
        self.low.changed.connect(self._on_range_changed)
        self.high.changed.connect(self._on_range_changed)
        self.preview.changed.connect(self.update_preview)
        self.apply_button.changed.connect(self.apply_to_volume)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.dims.events.current_step.connect(self.update_preview)
        self.viewer.layers.events.inserted.connect(self.image.reset_choices)
        self.viewer.layers.events.removed.connect(self.image.reset_choices)
        self.image.reset_choices()
        self._on_method_changed()

    # ---- parameters -------------------------------------------------------------------------------------
    @property
    def preview_name(self) -> str:
        return f"{self.image.value.name} threshold preview"

    @property
    def result_name(self) -> str:
        return f"{self.image.value.name} threshold"

    def _on_method_changed(self, *_):
        layer = self.image.value
        if layer is None:
            return
        if self.method.value != MANUAL:
            low, high = threshold_range(np.asarray(layer.data), self.method.value)
            with self.low.changed.blocked(), self.high.changed.blocked():
                self.low.value, self.high.value = round(low, 3), round(high, 3)
        self.update_preview()

    def _on_range_changed(self, *_):
        if self.method.value != MANUAL:
            with self.method.changed.blocked():
                self.method.value = MANUAL
        self.update_preview()

    # ---- preview ----------------------------------------------------------------------------------------
    def update_preview(self, *_):
        """Threshold only the displayed slice into the preview layer (cheap: runs on every change)."""
        layer = self.image.value
        if layer is None or not self.preview.value:
            if self.image.value is not None and self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            return
        volume = layer_to_volume(layer)
        index = current_slice_index(self.viewer, layer) if layer.ndim == 3 else None
        if self.preview_name in self.viewer.layers and self.viewer.layers[self.preview_name].data.shape == layer.data.shape:
            preview = self.viewer.layers[self.preview_name]
        else:
            zeros = np.zeros(layer.data.shape, np.uint8)
            preview = set_or_add_layer(self.viewer, layer_data_tuple(volume.with_array(zeros), "labels",
                                                                     name=self.preview_name, opacity=0.5))
        data = preview.data
        if self._preview_slice is not None and self._preview_slice < data.shape[0] and layer.ndim == 3:
            data[self._preview_slice] = 0
        if layer.ndim == 3:
            data[index] = threshold_mask(np.asarray(layer.data[index]), self.low.value, self.high.value)
            self._preview_slice = index
        else:
            data[...] = threshold_mask(np.asarray(layer.data), self.low.value, self.high.value)
        preview.visible = True
        preview.refresh()

    # ---- full volume ------------------------------------------------------------------------------------
    def apply_to_volume(self, *_):
        """Threshold the whole volume in a worker; the result goes to the '<image> threshold' Labels layer."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        volume = layer_to_volume(layer)
        low, high = self.low.value, self.high.value
        name = self.result_name
        self.status.value = "thresholding…"
        self.apply_button.enabled, self.cancel_button.enabled = False, True

        def done(mask):
            result = volume.with_array(mask, series_description=name,
                                       recipe_step={"step": "threshold", "low": low, "high": high,
                                                    "method": self.method.value})
            set_or_add_layer(self.viewer, layer_data_tuple(result, "labels", name=name))
            if self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            voxels = int(np.count_nonzero(mask))
            if volume.ndim == 3:
                self.status.value = f"{voxels} voxels, {voxels * volume.voxel_volume / 1000:.2f} mL"
            else:
                self.status.value = f"{voxels} pixels, {voxels * volume.voxel_volume:.1f} mm²"

        self.worker = start_job(threshold_mask, layer.data, low, high, description=f"Threshold {layer.name}",
                                on_done=done, on_finished=self._job_finished)

    def cancel(self, *_):
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "cancelled"

    def _job_finished(self):
        self.worker = None
        self.apply_button.enabled, self.cancel_button.enabled = True, False
