"""Segment list of a Labels layer, like Slicer's Segment Editor: names, colours, visibility and volume in mL.

Names live in ``layer.metadata["napari_medimg"]["segments"]`` (label value → name); our writers carry the
layer metadata into NIfTI sidecars, and the session folder keeps it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QPushButton, QTableWidget, QTableWidgetItem

from ..layers import GEOMETRY_KEY, layer_to_volume
from ._panel import LayerPanel
from .readout import segment_names

if TYPE_CHECKING:
    import napari

__all__ = ["SegmentsWidget", "segment_table", "set_segment_name", "set_segment_visible"]


def segment_table(layer) -> list[dict]:
    """One row per label value present: ``value``, ``name``, ``color`` (RGBA), ``visible``, ``volume_ml``.

    Parameters
    ----------
    layer : napari.layers.Labels

    Returns
    -------
    list of dict
    """
    volume = layer_to_volume(layer)
    data = np.asarray(layer.data)
    values, counts = np.unique(data[data != 0], return_counts=True)
    names = segment_names(layer)
    hidden = set((layer.metadata.get(GEOMETRY_KEY) or {}).get("hidden_segments", []))
    colormap = _original_colormap(layer)
    rows = []
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        rows.append(
            {
                "value": int(value),
                "name": names.get(int(value), f"segment {int(value)}"),
                "color": [float(c) for c in np.asarray(colormap.map(np.array([value])))[0]],
                "visible": int(value) not in hidden,
                "volume_ml": count * volume.voxel_volume / 1000.0,
            }
        )
    return rows


def _store(layer) -> dict:
    return layer.metadata.setdefault(GEOMETRY_KEY, {})


#: each Labels layer's colormap before a segment was hidden (kept on the first hide)
_ORIGINAL_COLORMAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _original_colormap(layer):
    """The layer's colormap before segments were hidden."""
    return _ORIGINAL_COLORMAPS.get(layer) or layer.colormap


def set_segment_name(layer, value: int, name: str) -> None:
    """Name segment ``value`` of a Labels layer (stored in the layer metadata).

    Parameters
    ----------
    layer : napari.layers.Labels
    value : int
    name : str
    """
    _store(layer).setdefault("segments", {})[str(int(value))] = str(name)


def set_segment_visible(layer, value: int, visible: bool) -> None:
    """Show or hide one segment (its colour becomes transparent; the data is untouched).

    Parameters
    ----------
    layer : napari.layers.Labels
    value : int
    visible : bool
    """
    from napari.utils.colormaps import DirectLabelColormap

    store = _store(layer)
    hidden = set(store.get("hidden_segments", []))
    hidden = hidden - {int(value)} if visible else hidden | {int(value)}
    store["hidden_segments"] = sorted(hidden)
    original = _ORIGINAL_COLORMAPS.setdefault(layer, layer.colormap)
    values = np.unique(np.asarray(layer.data))
    colors = {None: np.zeros(4, np.float32)}
    for v in values.tolist():
        rgba = np.asarray(original.map(np.array([v])), np.float32)[0].copy()
        if v in hidden:
            rgba[3] = 0.0
        colors[int(v)] = rgba
    layer.colormap = DirectLabelColormap(color_dict=colors)


class SegmentsWidget(LayerPanel):
    """The segment list of the chosen Labels layer (names editable, visibility check boxes, volume in mL).

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, ("labels",))
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["value", "name", "visible", "volume (mL)"])
        self.refresh_button = QPushButton("Refresh")
        self.panel_layout.addWidget(self.table, 1)
        self.panel_layout.addWidget(self.refresh_button)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemChanged.connect(self._on_item)
        self._filling = False
        self._reset_layers()

    def refresh(self, *_) -> None:
        """Rebuild the table from the layer's data."""
        layer = self.layer()
        self._filling = True
        try:
            rows = segment_table(layer) if layer is not None else []
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                value = QTableWidgetItem(str(row["value"]))
                value.setFlags(Qt.ItemFlag.ItemIsEnabled)
                rgba = [int(255 * c) for c in row["color"]]
                value.setBackground(QColor(*rgba[:3]))
                self.table.setItem(r, 0, value)
                self.table.setItem(r, 1, QTableWidgetItem(row["name"]))
                check = QTableWidgetItem("")
                check.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                check.setCheckState(Qt.CheckState.Checked if row["visible"] else Qt.CheckState.Unchecked)
                self.table.setItem(r, 2, check)
                volume = QTableWidgetItem(f"{row['volume_ml']:.3f}")
                volume.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.table.setItem(r, 3, volume)
        finally:
            self._filling = False

    def _on_item(self, item) -> None:
        layer = self.layer()
        if self._filling or layer is None:
            return
        value = int(self.table.item(item.row(), 0).text())
        if item.column() == 1:
            set_segment_name(layer, value, item.text())
        elif item.column() == 2:
            set_segment_visible(layer, value, item.checkState() == Qt.CheckState.Checked)
