"""Export an image layer (e.g. a processed volume) as a new DICOM series, de-identified by default.

Geometry comes from the layer's Volume (ImagePositionPatient per slice, ImageOrientationPatient,
PixelSpacing); values are stored as int16 with RescaleSlope/Intercept (exact for HU).  A layer read from a
DICOM series keeps that series' patient, study and frame of reference (then de-identified); any other layer
starts a new study.  The files are written in a worker into a temporary folder that is renamed when complete.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FileEdit, LineEdit, create_widget

from ...io.dicom_write import export_image_series
from ..layers import layer_to_volume
from ._common import JobWidget, chosen_path

if TYPE_CHECKING:
    import napari

__all__ = ["DicomExportWidget", "default_folder_name"]

MODALITIES = ["CT", "MR"]


def default_folder_name(layer_name: str) -> str:
    """A folder name for the export of ``layer_name`` (characters a file system may refuse replaced by ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9 ._+-]+", "_", layer_name).strip(" ._") or "image"
    return f"{cleaned} DICOM"


class DicomExportWidget(JobWidget):
    """Pick an image layer and a folder; write the layer as a DICOM series (one file per slice)."""

    cancel_message = "cancelled; nothing was written"

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Export image as DICOM series")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.parent_folder = FileEdit(mode="d", label="save in", value="")
        self.folder_name = LineEdit(label="folder name")
        self.series_description = LineEdit(label="description")
        self.series_description.tooltip = (
            "SeriesDescription of the export; kept after de-identification, since you typed it"
        )
        self.modality = ComboBox(choices=MODALITIES, value="CT", label="modality")
        self.deidentify = CheckBox(value=True, text="de-identify (PS3.15 Annex E basic profile)")
        self.overwrite = CheckBox(value=False, text="replace an existing export in that folder")
        self.extend(
            [
                self.image,
                self.parent_folder,
                self.folder_name,
                self.series_description,
                self.modality,
                self.deidentify,
                self.overwrite,
            ]
        )
        self._finish_layout()
        self.image.changed.connect(self._layer_changed)
        self._connect_layer_choices(self.image)
        self._layer_changed(self.image.value)

    def _layer_changed(self, layer) -> None:
        if layer is None:
            return
        self.folder_name.value = default_folder_name(layer.name)
        self.series_description.value = layer.name
        modality = layer_to_volume(layer).metadata.get("modality")
        if modality in MODALITIES:
            self.modality.value = modality

    @property
    def target(self) -> Path | None:
        """The folder the series is written to: ``save in`` / ``folder name`` (None until chosen)."""
        parent = chosen_path(self.parent_folder)
        if parent is None:
            return None
        return parent / (self.folder_name.value.strip() or "image DICOM")

    def export(self, *_):
        """Write the chosen layer as a DICOM series in a worker (progress bar; Cancel leaves nothing behind)."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        if getattr(layer, "rgb", False) or layer.ndim != 3:
            self.status.value = "error: DICOM series export needs a 3D single-channel image layer"
            return
        volume = layer_to_volume(layer)
        target = self.target
        if target is None:
            self.status.value = "choose the folder to save in first"
            return

        def done(result):
            context = "patient/study of the source series" if result.from_source else "a new study"
            deidentified = ", de-identified" if self.deidentify.value else ""
            self.status.value = f"{len(result.files)} files written to {target}\n({context}{deidentified})"

        self.run_job(
            export_image_series,
            volume,
            target,
            deidentify=self.deidentify.value,
            modality=self.modality.value,
            series_description=self.series_description.value.strip() or layer.name,
            overwrite=self.overwrite.value,
            description=f"Writing {layer.data.shape[0]} slices of {layer.name} as DICOM",
            on_done=done,
        )

    def apply(self, *_):
        self.export()
