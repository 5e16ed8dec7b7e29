"""Fill between slices: interpolate painted label slices through the gaps along any axis (shape-based,
signed distances in mm).  Painted slices and other labels are never changed; one-step Undo; recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, SpinBox, create_widget

from ... import ops
from ._common import JobWidget

if TYPE_CHECKING:
    import napari

__all__ = ["FillBetweenSlicesWidget"]

VIEW = "the viewer's slider axis"
AXES = {VIEW: None, "0 (slices, z)": 0, "1 (rows, y)": 1, "2 (columns, x)": 2}


class FillBetweenSlicesWidget(JobWidget):
    """Paint a label on a few slices, choose the axis you painted along, and fill the slices between."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Fill between slices", undo=True)
        self.labels_layer = create_widget(annotation="napari.layers.Labels", label="labels")
        self.axis = ComboBox(choices=list(AXES), value=VIEW, label="painted along axis")
        self.value = SpinBox(label="label (0 = all)", min=0, max=65535, value=0)
        self.extend([self.labels_layer, self.axis, self.value])
        self._finish_layout()
        self._connect_layer_choices(self.labels_layer)

    def _view_axis(self, layer) -> int:
        """The layer axis the viewer's (last) slider moves along: the axis the user paints slice by slice."""
        world_axis = self.viewer.dims.not_displayed[-1] if self.viewer.dims.not_displayed else 0
        return max(0, world_axis - (self.viewer.dims.ndim - layer.ndim))

    def params(self) -> dict:
        axis = AXES[self.axis.value]
        if axis is None:
            layer = self.labels_layer.value
            axis = 0 if layer is None else self._view_axis(layer)
        return {"axis": axis, "values": None if self.value.value == 0 else [self.value.value]}

    def apply(self, *_):
        layer = self.labels_layer.value
        if layer is None or self.worker is not None:
            return
        params = self.params()
        if params["axis"] >= layer.ndim:
            self.status.value = f"error: {layer.name!r} has only {layer.ndim} axes"
            return
        volume = self.volume_of(layer)
        labels = np.asarray(layer.data)

        def done(result):
            added = int(np.count_nonzero(result != labels))
            self.edit_in_place(layer, result, "fill_between_slices", params, [layer])
            self.status.value = f"filled {added} voxels ({added * volume.voxel_volume:.1f} mm³)"

        def fill(volume, progress=None):
            return np.asarray(ops.run("fill_between_slices", volume, progress=progress, **params).array)

        self.run_job(
            fill, volume.with_array(labels), description=f"Fill between slices {layer.name}", on_done=done
        )
