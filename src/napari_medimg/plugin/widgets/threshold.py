"""Threshold an Image layer into a Labels layer: live preview on the current slice, full volume in a worker.

Methods: a manual range, automatic single thresholds (Otsu, Li, Yen, triangle), multi-Otsu (N classes →
labels 0 … N-1, or 1 … N of the non-zero voxels with *ignore zeros*) and local/adaptive thresholds over a
neighbourhood in mm.  Every run is recorded as a step.

Nothing heavy runs on the GUI thread: automatic thresholds, multi-Otsu thresholds and the slice preview are
computed in a background worker (debounced, latest request wins, see :mod:`..preview`); the preview layer is
added from the worker's result, never from inside a layer-list event, and does not take the selection.
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
from ..layers import current_slice_index, layer_data_tuple
from ..preview import BackgroundPreview
from ._common import JobWidget, add_without_selecting

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
        self.ignore_zeros = CheckBox(text="ignore zeros (classes of the non-zero voxels)", visible=False)
        self.local_method = ComboBox(
            choices=list(LOCAL_METHODS), value="gaussian", label="local method", visible=False
        )
        self.block_mm = FloatSpinBox(
            label="block (mm)", min=0.1, max=1e4, step=1.0, value=15.0, visible=False
        )
        self.offset = FloatSpinBox(label="offset", min=-1e9, max=1e9, step=1.0, value=0.0, visible=False)
        self.bright = CheckBox(text="bright objects", value=True, visible=False)
        self.preview = CheckBox(text="live preview on current slice", value=True)
        #: the settings of the multi-Otsu and local methods (a change recomputes the preview)
        settings = (
            self.classes,
            self.ignore_zeros,
            self.local_method,
            self.block_mm,
            self.offset,
            self.bright,
        )
        self.extend([self.image, self.method, self.low, self.high, *settings, self.preview])
        self._finish_layout()
        self._preview_slice: int | None = None
        self._thresholds: list[float] = []
        self._auto_range: tuple[float, float] | None = None
        self._computed_for: tuple | None = None  # what _auto_range / _thresholds were computed for
        self._background = BackgroundPreview(self._show_background, self._background_failed)

        self.image.changed.connect(self._on_method_changed)
        self.method.changed.connect(self._on_method_changed)
        self.low.changed.connect(self._on_range_changed)
        self.high.changed.connect(self._on_range_changed)
        for widget in settings:
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
            return "multi_otsu", {
                "classes": self.classes.value,
                "thresholds": None,
                "ignore_zeros": self.ignore_zeros.value,
            }
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
        self.classes.visible = self.ignore_zeros.visible = method == MULTI_OTSU
        for widget in (self.local_method, self.block_mm, self.offset, self.bright):
            widget.visible = method == LOCAL
        self.status.value = ""  # thresholds of another method or image are not shown any more
        self.update_preview()

    def _on_range_changed(self, *_):
        if self.method.value in AUTOMATIC_METHODS:
            with self.method.changed.blocked():
                self.method.value = MANUAL
            self.status.value = ""
        self.update_preview()

    def _statistics_key(self, layer) -> tuple:
        """What automatic or multi-Otsu thresholds depend on: the image, the method and its settings."""
        return (id(layer), layer.data.shape, self.method.value, self.classes.value, self.ignore_zeros.value)

    @staticmethod
    def _segment(array, spacing, operation: str, params: dict, progress=None):
        """Registry ``operation`` with ``params`` on ``array`` (a slice or the volume); safe in a worker."""
        return np.asarray(ops.run(operation, Volume(array, spacing), progress=progress, **params).array)

    @staticmethod
    def _background_job(data, spacing, index, operation, params, known: dict) -> dict:
        """In the worker: the thresholds the method needs (unless ``known``) and the preview slice."""
        result = dict(known)
        method = params.get("method")
        if operation == "threshold" and method in AUTOMATIC_METHODS:
            if "auto_range" not in result:
                result["auto_range"] = threshold_range(data, method=method, exact_high=True)
            params = {"method": MANUAL, "low": result["auto_range"][0], "high": result["auto_range"][1]}
        elif operation == "multi_otsu":
            if "thresholds" not in result:
                mask = (np.asarray(data) != 0) if params["ignore_zeros"] else None
                result["thresholds"] = multi_otsu_thresholds(data, classes=params["classes"], mask=mask)
            params = {**params, "thresholds": list(result["thresholds"])}
        if index is not None:
            plane = np.asarray(data[index])
            result["slice"] = ThresholdWidget._segment(plane, spacing[1:], operation, params)
        else:
            result["slice"] = ThresholdWidget._segment(np.asarray(data), spacing, operation, params)
        result["index"] = index
        return result

    # ---- preview ----------------------------------------------------------------------------------------
    @property
    def preview_busy(self) -> bool:
        """A preview or an automatic threshold is still being computed in the background."""
        return self._background.busy

    def update_preview(self, *_):
        """Ask for the displayed slice's preview (and any automatic thresholds) from the background worker."""
        layer = self.image.value
        if layer is None or not self.preview.value or layer not in self.viewer.layers:
            self._background.cancel()
            if layer is not None and self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            return
        volume = self.volume_of(layer)  # of a 4D layer: the volume its slider shows
        key = (*self._statistics_key(layer), volume.metadata.get("volume_index"))
        known = {}
        if key == self._computed_for:
            if self._auto_range is not None:
                known["auto_range"] = self._auto_range
            if self._thresholds:
                known["thresholds"] = self._thresholds
        index = current_slice_index(self.viewer, layer) if volume.ndim == 3 else None
        operation, params = self.step()
        self._request = (layer, key)
        self._background.request(
            self._background_job, volume.array, volume.spacing, index, operation, params, known
        )

    def _background_failed(self, error: BaseException) -> None:
        self.status.value = f"error: {error}"

    def _show_background(self, result: dict) -> None:
        """On the main thread: show the thresholds and put the preview slice into the preview layer."""
        layer, key = self._request
        if layer is not self.image.value or layer not in self.viewer.layers:
            return  # the image changed or went away while the preview was computed
        self._computed_for = key
        self._auto_range = result.get("auto_range")
        self._thresholds = list(result.get("thresholds") or [])
        if self._auto_range is not None and self.method.value in AUTOMATIC_METHODS:
            low, high = self._auto_range
            with self.low.changed.blocked(), self.high.changed.blocked():
                self.low.value, self.high.value = round(low, 3), round(high, 3)
            self.status.value = f"{self.method.value}: {low:.4g} … {high:.4g}"
        elif self._thresholds and self.method.value == MULTI_OTSU:
            self.status.value = "thresholds " + ", ".join(f"{t:.4g}" for t in self._thresholds)
        preview = self._preview_layer(layer)
        data, index = preview.data, result["index"]
        if index is None:
            data[...] = result["slice"]
        else:
            if self._preview_slice is not None and self._preview_slice < data.shape[0]:
                data[self._preview_slice] = 0
            data[index] = result["slice"]
            self._preview_slice = index
        preview.visible = True
        preview.refresh()

    def _preview_layer(self, layer):
        """The preview Labels layer of ``layer`` (added if missing, without taking the selection)."""
        volume = self.volume_of(layer)
        if (
            self.preview_name in self.viewer.layers
            and self.viewer.layers[self.preview_name].data.shape == volume.shape
        ):
            return self.viewer.layers[self.preview_name]
        zeros = np.zeros(volume.shape, np.uint8)
        self._preview_slice = None
        return add_without_selecting(
            self.viewer,
            layer_data_tuple(volume.with_array(zeros), "labels", name=self.preview_name, opacity=0.5),
        )

    # ---- full volume ------------------------------------------------------------------------------------
    def apply(self, *_):
        self.apply_to_volume()

    def apply_to_volume(self, *_):
        """Threshold the whole volume in a worker; the result goes to the '<image> threshold' Labels layer."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        volume = self.volume_of(layer)
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
