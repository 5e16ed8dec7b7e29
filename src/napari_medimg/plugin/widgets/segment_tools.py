"""Segment Editor-style tools: region growing from seeds, and morphology / islands / margin / smoothing /
logical operators / watershed split on a label of a Labels layer.

Edits of one label value happen in place (other labels are kept unless "overwrite other labels" is on) with
one-step Undo; tools that make new label images (split islands, connected components, watershed split, region
growing) write a new Labels layer, reused by name.  Every run is recorded as a named step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox, create_widget

from ... import ops
from ...processing import morphology as mo
from ...processing import region_growing as rg
from ._common import JobWidget, points_to_world

if TYPE_CHECKING:
    import napari

__all__ = ["RegionGrowingWidget", "LabelEditWidget", "EDIT_OPERATIONS", "label_edit_step"]

CONNECTED, CONFIDENCE, SEEDS = "connected threshold", "confidence connected", "grow from seeds"


def _border_label(labels: np.ndarray) -> int:
    """The label that covers most of the faces of the box around every labelled voxel."""
    nonzero = np.argwhere(labels)
    low, high = nonzero.min(axis=0), nonzero.max(axis=0)
    inner = np.asarray(labels)[tuple(slice(a, b + 1) for a, b in zip(low, high, strict=True))]
    faces = np.concatenate(
        [np.take(inner, edge, axis=axis).ravel() for axis in range(inner.ndim) for edge in (0, -1)]
    )
    counts = np.bincount(faces[faces > 0])
    return int(np.argmax(counts)) if counts.size else 0


def grown_summary(labels: np.ndarray, voxel_volume_mm3: float, *, from_seeds: bool = False) -> str:
    """What region growing grew, in words: the voxels and mm³ of each grown label.  Of labels grown from
    painted seeds, the one that fills the border of the grown box is the background painted around the
    object: it is named so, not counted as grown.  A region of nothing but its seed is said to be one, with
    the way out.

    Parameters
    ----------
    labels : numpy.ndarray
        The grown labels (0 = not grown).
    voxel_volume_mm3 : float
        Volume of one voxel.
    from_seeds : bool
        The labels were grown from painted seeds (grow from seeds), not from seed points.

    Returns
    -------
    str
        One line for the status.
    """
    counts = np.bincount(np.asarray(labels).ravel())
    grown = [(value, int(n)) for value, n in enumerate(counts) if value and n]
    if not grown:
        return "nothing grew (the seeds lie outside the range; widen it or move the seeds)"
    if not from_seeds:
        ((_, voxels),) = grown[:1]
        if len(grown) == 1 and voxels <= 1:
            return "only the seed voxel: its neighbours lie outside the range; raise the multiplier"
        return f"{voxels} voxels, {voxels * voxel_volume_mm3:.1f} mm³"
    background = _border_label(labels) if len(grown) > 1 else None
    parts = []
    for value, voxels in grown:
        if value == background:
            parts.append(f"label {value} (background) {voxels} voxels")
        else:
            parts.append(f"label {value} grew to {voxels} voxels, {voxels * voxel_volume_mm3:.1f} mm³")
    return "; ".join(parts)


class RegionGrowingWidget(JobWidget):
    """Grow a region from seed points (Points layer, world mm) or grow competing labels from painted seeds."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Grow")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.method = ComboBox(choices=[CONNECTED, CONFIDENCE, SEEDS], value=CONNECTED, label="method")
        self.points = create_widget(annotation="napari.layers.Points", label="seed points")
        self.seeds = create_widget(annotation="napari.layers.Labels", label="seed labels")
        self.auto_range = CheckBox(text="range from seed statistics", value=True)
        self.low = FloatSpinBox(label="low", min=-1e9, max=1e9, step=1.0, value=0.0)
        self.high = FloatSpinBox(label="high", min=-1e9, max=1e9, step=1.0, value=100.0)
        self.multiplier = FloatSpinBox(label="multiplier (× sd)", min=0.1, max=20, step=0.1, value=2.5)
        self.radius_mm = FloatSpinBox(label="seed radius (mm)", min=0.0, max=100, step=0.5, value=2.0)
        self.iterations = SpinBox(label="iterations", min=0, max=50, value=4)
        self.grow_method = ComboBox(choices=list(rg.GROW_METHODS), value="watershed", label="grow by")
        self.sigma_mm = FloatSpinBox(label="gradient sigma (mm)", min=0.0, max=20, step=0.1, value=1.0)
        self.margin_mm = FloatSpinBox(
            label="margin around seeds (mm)", min=0.0, max=1000, step=5.0, value=20.0
        )
        self.value = SpinBox(label="label value", min=1, max=65535, value=1)
        self.extend(
            [
                self.image,
                self.method,
                self.points,
                self.seeds,
                self.auto_range,
                self.low,
                self.high,
                self.multiplier,
                self.radius_mm,
                self.iterations,
                self.grow_method,
                self.sigma_mm,
                self.margin_mm,
                self.value,
            ]
        )
        self._finish_layout()
        self.method.changed.connect(self._on_method)
        self.auto_range.changed.connect(self._on_method)
        self._connect_layer_choices(self.image, self.points, self.seeds)
        self._on_method()

    def _on_method(self, *_):
        method = self.method.value
        self.points.visible = method != SEEDS
        self.seeds.visible = self.grow_method.visible = self.sigma_mm.visible = method == SEEDS
        self.margin_mm.visible = method == SEEDS
        self.auto_range.visible = method == CONNECTED
        self.low.visible = self.high.visible = method == CONNECTED and not self.auto_range.value
        self.multiplier.visible = self.radius_mm.visible = method in (CONNECTED, CONFIDENCE) and (
            method == CONFIDENCE or self.auto_range.value
        )
        self.iterations.visible = method == CONFIDENCE
        self.value.visible = method != SEEDS

    @property
    def result_name(self) -> str:
        suffix = "grown" if self.method.value == SEEDS else "region"
        return f"{self.image.value.name} {suffix}"

    def step(self, volume) -> tuple[str, dict]:
        """The registry operation and core parameters of the current settings (seeds in world mm).

        Raises
        ------
        ValueError
            When the seed layer the method needs is not chosen or has no points.
        """
        method = self.method.value
        if method == SEEDS:
            if self.seeds.value is None:
                raise ValueError("choose a Labels layer with painted seeds")
            return "grow_from_seeds", {
                "method": self.grow_method.value,
                "sigma_mm": self.sigma_mm.value,
                "margin_mm": self.margin_mm.value,
            }
        if self.points.value is None:
            raise ValueError("choose a Points layer with seed points")
        params = {
            "seeds": points_to_world(self.points.value, volume).tolist(),
            "method": method.replace(" ", "_"),
            "multiplier": self.multiplier.value,
            "radius_mm": self.radius_mm.value,
            "label": self.value.value,
        }
        if method == CONFIDENCE:
            params["iterations"] = self.iterations.value
        elif not self.auto_range.value:
            params.update(low=self.low.value, high=self.high.value)
        return "region_growing", params

    def apply(self, *_):
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        volume = self.volume_of(layer)
        try:
            operation, params = self.step(volume)
        except ValueError as error:
            self.status.value = f"error: {error}"
            return
        inputs = [layer]
        args = [volume]
        if operation == "grow_from_seeds":
            inputs.append(self.seeds.value)
            args.append(volume.with_array(np.asarray(self.seeds.value.data)))
        else:
            inputs.append(self.points.value)
        name = self.result_name

        def grow(*volumes, progress=None):
            return np.asarray(ops.run(operation, *volumes, progress=progress, **params).array)

        def done(labels):
            self.show_result(volume.with_array(labels), "labels", name, operation, params, inputs)
            self.status.value = f"{name}: " + grown_summary(
                labels, volume.voxel_volume, from_seeds=operation == "grow_from_seeds"
            )

        self.run_job(grow, *args, description=f"{self.method.value} {layer.name}", on_done=done)


