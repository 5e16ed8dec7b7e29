"""Measure objects: per-label shape, intensity and texture features of a Labels layer on any number of images.

A thin adapter over :func:`napari_medimg.measure.compute_features`: the job runs in a worker with a progress
bar (Cancel stops it); the result goes to ``labels_layer.features`` (with napari's ``index`` column = label
value) and to a :class:`~.feature_table.FeatureTableWidget` dock linked to the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, FloatSpinBox, Select, create_widget

from ...measure.features import GROUPS, compute_features
from ..layers import layer_to_volume
from ._common import JobWidget
from .feature_table import FeatureTableWidget

if TYPE_CHECKING:
    import napari

__all__ = ["MeasureWidget"]

GROUP_LABELS = {
    "shape": "shape (mm, mm², mm³)",
    "firstorder": "first order",
    "glcm": "GLCM",
    "glrlm": "GLRLM",
    "glszm": "GLSZM",
    "gldm": "GLDM",
    "ngtdm": "NGTDM",
}


class MeasureWidget(JobWidget):
    """Labels layer + image layers + feature groups + bin width → feature table dock."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Measure")
        self.labels = create_widget(annotation="napari.layers.Labels", label="labels")
        self.images = Select(label="images", choices=self._image_choices, allow_multiple=True)
        self.groups = {group: CheckBox(text=GROUP_LABELS[group], value=True) for group in GROUPS}
        self.bin_width = FloatSpinBox(
            label="bin width",
            value=25.0,
            min=1e-6,
            max=1e6,
            step=1.0,
            tooltip="fixed bin width in image units (HU for CT) for entropy and texture",
        )
        self.extend([self.labels, self.images, *self.groups.values(), self.bin_width])
        self._finish_layout()
        self.tables: dict[str, FeatureTableWidget] = {}
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()

    def _image_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if layer._type_string == "image"]

    @property
    def selected_groups(self) -> list[str]:
        return [group for group, box in self.groups.items() if box.value]

    def measure(self, *_) -> None:
        """Compute the table in a worker; on completion fill ``features`` and open or refresh the table dock."""
        labels_layer = self.labels.value
        if labels_layer is None or self.worker is not None:
            return
        groups = self.selected_groups
        # layer data as is: lazy (dask) volumes are read in the worker, not on the main thread
        images = {layer.name: layer.data for layer in self.images.value}
        if not groups:
            self.status.value = "select at least one feature group"
            return
        if not images and groups != ["shape"]:
            self.status.value = "select an image for intensity and texture features"
            return
        mismatched = [name for name, array in images.items() if array.shape != labels_layer.data.shape]
        if mismatched:
            self.status.value = f"{', '.join(mismatched)}: not on the labels' voxel grid"
            return
        volume = layer_to_volume(labels_layer)

        def done(table):
            table.insert(0, "index", table["label"])
            labels_layer.features = table
            self.show_table(labels_layer)
            self.status.value = f"{len(table)} objects, {table.shape[1] - 2} features"

        self.run_job(
            compute_features,
            volume,
            images or None,
            groups=groups,
            bin_width=self.bin_width.value,
            description=f"Measure {labels_layer.name}",
            on_done=done,
        )

    def apply(self, *_) -> None:
        self.measure()

    def show_table(self, labels_layer: napari.layers.Labels) -> FeatureTableWidget:
        """Open (or refresh) the table dock of ``labels_layer``."""
        table = self.tables.get(labels_layer.name)
        if table is not None and table.layer is labels_layer:
            table.refresh()
            return table
        table = FeatureTableWidget(self.viewer, labels_layer)
        self.viewer.window.add_dock_widget(
            table, name=f"Features: {labels_layer.name}", area="right", tabify=True
        )
        self.tables[labels_layer.name] = table
        return table
