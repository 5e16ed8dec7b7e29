"""DICOM browser: scan a folder (headers only), see its series in a table, open the ones you pick.

Also writes a de-identified copy (PS3.15 Annex E basic profile) of the picked series, and applies the
plugin's window presets (:mod:`napari_medimg.processing.windows`) to a CT image layer (an MR layer gets an
automatic window from its values instead, and the status says so).  Nothing is scanned or written until the
user has chosen the folders.  Scanning, reading and copying run in workers with a progress bar; layers are
added on the main thread when a job is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, Label, PushButton, Select, Table, create_widget

from ...geometry import plane_name
from ...io.dicom import DicomScan, read_series
from ...io.dicom_write import deidentify_series
from ...processing.windows import CT_WINDOW_PRESETS, auto_window
from ...progress import report
from ..layers import GEOMETRY_KEY, set_or_add_layer
from ..reader import unique_names, volume_layer
from ..units import keep_units_consistent
from ..workers import start_job
from ._common import ScrollableContainer, chosen_path

if TYPE_CHECKING:
    import napari

__all__ = ["DicomBrowserWidget", "series_rows"]

COLUMNS = ["modality", "description", "slices", "size", "spacing (mm)", "plane", "warnings"]


def series_rows(scan: DicomScan) -> list[list]:
    """One table row per series (no patient data): modality, description, slices, size, spacing, plane
    (axial/sagittal/coronal, with the obliquity), and the number of warnings (listed in full below the
    table for the series picked)."""
    rows = []
    for series, name in zip(scan.series, unique_names(scan.series), strict=False):
        dimensions = series.summary()["dimensions"][-3:]
        rows.append(
            [
                series.modality,
                name,
                dimensions[0],
                f"{dimensions[1]} x {dimensions[2]}",
                " x ".join(f"{s:.3g}" for s in series.spacing),
                plane_name(series.direction),
                f"{len(series.warnings)} (see below)" if series.warnings else "",
            ]
        )
    return rows


def _read_many(chosen, progress=None):
    total = sum(series.shape[0] for _, series in chosen)
    volumes, done = [], 0
    for name, series in chosen:

        def forward(step, _total, offset=done):
            report(progress, offset + step, total)

        volumes.append((name, read_series(series, progress=forward)))
        done += series.shape[0]
    return volumes


def _deidentify_many(source, folder, uids, overwrite=False, progress=None):
    written, uid_map = [], {}  # one UID map per export: references between the series stay consistent
    for number, uid in enumerate(uids, start=1):
        target = Path(folder) if len(uids) == 1 else Path(folder) / f"series_{number:02d}"
        written += deidentify_series(
            source, target, series_uid=uid, overwrite=overwrite, progress=progress, uid_map=uid_map
        )
    return written


class DicomBrowserWidget(ScrollableContainer):
    """Pick a folder, scan it, choose series in the list, open them as layers or copy them de-identified."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        keep_units_consistent(napari_viewer)
        self.folder = FileEdit(mode="d", label="DICOM folder", value="")
        self.scan_button = PushButton(text="Scan folder (headers only)")
        self.table = Table(value={"data": [], "index": [], "columns": COLUMNS}, label="series")
        self.table.read_only = True
        self.table.min_height = 240
        self.scan: DicomScan | None = None
        # callable choices: napari re-evaluates them (reset_choices) whenever layers change
        self.choice = Select(choices=self._series_names, label="open")
        self.choice.max_height = 120
        self.open_button = PushButton(text="Open selected series")
        self.details = Label(value="")
        self.details.native.setWordWrap(True)
        self.export_folder = FileEdit(mode="d", label="copy to", value="")
        self.overwrite = CheckBox(value=False, text="replace an earlier copy made here")
        self.export_button = PushButton(text="De-identified copy of selected")
        self.window_layer = create_widget(annotation="napari.layers.Image", label="image")
        self.preset = ComboBox(choices=list(CT_WINDOW_PRESETS), value="abdomen", label="CT window")
        self.preset_button = PushButton(text="Apply window preset")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.extend(
            [
                self.folder,
                self.scan_button,
                self.status,
                self.table,
                self.choice,
                self.details,
                self.open_button,
                self.export_folder,
                self.overwrite,
                self.export_button,
                self.window_layer,
                self.preset,
                self.preset_button,
            ]
        )
        self.worker = None
        self.scan_button.changed.connect(self.scan_folder)
        self.open_button.changed.connect(self.open_selected)
        self.export_button.changed.connect(self.export_selected)
        self.preset_button.changed.connect(self.apply_preset)
        self.choice.changed.connect(self._show_details)
        self.viewer.layers.events.inserted.connect(self.window_layer.reset_choices)
        self.viewer.layers.events.removed.connect(self.window_layer.reset_choices)
        self.window_layer.reset_choices()

    # ---- helpers -----------------------------------------------------------------------------------------
    def _series_names(self, *_) -> list[str]:
        return unique_names(self.scan.series) if self.scan is not None else []

    def _busy(self, busy: bool) -> None:
        for button in (self.scan_button, self.open_button, self.export_button):
            button.enabled = not busy

    def _finished(self) -> None:
        self.worker = None
        self._busy(False)

    def _failed(self, error: BaseException) -> None:
        self.status.value = f"error: {error}"

    def selected(self) -> list[tuple[str, object]]:
        """``(layer name, series)`` of the series picked in the list."""
        if self.scan is None:
            return []
        picked = set(self.choice.value)
        return [
            (name, series)
            for name, series in zip(self._series_names(), self.scan.series, strict=False)
            if name in picked
        ]

    def _show_details(self, *_):
        """Spacing, plane and every warning of the picked series, in full, below the list."""
        lines = []
        for name, series in self.selected():
            spacing = " x ".join(f"{s:.4g}" for s in series.spacing)
            lines.append(f"{name}: {plane_name(series.direction)}, {spacing} mm")
            lines += [f"  ⚠ {warning}" for warning in series.warnings]
        self.details.value = "\n".join(lines)

    def apply_preset(self, *_):
        """Set the chosen image layer's contrast limits to a CT window preset (centre ± width / 2, in HU);
        a layer that is not CT gets an automatic window from its values, and the status says so."""
        layer = self.window_layer.value
        if layer is None:
            return
        stored = (layer.metadata or {}).get(GEOMETRY_KEY) or layer.metadata or {}
        modality = str(stored.get("modality", "")).upper()
        if modality != "CT":
            centre, width = auto_window(np.asarray(layer.data[tuple(s // 2 for s in layer.data.shape[:1])]))
            layer.contrast_limits = (centre - width / 2, centre + width / 2)
            self.status.value = (
                f"{layer.name} is {modality or 'not CT'}: CT presets do not apply; set an automatic window "
                f"from its values ({centre - width / 2:g} to {centre + width / 2:g})"
            )
            return
        centre, width = CT_WINDOW_PRESETS[self.preset.value]
        layer.contrast_limits_range = (
            min(layer.contrast_limits_range[0], centre - width / 2),
            max(layer.contrast_limits_range[1], centre + width / 2),
        )
        layer.contrast_limits = (centre - width / 2, centre + width / 2)
        self.status.value = (
            f"{layer.name}: {self.preset.value} window (centre {centre:g}, width {width:g} HU)"
        )

    # ---- actions -----------------------------------------------------------------------------------------
    def scan_folder(self, *_):
        """Header-only pass over the folder in a worker; fills the table and the choice list."""
        if self.worker is not None:
            return
        from ...io.dicom import scan_dicom

        folder = chosen_path(self.folder)
        if folder is None:
            self.status.value = "choose a DICOM folder first"
            return
        self.status.value = f"scanning {folder}…"
        self._busy(True)
        self.worker = start_job(
            scan_dicom,
            folder,
            description="Scanning DICOM headers",
            on_done=self._show,
            on_error=self._failed,
            on_finished=self._finished,
            owner=self.native,
        )

    def _show(self, scan: DicomScan) -> None:
        self.scan = scan
        rows = series_rows(scan)
        self.table.value = {"data": rows, "index": list(range(1, len(rows) + 1)), "columns": COLUMNS}
        names = self._series_names()
        self.choice.reset_choices()
        self.choice.value = names
        skipped = f", {len(scan.skipped)} file(s) skipped" if scan.skipped else ""
        self.status.value = f"{len(names)} series in {chosen_path(self.folder)}{skipped}"
        self._show_details()

    def open_selected(self, *_):
        """Read the selected series in a worker and add one image layer per series."""
        chosen = self.selected()
        if not chosen or self.worker is not None:
            return
        self.status.value = f"reading {len(chosen)} series…"
        self._busy(True)

        def done(volumes):
            for name, volume in volumes:
                set_or_add_layer(self.viewer, volume_layer(volume, name=name))
            self.status.value = f"opened {len(volumes)} series"

        self.worker = start_job(
            _read_many,
            chosen,
            description="Reading DICOM series",
            on_done=done,
            on_error=self._failed,
            on_finished=self._finished,
            owner=self.native,
        )

    def export_selected(self, *_):
        """Copy the selected series de-identified into the 'copy to' folder (one subfolder per series)."""
        chosen = self.selected()
        if not chosen or self.worker is not None or self.scan is None:
            return
        uids = list(dict.fromkeys(series.uid for _, series in chosen))
        folder = chosen_path(self.export_folder)
        if folder is None:
            self.status.value = "choose the folder the de-identified copy goes to ('copy to') first"
            return
        target = folder / "deidentified"
        self.status.value = f"writing de-identified copy to {target}…"
        self._busy(True)

        def done(written):
            self.status.value = f"{len(written)} de-identified files in {target}"

        self.worker = start_job(
            _deidentify_many,
            chosen_path(self.folder),
            target,
            uids,
            self.overwrite.value,
            description="De-identifying DICOM",
            on_done=done,
            on_error=self._failed,
            on_finished=self._finished,
            owner=self.native,
        )