#: label-edit operations by group
MORPHOLOGY = ("erode", "dilate", "open", "close")
FILL = ("fill holes (3D)", "fill holes (per slice)")
ISLANDS = ("keep largest island", "remove small islands", "split islands", "connected components")
LOGICAL = tuple(f"logical: {op}" for op in mo.LOGICAL_OPERATIONS)
EDIT_OPERATIONS = (*MORPHOLOGY, *FILL, *ISLANDS, "margin", "smooth", "watershed split", *LOGICAL)
#: operations whose result is a new label image (a new layer) rather than an edit of one label
NEW_LAYER = ("split islands", "connected components", "watershed split")


def label_edit_step(operation: str, params: dict) -> tuple[str, dict]:
    """The registry operation and core parameters of a label-edit tool ``operation`` with widget ``params``
    (``value``, ``overwrite`` and the tool's own: ``radius_mm``, ``axis``, ``min_size_mm3``, ``margin_mm``,
    ``smoothing``, ``h_mm``, ``other_value``).

    Parameters
    ----------
    operation : str
        One of :data:`EDIT_OPERATIONS`.
    params : dict
        The widget's values.

    Returns
    -------
    tuple
        ``(operation name, core parameters)`` for :func:`napari_medimg.ops.run`.

    Raises
    ------
    ValueError
        For an unknown tool.
    """
    if operation in MORPHOLOGY:
        name, core = "morphology", {"operation": operation, "radius_mm": params["radius_mm"]}
    elif operation == "fill holes (3D)":
        name, core = "fill_holes", {"per_slice": False}
    elif operation == "fill holes (per slice)":
        name, core = "fill_holes", {"per_slice": True, "axis": params["axis"]}
    elif operation == "keep largest island":
        name, core = "islands", {"operation": "keep_largest"}
    elif operation == "remove small islands":
        name, core = "islands", {"operation": "remove_small", "min_size_mm3": params["min_size_mm3"]}
    elif operation == "split islands":
        name, core = "split_islands", {"min_size_mm3": params["min_size_mm3"]}
    elif operation == "connected components":
        name, core = "connected_components", {}
    elif operation == "margin":
        name, core = "margin", {"margin_mm": params["margin_mm"]}
    elif operation == "smooth":
        name, core = "smooth", {"method": params["smoothing"], "radius_mm": params["radius_mm"]}
    elif operation == "watershed split":
        name, core = "watershed_split", {"h_mm": params["h_mm"]}
    elif operation == "logical: invert":
        name, core = "invert", {}
    elif operation in LOGICAL:
        name = "logical"
        core = {"operation": operation.split(": ")[1], "other_label": params["other_value"]}
    else:
        raise ValueError(f"unknown operation {operation!r}")
    core["label"] = params["value"]
    if operation not in NEW_LAYER:
        core["overwrite"] = params["overwrite"]
    return name, core


