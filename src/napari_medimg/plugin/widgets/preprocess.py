"""Preprocess an Image layer: window/level, normalisation, denoising, contrast, sharpening, top-hat,
resampling and vesselness.  Live preview on the current slice, computed in a background worker (on a thin
slab around the slice, or on the whole volume for normalisation, whose statistics are the volume's), the
whole volume in a worker; the result goes to the '<image> <operation>' Image layer with the source geometry
(resampling: the new geometry) and every run is recorded as a named step.

Results get contrast limits that fit their values: the source's window where the units stay the same
(denoising, sharpening, brightness/contrast), the window itself for window/level, and the 0.5–99.5
percentiles of the values otherwise (normalised values, vesselness, CLAHE …)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, create_widget

from ... import ops
from ...processing.preprocess import DENOISE_METHODS, NORMALIZE_METHODS
from ...processing.windows import CT_WINDOW_PRESETS
from ..layers import layer_data_tuple
from ..preview import BackgroundPreview
from ._common import JobWidget, add_without_selecting, slab_around

if TYPE_CHECKING:
    import napari

__all__ = ["PreprocessWidget", "OPERATIONS"]


def _float(name, value, minimum=-1e9, maximum=1e9, step=0.1, label=None):
    return {
        "name": name,
        "value": value,
        "annotation": float,
        "label": label or name,
        "options": {"min": minimum, "max": maximum, "step": step},
    }


def _choice(name, choices, value, label=None):
    return {
        "name": name,
        "value": value,
        "widget_type": "ComboBox",
        "label": label or name,
        "options": {"choices": list(choices)},
    }


def _bool(name, value, label=None):
    return {"name": name, "value": value, "annotation": bool, "label": label or name}


def _window(preset, level, width, output):
    if preset == "custom":
        return {"level": level, "width": width, "output": output}
    return {"preset": preset, "output": output}


def _denoise(method, size_mm, sigma_intensity):
    size = "sigma_mm" if method in ("gaussian", "bilateral") else "radius_mm"
    return {"method": method, size: size_mm, "sigma_intensity": sigma_intensity or None}


def _resample(spacing_mm, interpolation, labels):
    order = {"linear": 1, "cubic": 3, "nearest": 0}[interpolation]
    return {"spacing_mm": spacing_mm or None, "order": order, "labels": labels}


def _vesselness(method, sigmas_mm, bright):
    try:
        sigmas = [float(s) for s in str(sigmas_mm).replace(";", ",").split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"scales must be numbers in mm separated by commas, got {sigmas_mm!r}") from None
    return {"method": method, "sigmas_mm": sigmas, "bright": bright}


def _same(**params):
    return params


#: how an operation is previewed: on a slab around the slice, on the whole volume (its statistics are the
#: volume's), or not at all (it changes the grid: the status says so)
SLAB, VOLUME, NO_PREVIEW = "slab", "volume", None

#: operation → (registry operation, widget values → core parameters, parameter specs, preview mode)
OPERATIONS = {
    "window/level": (
        "window_level",
        _window,
        [
            _choice("preset", ["custom", *CT_WINDOW_PRESETS], "soft_tissue"),
            _float("level", 40.0, step=10),
            _float("width", 400.0, 1e-3, 1e6, 10),
            _choice("output", ["clip", "unit"], "clip"),
        ],
        SLAB,
    ),
    "normalize": (
        "normalize",
        _same,
        [
            _choice("method", NORMALIZE_METHODS, "z_score"),
            _float("low_percentile", 1.0, 0, 100, 0.5),
            _float("high_percentile", 99.0, 0, 100, 0.5),
        ],
        VOLUME,
    ),
    "denoise": (
        "denoise",
        _denoise,
        [
            _choice("method", DENOISE_METHODS, "gaussian"),
            _float("size_mm", 1.0, 0.01, 100, 0.1, "sigma / radius (mm)"),
            _float("sigma_intensity", 0.0, 0, 1e6, 1.0, "intensity sigma (0 = auto)"),
        ],
        SLAB,
    ),
    "CLAHE": (
        "clahe",
        _same,
        [_float("kernel_mm", 50.0, 1, 1e4, 5, "context (mm)"), _float("clip_limit", 0.01, 0.0001, 1, 0.005)],
        SLAB,
    ),
    "gamma": ("gamma", _same, [_float("value", 1.0, 0.01, 10, 0.1, "gamma")], SLAB),
    "brightness/contrast": (
        "brightness_contrast",
        _same,
        [_float("brightness", 0.0, step=5), _float("contrast", 1.0, 0.01, 100, 0.1)],
        SLAB,
    ),
    "unsharp mask": (
        "unsharp_mask",
        _same,
        [_float("sigma_mm", 1.0, 0.01, 100, 0.1, "sigma (mm)"), _float("amount", 1.0, 0, 100, 0.1)],
        SLAB,
    ),
    "top-hat": (
        "tophat",
        _same,
        [
            _float("radius_mm", 4.0, 0.01, 1000, 0.5, "radius (mm)"),
            _bool("bright", True, "bright structures"),
        ],
        SLAB,
    ),
    "resample": (
        "resample",
        _resample,
        [
            _float("spacing_mm", 0.0, 0, 100, 0.1, "spacing (mm, 0 = finest)"),
            _choice("interpolation", ["linear", "cubic", "nearest"], "linear"),
            _bool("labels", False, "labels (nearest)"),
        ],
        NO_PREVIEW,
    ),
    "vesselness": (
        "vesselness",
        _vesselness,
        [
            _choice("method", ["frangi", "sato"], "frangi"),
            {"name": "sigmas_mm", "value": "1, 2, 3", "annotation": str, "label": "scales (mm)"},
            _bool("bright", True, "bright tubes"),
        ],
        SLAB,
    ),
}


def _run_operation(volume, operation: str, params: dict, progress=None):
    """Run registry operation ``operation`` with core ``params`` (in the worker or for a preview)."""
    return ops.run(operation, volume, progress=progress, **params)


#: operations whose output keeps the source's intensity units (results keep the source's contrast)
SAME_UNITS = ("denoise", "unsharp mask", "brightness/contrast")


def result_contrast(operation: str, core: dict, values, source_limits) -> tuple[float, float]:
    """Contrast limits for the result of ``operation`` (widget name) with ``core`` parameters.

    Parameters
    ----------
    operation : str
        The widget's operation name (a key of :data:`OPERATIONS`).
    core : dict
        The registry parameters it ran with.
    values : array_like
        The result (or a slice of it).
    source_limits : sequence of float
        The source layer's contrast limits.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``high > low``.
    """
    if operation in SAME_UNITS:
        return float(source_limits[0]), float(source_limits[1])
    if operation == "window/level":
        if core.get("output") == "unit":
            return 0.0, 1.0
        level, width = (
            CT_WINDOW_PRESETS[core["preset"]] if "preset" in core else (core["level"], core["width"])
        )
        return float(level - width / 2), float(level + width / 2)
    sample = np.asarray(values, np.float64).ravel()[:: max(1, np.size(values) // 2_000_000)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    return low, high if high > low else low + 1.0


class PreprocessWidget(JobWidget):
    """Pick an image and an operation; preview on the current slice; apply to the volume in a worker."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Apply to volume")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.operation = ComboBox(choices=list(OPERATIONS), value="denoise", label="operation")
        self.parameters: dict[str, Container] = {}
        for name, (_, _, specs, _) in OPERATIONS.items():
            box = Container(widgets=[create_widget(**spec) for spec in specs], labels=True, visible=False)
            self.parameters[name] = box
        self.preview = CheckBox(text="live preview on current slice", value=False)
        self.extend([self.image, self.operation, *self.parameters.values(), self.preview])
        self._finish_layout()
        self._preview_slice: int | None = None
        self._request: tuple | None = None
        self._background = BackgroundPreview(self._show_preview, self._preview_failed)
        self._field("window/level", "preset").changed.connect(self._preset_chosen)
        self._field("window/level", "level").changed.connect(self._window_edited)
        self._field("window/level", "width").changed.connect(self._window_edited)
        self._preset_chosen()
        self.operation.changed.connect(self._on_operation)
        self.preview.changed.connect(self.update_preview)
        self.image.changed.connect(self.update_preview)
        for box in self.parameters.values():
            box.changed.connect(self.update_preview)
        self.viewer.dims.events.current_step.connect(self.update_preview)
        self._connect_layer_choices(self.image)
        self._on_operation()

    # ---- parameters -------------------------------------------------------------------------------------
    def params(self) -> dict:
        """The current operation's widget values by name."""
        return {w.name: w.value for w in self.parameters[self.operation.value]}

    def step(self) -> tuple[str, dict]:
        """The registry operation and its core parameters for the current widget values (what is recorded)."""
        operation, to_core, _, _ = OPERATIONS[self.operation.value]
        return operation, to_core(**self.params())

    def set_params(self, **values):
        for key, value in values.items():
            self._field(self.operation.value, key).value = value

    def _field(self, operation: str, name: str):
        """The parameter widget ``name`` of ``operation`` (by name: ``width`` is also a Widget property)."""
        return next(widget for widget in self.parameters[operation] if widget.name == name)

    def _preset_chosen(self, *_):
        """A chosen preset shows its level and width in the fields (they are what will be applied)."""
        preset = self._field("window/level", "preset").value
        if preset != "custom":
            level, width = self._field("window/level", "level"), self._field("window/level", "width")
            with level.changed.blocked(), width.changed.blocked():
                level.value, width.value = CT_WINDOW_PRESETS[preset]

    def _window_edited(self, *_):
        """Typing a level or width makes the window a custom one (the preset no longer applies)."""
        preset = self._field("window/level", "preset")
        if preset.value != "custom":
            with preset.changed.blocked():
                preset.value = "custom"

    @property
    def result_name(self) -> str:
        return f"{self.image.value.name} {self.operation.value}"

    @property
    def preview_name(self) -> str:
        return f"{self.image.value.name} preview"

    @property
    def preview_busy(self) -> bool:
        """A preview is still being computed in the background."""
        return self._background.busy

    def _on_operation(self, *_):
        for name, box in self.parameters.items():
            box.visible = name == self.operation.value
        self.update_preview()

    # ---- preview ----------------------------------------------------------------------------------------
    def _hide_preview(self) -> None:
        self._background.cancel()
        layer = self.image.value
        if layer is not None and self.preview_name in self.viewer.layers:
            self.viewer.layers[self.preview_name].visible = False

    def update_preview(self, *_):
        """Ask the background worker for the displayed slice of the current operation's result."""
        layer = self.image.value
        if layer is None or layer not in self.viewer.layers or not self.preview.value:
            self._hide_preview()
            return
        mode = OPERATIONS[self.operation.value][3]
        if mode is NO_PREVIEW:
            self._hide_preview()
            self.status.value = (
                f"{self.operation.value} changes the voxel grid: no slice preview; Apply to volume shows it"
            )
            return
        try:
            operation, params = self.step()
        except ValueError as error:
            self.status.value = f"preview: {error}"
            return
        volume = self.volume_of(layer)
        index = self.slice_index(layer) if volume.ndim == 3 else None
        self._request = (layer, self.operation.value, params)
        self.status.value = "preview…"
        self._background.request(self._preview_job, volume, index, operation, params, mode)

    @staticmethod
    def _preview_job(volume, index, operation: str, params: dict, mode: str) -> tuple:
        """In the worker: the previewed slice (from a slab around it, or from the whole volume)."""
        if index is None:
            return None, np.asarray(_run_operation(volume, operation, params).array, np.float32)
        if mode == SLAB:
            slab, middle = slab_around(volume, index)
            return index, np.asarray(_run_operation(slab, operation, params).array[middle], np.float32)
        return index, np.asarray(_run_operation(volume, operation, params).array[index], np.float32)

    def _preview_failed(self, error: BaseException) -> None:
        self.status.value = f"preview: {error}"

    def _show_preview(self, result: tuple) -> None:
        """On the main thread: the previewed slice into the preview layer, with contrast that fits it."""
        layer, operation, params = self._request
        if layer is not self.image.value or layer not in self.viewer.layers:
            return
        index, plane = result
        volume = self.volume_of(layer)
        name = self.preview_name
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == volume.shape:
            preview = self.viewer.layers[name]
        else:
            zeros = np.zeros(volume.shape, np.float32)  # pages are only touched where a slice is shown
            preview = add_without_selecting(
                self.viewer,
                layer_data_tuple(
                    volume.with_array(zeros),
                    "image",
                    name=name,
                    colormap="gray",
                    blending="translucent",
                    contrast_limits=(0.0, 1.0),  # given: napari would otherwise scan the whole array
                ),
            )
            self._preview_slice = None
        data = preview.data
        if index is not None:
            if self._preview_slice is not None and self._preview_slice < data.shape[0]:
                data[self._preview_slice] = 0
            data[index] = plane
            self._preview_slice = index
        else:
            data[...] = plane
        preview.contrast_limits = result_contrast(operation, params, plane, layer.contrast_limits)
        preview.visible = True
        preview.refresh()
        self.status.value = "preview"

    # ---- full volume ------------------------------------------------------------------------------------
    def apply(self, *_):
        """Run the operation on the whole volume in a worker; the result replaces '<image> <operation>'."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        operation = self.operation.value
        try:
            op_name, core = self.step()
        except ValueError as error:
            self.status.value = f"error: {error}"
            return
        params = self.params()
        volume = self.volume_of(layer)
        name = self.result_name
        source_limits = tuple(layer.contrast_limits)

        def done(result):
            labels = bool(params.get("labels"))
            if labels:
                out = self.show_result(result, "labels", name, op_name, core, [layer])
            else:
                limits = result_contrast(operation, core, result.array, source_limits)
                shown = result.with_array(result.array)
                for key in ("window_center", "window_width"):
                    shown.metadata.pop(key, None)  # the source's window does not fit other units
                out = self.show_result(
                    shown, "image", name, op_name, core, [layer], colormap="gray", contrast_limits=limits
                )
                out.contrast_limits_range = (
                    min(limits[0], float(np.min(result.array))),
                    max(limits[1], float(np.max(result.array))),
                )
                out.contrast_limits = limits
            if self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            spacing = " × ".join(f"{s:.3g}" for s in result.spacing)
            self.status.value = f"{operation}: {out.name} ({spacing} mm)"

        self.run_job(
            _run_operation, volume, op_name, core, description=f"{operation} {layer.name}", on_done=done
        )
