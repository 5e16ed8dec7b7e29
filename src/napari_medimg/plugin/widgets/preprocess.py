"""Preprocess an Image layer: window/level, normalisation, denoising, contrast, sharpening, top-hat,
resampling and vesselness.  Live preview on the current slice (computed on a thin slab around it), the
whole volume in a worker; the result goes to the '<image> <operation>' Image layer with the source geometry
(resampling: the new geometry) and every run is recorded as a named step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, create_widget

from ... import ops
from ...processing.preprocess import DENOISE_METHODS, NORMALIZE_METHODS
from ...processing.windows import CT_WINDOW_PRESETS
from ..layers import layer_data_tuple, set_or_add_layer
from ._common import JobWidget, slab_around

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


#: operation → (registry operation, widget values → core parameters, parameter specs, preview on a slab?)
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
        True,
    ),
    "normalize": (
        "normalize",
        _same,
        [
            _choice("method", NORMALIZE_METHODS, "z_score"),
            _float("low_percentile", 1.0, 0, 100, 0.5),
            _float("high_percentile", 99.0, 0, 100, 0.5),
        ],
        False,
    ),
    "denoise": (
        "denoise",
        _denoise,
        [
            _choice("method", DENOISE_METHODS, "gaussian"),
            _float("size_mm", 1.0, 0.01, 100, 0.1, "sigma / radius (mm)"),
            _float("sigma_intensity", 0.0, 0, 1e6, 1.0, "intensity sigma (0 = auto)"),
        ],
        True,
    ),
    "CLAHE": (
        "clahe",
        _same,
        [_float("kernel_mm", 50.0, 1, 1e4, 5, "context (mm)"), _float("clip_limit", 0.01, 0.0001, 1, 0.005)],
        False,
    ),
    "gamma": ("gamma", _same, [_float("value", 1.0, 0.01, 10, 0.1, "gamma")], False),
    "brightness/contrast": (
        "brightness_contrast",
        _same,
        [_float("brightness", 0.0, step=5), _float("contrast", 1.0, 0.01, 100, 0.1)],
        True,
    ),
    "unsharp mask": (
        "unsharp_mask",
        _same,
        [_float("sigma_mm", 1.0, 0.01, 100, 0.1, "sigma (mm)"), _float("amount", 1.0, 0, 100, 0.1)],
        True,
    ),
    "top-hat": (
        "tophat",
        _same,
        [
            _float("radius_mm", 4.0, 0.01, 1000, 0.5, "radius (mm)"),
            _bool("bright", True, "bright structures"),
        ],
        True,
    ),
    "resample": (
        "resample",
        _resample,
        [
            _float("spacing_mm", 0.0, 0, 100, 0.1, "spacing (mm, 0 = finest)"),
            _choice("interpolation", ["linear", "cubic", "nearest"], "linear"),
            _bool("labels", False, "labels (nearest)"),
        ],
        False,
    ),
    "vesselness": (
        "vesselness",
        _vesselness,
        [
            _choice("method", ["frangi", "sato"], "frangi"),
            {"name": "sigmas_mm", "value": "1, 2, 3", "annotation": str, "label": "scales (mm)"},
            _bool("bright", True, "bright tubes"),
        ],
        True,
    ),
}


def _run_operation(volume, operation: str, params: dict, progress=None):
    """Run registry operation ``operation`` with core ``params`` (in the worker or for a preview)."""
    return ops.run(operation, volume, progress=progress, **params)


#: operations whose output keeps the source's intensity units (the preview uses the source's contrast)
SAME_UNITS = ("denoise", "unsharp mask", "brightness/contrast")


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
        box = self.parameters[self.operation.value]
        for key, value in values.items():
            getattr(box, key).value = value

    @property
    def result_name(self) -> str:
        return f"{self.image.value.name} {self.operation.value}"

    @property
    def preview_name(self) -> str:
        return f"{self.image.value.name} preview"

    def _on_operation(self, *_):
        for name, box in self.parameters.items():
            box.visible = name == self.operation.value
        self.update_preview()

    # ---- preview ----------------------------------------------------------------------------------------
    def update_preview(self, *_):
        layer = self.image.value
        if layer is None:
            return
        if not self.preview.value or not OPERATIONS[self.operation.value][3]:
            if self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            return
        volume = self.volume_of(layer)
        try:
            operation, params = self.step()
            if volume.ndim == 3:
                index = self.slice_index(layer)
                slab, middle = slab_around(volume, index)
                plane = np.asarray(_run_operation(slab, operation, params).array[middle], np.float32)
            else:
                plane = np.asarray(_run_operation(volume, operation, params).array, np.float32)
        except ValueError as error:
            self.status.value = f"preview: {error}"
            return
        name = self.preview_name
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == volume.shape:
            preview = self.viewer.layers[name]
        else:
            zeros = np.zeros(volume.shape, np.float32)
            preview = set_or_add_layer(
                self.viewer,
                layer_data_tuple(
                    volume.with_array(zeros), "image", name=name, colormap="gray", blending="translucent"
                ),
            )
        data = preview.data
        if volume.ndim == 3:
            if self._preview_slice is not None and self._preview_slice < data.shape[0]:
                data[self._preview_slice] = 0
            data[index] = plane
            self._preview_slice = index
        else:
            data[...] = plane
        if self.operation.value in SAME_UNITS:
            preview.contrast_limits = layer.contrast_limits  # compare with the source at its own contrast
        else:
            low, high = float(plane.min()), float(plane.max())
            preview.contrast_limits = (low, high if high > low else low + 1)
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

        def done(result):
            kwargs = {} if params.get("labels") else {"colormap": "gray"}
            out = self.show_result(
                result,
                "labels" if params.get("labels") else "image",
                name,
                op_name,
                core,
                [layer],
                **kwargs,
            )
            if "window_center" not in result.metadata and hasattr(out, "reset_contrast_limits"):
                out.reset_contrast_limits()
            if self.preview_name in self.viewer.layers:
                self.viewer.layers[self.preview_name].visible = False
            spacing = " × ".join(f"{s:.3g}" for s in result.spacing)
            self.status.value = f"{operation}: {name} ({spacing} mm)"

        self.run_job(
            _run_operation, volume, op_name, core, description=f"{operation} {layer.name}", on_done=done
        )
