"""Threshold an Image layer into a Labels layer: live preview on the current slice, full volume in a worker.

Methods: a manual range, automatic single thresholds (Otsu, Li, Yen, triangle), multi-Otsu (N classes →
labels 0 … N-1) and local/adaptive thresholds over a neighbourhood in mm.  Every run is recorded as a step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox, create_widget

from ... import ops
from ...geometry import Volume
from ...processing.threshold import (
    AUTOMATIC_METHODS,
    LOCAL_METHODS,
    multi_otsu_thresholds,
    threshold_range,
)
from ..layers import current_slice_index, layer_data_tuple, layer_to_volume, set_or_add_layer
from ._common import JobWidget

if TYPE_CHECKING:
    import napari

__all__ = ["ThresholdWidget"]

MANUAL = "manual"
MULTI_OTSU = "multi-otsu"
LOCAL = "local"


class ThresholdWidget(JobWidget):
    """Manual, automatic (Otsu, Li, Yen, triangle), multi-Otsu or local threshold with preview and apply."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Apply to volume")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.method = ComboBox(
            choices=[MANUAL, *AUTOMATIC_METHODS, MULTI_OTSU, LOCAL], value="otsu", label="method"
        )
        self.low = FloatSpinBox(label="low", min=-1e9, max=1e9, step=1.0)
        self.high = FloatSpinBox(label="high", min=-1e9, max=1e9, step=1.0)
        self.classes = SpinBox(label="classes", min=2, max=8, value=3, visible=False)
        self.local_method = ComboBox(
            choices=list(LOCAL_METHODS), value="gaussian", label="local method", visible=False
        )
        self.block_mm = FloatSpinBox(
            label="block (mm)", min=0.1, max=1e4, step=1.0, value=15.0, visible=False
        )
        self.offset = FloatSpinBox(label="offset", min=-1e9, max=1e9, step=1.0, value=0.0, visible=False)
        self.bright = CheckBox(text="bright objects", value=True, visible=False)
        self.preview = CheckBox(text="live preview on current slice", value=True)
        self.extend(
            [
                self.image,
                self.method,
                self.low,
                self.high,
                self.classes,
                self.local_method,
                self.block_mm,
                self.offset,
                self.bright,
                self.preview,
            ]
        )
        self._finish_layout()
        self._preview_slice: int | None = None
        self._thresholds: list[float] = []
        self._auto_range: tuple[float, float] | None = None

        self.image.changed.connect(self._on_method_changed)
        self.method.changed.connect(self._on_method_changed)
        self.low.changed.connect(self._on_range_changed)
        self.high.changed.connect(self._on_range_changed)
        for widget in (self.classes, self.local_method, self.block_mm, self.offset, self.bright):
            widget.changed.connect(self._on_method_changed)
        self.preview.changed.connect(self.update_preview)
        self.viewer.dims.events.current_step.connect(self.update_preview)
        self._connect_layer_choices(self.image)
        self._on_method_changed()

    # ---- parameters -------------------------------------------------------------------------------------
    @property
    def preview_name(self) -> str:
        return f"{self.image.value.name} threshold preview"

    @property
    def result_name(self) -> str:
        return f"{self.image.value.name} threshold"

    def step(self) -> tuple[str, dict]:
        """The registry operation and core parameters of the current method (what is run and recorded).

        Automatic thresholds are recorded as ``low=None, high=None`` (the method finds them again on replay);
        multi-Otsu's thresholds likewise as ``None``.
        """
        method = self.method.value
        if method == MULTI_OTSU:
            return "multi_otsu", {"classes": self.classes.value, "thresholds": None}
        if method == LOCAL:
            return "local_threshold", {
                "method": self.local_method.value,
                "block_mm": self.block_mm.value,
                "offset": self.offset.value,
                "bright": self.bright.value,
            }
        if method in AUTOMATIC_METHODS:
            return "threshold", {"method": method, "low": None, "high": None}
        return "threshold", {"method": MANUAL, "low": self.low.value, "high": self.high.value}

    def params(self) -> dict:
        """The recorded core parameters of the current method."""
        return self.step()[1]

    def _on_method_changed(self, *_):
        method = self.method.value
        for widget in (self.low, self.high):
            widget.visible = method not in (MULTI_OTSU, LOCAL)
        self.classes.visible = method == MULTI_OTSU
        for widget in (self.local_method, self.block_mm, self.offset, self.bright):
            widget.visible = method == LOCAL
        layer = self.image.value
        if layer is None:
            return
        if method in AUTOMATIC_METHODS:
            low, high = threshold_range(layer.data, method=method)
            self._auto_range = (low, high)
            with self.low.changed.blocked(), self.high.changed.blocked():
                self.low.value, self.high.value = round(low, 3), round(high, 3)
        elif method == MULTI_OTSU:
            self._thresholds = multi_otsu_thresholds(layer.data, classes=self.classes.value)
            self.status.value = "thresholds " + ", ".join(f"{t:.4g}" for t in self._thresholds)
        self.update_preview()

    def _on_range_changed(self, *_):
        if self.method.value in AUTOMATIC_METHODS:
            with self.method.changed.blocked():
                self.method.value = MANUAL
        self.update_preview()

    def _slice_step(self) -> tuple[str, dict]:
        """The step for a preview slice: automatic values come from the whole volume, not the slice."""
        operation, params = self.step()
        if operation == "multi_otsu":
            params = {**params, "thresholds": list(self._thresholds)}
        elif operation == "threshold" and params["method"] in AUTOMATIC_METHODS and self._auto_range:
            params = {"method": MANUAL, "low": self._auto_range[0], "high": self._auto_range[1]}
        return operation, params

    @staticmethod
    def _segment(array, spacing, operation: str, params: dict, progress=None):
        """Registry ``operation`` with ``params`` on ``array`` (a slice or the volume); safe in a worker."""
        return np.asarray(ops.run(operation, Volume(array, spacing), progress=progress, **params).array)

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
        if (
            self.preview_name in self.viewer.layers
            and self.viewer.layers[self.preview_name].data.shape == layer.data.shape
        ):
            preview = self.viewer.layers[self.preview_name]
        else:
            zeros = np.zeros(layer.data.shape, np.uint8)
            preview = set_or_add_layer(
                self.viewer,
                layer_data_tuple(volume.with_array(zeros), "labels", name=self.preview_name, opacity=0.5),
            )
        data = preview.data
        if self._preview_slice is not None and self._preview_slice < data.shape[0] and layer.ndim == 3:
            data[self._preview_slice] = 0
        operation, params = self._slice_step()
        if layer.ndim == 3:
            plane = np.asarray(layer.data[index])
            data[index] = self._segment(plane, volume.spacing[1:], operation, params)
            self._preview_slice = index
        else:
            data[...] = self._segment(np.asarray(layer.data), volume.spacing, operation, params)
        preview.visible = True
        preview.refresh()

    # ---- full volume ------------------------------------------------------------------------------------
    def apply(self, *_):
        self.apply_to_volume()

    def apply_to_volume(self, *_):
        """Threshold the whole volume in a worker; the result goes to the '<image> threshold' Labels layer."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        volume = layer_to_volume(layer)
        operation, params = self.step()
        name = self.result_name

        def done(mask):
            self.show_result(
                volume.with_array(mask, series_description=name), "labels", name, operation, params, [layer]
            )
            if self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            voxels = int(np.count_nonzero(mask))
            if operation == "multi_otsu":
                counts = np.bincount(np.asarray(mask).ravel(), minlength=params["classes"])
                self.status.value = "classes (voxels): " + ", ".join(
                    f"{k}: {n}" for k, n in enumerate(counts)
                )
            elif volume.ndim == 3:
                self.status.value = f"{voxels} voxels, {voxels * volume.voxel_volume / 1000:.2f} mL"
            else:
                self.status.value = f"{voxels} pixels, {voxels * volume.voxel_volume:.1f} mm²"

        def segment(volume, progress=None):
            return np.asarray(ops.run(operation, volume, progress=progress, **params).array)

        self.run_job(segment, volume, description=f"Threshold {layer.name}", on_done=done)
