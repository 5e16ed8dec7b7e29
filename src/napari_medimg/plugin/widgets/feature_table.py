"""Dock widgets over a labels layer's feature table: a sortable table linked to the labels, and a plot.

:class:`FeatureTableWidget` shows ``labels_layer.features`` (one row per label, the ``index`` column is the label
value, napari's convention).  Clicking a row selects that label and centres the view on it; selecting a label in
the layer highlights its row.  It exports and imports CSV, and colours the objects by any numeric column as a new
Image layer (a parametric map).  :class:`FeaturePlotWidget` draws a histogram of one column or a scatter plot of
two columns with matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...io.atomic import atomic_path
from ..layers import layer_data_tuple, layer_to_volume, set_or_add_layer

if TYPE_CHECKING:
    import napari

__all__ = ["FeatureTableWidget", "FeaturePlotWidget", "parametric_map", "HISTOGRAM"]

HISTOGRAM = "(histogram)"


_NO_PARENT = QModelIndex()  # the root index Qt passes when it asks for the top level


class _FrameModel(QAbstractTableModel):
    """A read-only Qt model over a DataFrame; numbers are returned as numbers so sorting is numeric."""

    def __init__(self, frame: pd.DataFrame):
        super().__init__()
        self.frame = frame

    def rowCount(self, parent=_NO_PARENT):  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.frame)

    def columnCount(self, parent=_NO_PARENT):  # noqa: N802
        return 0 if parent.isValid() else self.frame.shape[1]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.UserRole) or not index.isValid():
            return None
        value = self.frame.iat[index.row(), index.column()]
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            if role == Qt.ItemDataRole.UserRole:
                return -math.inf if math.isnan(value) else value
            return "" if math.isnan(value) else float(f"{value:.6g}")
        return str(value)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)


def parametric_map(labels: np.ndarray, values: pd.Series) -> np.ndarray:
    """float32 array: each object's voxels hold its value (``values`` indexed by label), NaN elsewhere."""
    labels = np.asarray(labels)
    top = int(max(labels.max(initial=0), values.index.max() if len(values) else 0))
    lookup = np.full(top + 1, np.nan, np.float32)
    lookup[values.index.to_numpy(dtype=np.int64)] = values.to_numpy(dtype=np.float32)
    return lookup[labels]


