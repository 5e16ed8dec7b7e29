"""A dock panel bound to one layer of the viewer, chosen in a combo box that follows the layer list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QComboBox, QVBoxLayout, QWidget

if TYPE_CHECKING:
    import napari

__all__ = ["LayerPanel"]


class LayerPanel(QWidget):
    """Base of the Segments and Metadata panels: a layer combo box (layers of ``layer_types``), kept in step
    with the viewer's layer list; handlers are disconnected when the panel closes.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    layer_types : tuple of str
        napari layer type strings the combo box lists.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, layer_types: tuple[str, ...]):
        super().__init__()
        self.viewer = napari_viewer
        self.layer_types = layer_types
        self.layer_combo = QComboBox()
        self.panel_layout = QVBoxLayout(self)
        self.panel_layout.addWidget(self.layer_combo)
        self.layer_combo.currentIndexChanged.connect(self.refresh)
        self._connections = [
            (self.viewer.layers.events.inserted, self._reset_layers),
            (self.viewer.layers.events.removed, self._reset_layers),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)

    def layer(self):
        """The chosen layer (None when there is none)."""
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401 (no .get)

    def _reset_layers(self, event=None) -> None:
        current = self.layer_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if layer._type_string in self.layer_types]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)
        self.refresh()

    def refresh(self, *_) -> None:
        """Redraw the panel for the chosen layer (subclasses)."""

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        self._connections = []
        super().closeEvent(event)