class LabelEditWidget(JobWidget):
    """Morphology, holes, islands, margin, smoothing, watershed split and logical operators on one label."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Apply", undo=True)
        self.labels_layer = create_widget(annotation="napari.layers.Labels", label="labels")
        self.value = SpinBox(label="label value", min=1, max=65535, value=1)
        self.operation = ComboBox(choices=list(EDIT_OPERATIONS), value="close", label="operation")
        self.radius_mm = FloatSpinBox(
            name="radius_mm", label="radius (mm)", min=0.0, max=1000, step=0.5, value=1.0
        )
        self.axis = ComboBox(name="axis", choices=[0, 1, 2], value=0, label="slice axis")
        self.min_size_mm3 = FloatSpinBox(
            name="min_size_mm3", label="min size (mm³)", min=0.0, max=1e9, step=10, value=100.0
        )
        self.margin_mm = FloatSpinBox(
            name="margin_mm", label="margin (mm, < 0 shrinks)", min=-1000, max=1000, step=0.5, value=2.0
        )
        self.smoothing = ComboBox(
            name="smoothing", choices=list(mo.SMOOTHING_METHODS), value="median", label="smoothing"
        )
        self.h_mm = FloatSpinBox(
            name="h_mm", label="split depth h (mm)", min=0.01, max=100, step=0.1, value=1.0
        )
        self.other = create_widget(annotation="napari.layers.Labels", label="other labels")
        self.other_value = SpinBox(name="other_value", label="other value", min=1, max=65535, value=1)
        self.overwrite = CheckBox(text="overwrite other labels", value=False)
        #: the widgets of the operations' own parameters (shown for the operations that use them)
        self._operation_widgets = (
            self.radius_mm,
            self.axis,
            self.min_size_mm3,
            self.margin_mm,
            self.smoothing,
            self.h_mm,
            self.other,
            self.other_value,
        )
        self.extend([self.labels_layer, self.value, self.operation, *self._operation_widgets, self.overwrite])
        self._finish_layout()
        self.operation.changed.connect(self._on_operation)
        self._followed = None  # the labels layer whose picked label the value follows
        self.labels_layer.changed.connect(self._follow_selected_label)
        self._connect_layer_choices(self.labels_layer, self.other)
        self._on_operation()
        self._follow_selected_label()

    def _follow_selected_label(self, *_):
        """The label value follows the label picked in napari's layer controls (and the layer chosen here)."""
        layer = self.labels_layer.value
        if layer is not self._followed:
            if self._followed is not None:
                self._followed.events.selected_label.disconnect(self._picked)
            if layer is not None:
                layer.events.selected_label.connect(self._picked)
            self._followed = layer
        self._picked()

    def _picked(self, *_):
        layer = self.labels_layer.value
        if layer is not None and getattr(layer, "selected_label", 0) > 0:
            self.value.value = int(layer.selected_label)

    def _parameter_widgets(self, op: str) -> list:
        """The parameter widgets the operation ``op`` uses."""
        widgets = []
        if op in MORPHOLOGY or op == "smooth":
            widgets.append(self.radius_mm)
        if op == "fill holes (per slice)":
            widgets.append(self.axis)
        if op in ("remove small islands", "split islands"):
            widgets.append(self.min_size_mm3)
        if op == "margin":
            widgets.append(self.margin_mm)
        if op == "smooth":
            widgets.append(self.smoothing)
        if op == "watershed split":
            widgets.append(self.h_mm)
        if op in LOGICAL and op != "logical: invert":
            widgets += [self.other, self.other_value]
        return widgets

    def _on_operation(self, *_):
        op = self.operation.value
        used = self._parameter_widgets(op)
        for widget in self._operation_widgets:
            widget.visible = widget in used
        self.overwrite.visible = op not in NEW_LAYER

    def params(self) -> dict:
        op = self.operation.value
        params = {"operation": op, "value": self.value.value, "overwrite": self.overwrite.value}
        for widget in self._parameter_widgets(op):
            if widget is not self.other:
                params[widget.name] = widget.value
        return params

    def apply(self, *_):
        layer = self.labels_layer.value
        if layer is None or self.worker is not None:
            return
        params = self.params()
        op = params["operation"]
        volume = self.volume_of(layer)
        labels = np.asarray(layer.data)
        other_layer = self.other.value if self.other in self._parameter_widgets(op) else None
        other = None if other_layer is None else np.asarray(other_layer.data)
        if other is not None and other.shape != labels.shape:
            self.status.value = "error: the other labels layer has a different shape"
            return
        inputs = [layer] + ([other_layer] if other_layer is not None else [])
        step, core = label_edit_step(op, params)
        if step == "logical" and other is None:
            self.status.value = f"error: {op} needs a second labels layer"
            return
        value = params["value"]
        if op not in NEW_LAYER and step != "logical" and not np.any(labels == value):
            present = [int(v) for v in np.unique(labels) if v != 0][:12]
            self.status.value = (
                f"error: label {value} is not in {layer.name}; labels there: "
                f"{', '.join(map(str, present)) or 'none (paint one first)'}"
            )
            return
        volumes = [volume.with_array(labels)]
        if step == "logical":
            volumes.append(volume.with_array(other))
        count_kept = op not in NEW_LAYER and "overwrite" in core and not core["overwrite"]

        def edit(*volumes, progress=None):
            result = np.asarray(ops.run(step, *volumes, progress=progress, **core).array)
            kept = 0
            if count_kept:  # voxels the operation wanted that belong to other labels and were left alone
                free = np.asarray(ops.run(step, *volumes, **{**core, "overwrite": True}).array)
                kept = int(np.count_nonzero((free == value) & (result != value)))
            return result, kept

        def done(outcome):
            result, kept = outcome
            if op in NEW_LAYER:
                name = f"{layer.name} {op}"
                self.show_result(volume.with_array(result), "labels", name, step, core, inputs)
                self.status.value = f"{name}: {int(result.max())} objects"
                return
            before = int(np.count_nonzero(layer.data == params["value"]))
            self.edit_in_place(layer, result, step, core, inputs)
            after = int(np.count_nonzero(result == params["value"]))
            self.status.value = (
                f"label {params['value']}: {before} → {after} voxels ({after * volume.voxel_volume:.1f} mm³)"
            )
            if kept:
                self.status.value += (
                    f"; {kept} voxels of other labels were kept (tick 'overwrite other labels' to take them)"
                )

        self.run_job(edit, *volumes, description=f"{op} {layer.name}", on_done=done)