class FeatureTableWidget(QWidget):
    """Sortable feature table linked to one Labels layer (select, centre, highlight, CSV, parametric map)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, labels_layer: napari.layers.Labels):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = labels_layer
        self.table = QTableView()
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table.setModel(self.proxy)
        self.title = QLabel()
        self.column = QComboBox()
        self.map_button = QPushButton("Colour objects by column")
        self.plot_button = QPushButton("Plot…")
        self.export_button = QPushButton("Export CSV…")
        self.import_button = QPushButton("Import CSV…")
        buttons = QHBoxLayout()
        for button in (self.export_button, self.import_button, self.plot_button):
            buttons.addWidget(button)
        mapping = QHBoxLayout()
        mapping.addWidget(self.column, 1)
        mapping.addWidget(self.map_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addLayout(mapping)
        layout.addLayout(buttons)
        self.table.clicked.connect(lambda index: self.select_row(self.proxy.mapToSource(index).row()))
        self.map_button.clicked.connect(lambda: self.add_parametric_map(self.column.currentText()))
        self.export_button.clicked.connect(self._export_dialog)
        self.import_button.clicked.connect(self._import_dialog)
        self.plot_button.clicked.connect(self.open_plot)
        self.layer.events.selected_label.connect(self._on_selected_label)
        self.plot: FeaturePlotWidget | None = None
        self.refresh()

    # ---- content ---------------------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        return self.proxy.sourceModel().frame

    def refresh(self) -> None:
        """Show the layer's current ``features``."""
        frame = pd.DataFrame(self.layer.features).reset_index(drop=True)
        self.proxy.setSourceModel(_FrameModel(frame))
        features = [c for c in frame.columns if c not in ("index", "label")]
        self.title.setText(f"{self.layer.name}: {len(frame)} objects × {len(features)} features")
        numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
        self.column.clear()
        self.column.addItems(numeric)
        if self.plot is not None:
            self.plot.set_columns(numeric)

    def row_of_label(self, value: int) -> int | None:
        if "index" not in self.frame:
            return None
        rows = np.flatnonzero(self.frame["index"].to_numpy() == value)
        return int(rows[0]) if len(rows) else None

    # ---- linking with the layer ------------------------------------------------------------------------
    def select_row(self, row: int) -> None:
        """Select the label of table row ``row`` (source order) and centre the view on it."""
        value = int(self.frame["index"].iloc[row])
        self.layer.selected_label = value
        self._on_selected_label()  # no event when the label was already selected
        self.centre_on(value)

    def centre_on(self, value: int) -> None:
        data = np.asarray(self.layer.data)
        coords = np.argwhere(data == value)
        if not len(coords):
            return
        world = np.asarray(self.layer.data_to_world(coords.mean(axis=0)))
        offset = self.viewer.dims.ndim - len(world)  # the viewer may have more dimensions than the layer
        for axis in self.viewer.dims.not_displayed:
            if axis >= offset:
                self.viewer.dims.set_point(axis, world[axis - offset])
        scene = getattr(self.viewer, "scene", None)  # napari >= 0.9; viewer.camera before
        camera = scene.camera if scene is not None else self.viewer.camera
        camera.center = tuple(world[axis - offset] for axis in self.viewer.dims.displayed if axis >= offset)

    def _on_selected_label(self, event=None) -> None:
        row = self.row_of_label(int(self.layer.selected_label))
        selection = self.table.selectionModel()
        if row is None:
            selection.clearSelection()
            return
        index = self.proxy.mapFromSource(self.proxy.sourceModel().index(row, 0))
        selection.select(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)

    def highlighted_label(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return int(self.frame["index"].iloc[self.proxy.mapToSource(rows[0]).row()])

    # ---- CSV -------------------------------------------------------------------------------------------
    def export_csv(self, path, overwrite: bool = False) -> Path:
        """Write the table (``label`` first, without napari's ``index`` column) atomically."""
        frame = self.frame.drop(columns=["index"], errors="ignore")
        with atomic_path(path, overwrite=overwrite) as temporary:
            frame.to_csv(temporary, index=False)
        return Path(path)

    def import_csv(self, path) -> None:
        """Load a table with a ``label`` column into the layer's features (rows of absent labels are refused)."""
        from ...io.tables import read_feature_table

        frame = read_feature_table(path)  # integer labels, one row each, UTF-8 with or without BOM
        present = set(np.unique(np.asarray(self.layer.data)).tolist()) - {0}
        missing = sorted(set(frame["label"].astype(int).tolist()) - present)
        if missing:
            raise ValueError(f"labels {missing[:10]} of {path} are not in layer {self.layer.name!r}")
        frame.insert(0, "index", frame["label"].astype(int))
        self.layer.features = frame
        self.refresh()

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export feature table", f"{self.layer.name}.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path, overwrite=True)  # the dialog already asked before replacing a file

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import feature table", "", "CSV (*.csv)")
        if path:
            self.import_csv(path)

    # ---- parametric map and plot -----------------------------------------------------------------------
    def add_parametric_map(self, column: str) -> napari.layers.Image:
        """An Image layer ``'<labels> <column>'`` in which each object has its value of ``column``."""
        frame = self.frame
        values = pd.Series(frame[column].to_numpy(float), index=frame["index"].astype(np.int64))
        volume = layer_to_volume(self.layer)
        array = parametric_map(np.asarray(self.layer.data), values)
        finite = values[np.isfinite(values)]
        limits = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if limits[0] == limits[1]:
            limits = (limits[0] - 0.5, limits[1] + 0.5)
        return set_or_add_layer(
            self.viewer,
            layer_data_tuple(
                volume.with_array(array),
                "image",
                name=f"{self.layer.name} {column}",
                colormap="viridis",
                contrast_limits=limits,
                blending="translucent",
                opacity=0.8,
            ),
        )

    def open_plot(self) -> FeaturePlotWidget:
        if self.plot is None:
            self.plot = FeaturePlotWidget(self)
            self.viewer.window.add_dock_widget(
                self.plot, name=f"Feature plot: {self.layer.name}", area="right"
            )
        self.plot.set_columns([self.column.itemText(i) for i in range(self.column.count())])
        return self.plot


class FeaturePlotWidget(QWidget):
    """Histogram of one feature column, or scatter plot of two, from a :class:`FeatureTableWidget`."""

    def __init__(self, table: FeatureTableWidget):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.source = table
        self.x = QComboBox()
        self.y = QComboBox()
        self.figure = Figure(figsize=(4, 3))
        self.figure.subplots_adjust(left=0.2, bottom=0.17, right=0.96, top=0.96)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        row = QHBoxLayout()
        row.addWidget(QLabel("x"))
        row.addWidget(self.x, 1)
        row.addWidget(QLabel("y"))
        row.addWidget(self.y, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)
        self.x.currentTextChanged.connect(self.draw)
        self.y.currentTextChanged.connect(self.draw)

    def set_columns(self, columns: list[str]) -> None:
        x, y = self.x.currentText(), self.y.currentText()
        for box, items, keep in ((self.x, columns, x), (self.y, [HISTOGRAM, *columns], y)):
            box.blockSignals(True)
            box.clear()
            box.addItems(items)
            if keep in items:
                box.setCurrentText(keep)
            box.blockSignals(False)
        self.draw()

    def draw(self, *_) -> None:
        frame = self.source.frame
        self.figure.clear()
        axes = self.figure.add_subplot()
        x, y = self.x.currentText(), self.y.currentText()
        if x in frame:
            values = frame[x].to_numpy(float)
            if y in frame:
                axes.scatter(values, frame[y].to_numpy(float), s=14)
                axes.set_ylabel(y)
            else:
                finite = values[np.isfinite(values)]
                axes.hist(finite, bins=min(30, max(5, len(finite) // 3)))
                axes.set_ylabel("objects")
            axes.set_xlabel(x)
        self.canvas.draw_idle()
