"""Metadata dock: the DICOM header of a layer's series, with PHI hidden unless the user asks for it.

An attribute counts as PHI when the DICOM PS3.15 Annex E basic profile would remove, empty, replace or remap it
(:func:`napari_medimg.io.deid.profile_action`), and every private attribute does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QCheckBox, QPlainTextEdit

from ..layers import GEOMETRY_KEY
from ._panel import LayerPanel

if TYPE_CHECKING:
    import napari

__all__ = ["MetadataWidget", "header_lines", "series_file"]


def series_file(layer) -> Path | None:
    """One DICOM file of the layer's series (from ``source_path`` and ``series_uid``), or None.

    Parameters
    ----------
    layer : napari.layers.Layer

    Returns
    -------
    pathlib.Path or None
    """
    stored = layer.metadata.get(GEOMETRY_KEY) or {}
    source = stored.get("source_path")
    if not source:
        return None
    path = Path(source)
    if path.is_file():
        return path
    from ...io.dicom import scan_dicom

    try:
        scan = scan_dicom(path)
    except Exception:  # noqa: BLE001 (a folder that moved or changed: no header to show)
        return None
    uid = stored.get("series_uid")
    for series in scan.series:
        if uid is None or series.uid == uid:
            return Path(series.frames[0].path)
    return None


def header_lines(path, show_phi: bool = False) -> list[str]:
    """``(gggg,eeee) Keyword: value`` lines of a DICOM file's header (pixels not read).

    Parameters
    ----------
    path : path-like
        A DICOM file.
    show_phi : bool
        Show the attributes the basic de-identification profile would touch (hidden by default).

    Returns
    -------
    list of str
    """
    import pydicom

    from ...io.deid import profile_action

    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    lines, hidden = [], 0
    for element in dataset.iterall():
        if element.VR == "SQ":
            continue
        phi = element.tag.is_private or profile_action(int(element.tag)) not in (None, "K")
        if phi and not show_phi:
            hidden += 1
            continue
        value = element.repval if element.VR in ("OB", "OW", "UN") else str(element.value)
        name = element.keyword or element.name
        lines.append(f"({element.tag.group:04X},{element.tag.element:04X}) {name}: {value[:120]}")
    if hidden:
        lines.insert(0, f"[{hidden} attributes hidden: patient/identifying (basic profile) or private]")
    return lines


class MetadataWidget(LayerPanel):
    """The selected layer's PHI-free summary and its series' DICOM header.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, ("image", "labels"))
        self.show_phi = QCheckBox("show patient-identifying attributes (PHI)")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.panel_layout.addWidget(self.show_phi)
        self.panel_layout.addWidget(self.text, 1)
        self.show_phi.toggled.connect(self.refresh)
        self._reset_layers()

    def refresh(self, *_) -> None:
        """Show the chosen layer's summary and header."""
        layer = self.layer()
        if layer is None:
            self.text.setPlainText("")
            return
        stored = dict(layer.metadata.get(GEOMETRY_KEY) or {})
        if not self.show_phi.isChecked():
            stored.pop("source_path", None)
        parts = ["summary:", json.dumps(stored, indent=1, default=str)]
        path = series_file(layer)
        if path is not None:
            parts += ["", "DICOM header:", *header_lines(path, self.show_phi.isChecked())]
        else:
            parts += ["", "(no DICOM file behind this layer)"]
        self.text.setPlainText("\n".join(parts))
