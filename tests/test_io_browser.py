"""DICOM browser widget: scan a folder in a worker, table of series, open the picked ones, de-identified copy."""

from __future__ import annotations

import numpy as np
import pydicom

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.plugin.widgets.dicom_browser import COLUMNS, DicomBrowserWidget


def _write(folder, description, shape, modality="CT"):
    volume = Volume(np.random.default_rng(0).integers(0, 900, shape).astype(np.int16), (3.0, 0.9, 0.9),
                    metadata={"modality": modality})
    template = pydicom.Dataset()
    template.PatientName, template.PatientID = "Hidden^Name", "HID-5"
    write_dicom_series(volume, folder, template=template, series_description=description, modality=modality)


def test_browser_scans_lists_and_opens_selected_series(make_napari_viewer, qtbot, tmp_path):
    _write(tmp_path / "study" / "1", "abdomen CT", (5, 16, 16))
    _write(tmp_path / "study" / "2", "T2 MR", (3, 12, 10), modality="MR")
    viewer = make_napari_viewer()
    widget = DicomBrowserWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DICOM browser")  # napari now resets choices on layer changes
    widget.folder.value = tmp_path / "study"
    widget.scan_folder()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert widget.table.column_headers == tuple(COLUMNS)
    rows = sorted(widget.table.data.to_list())
    assert [row[:4] for row in rows] == [["CT", "abdomen CT", 5, "16 x 16"], ["MR", "T2 MR", 3, "12 x 10"]]
    assert rows[0][4] == "3 x 0.9 x 0.9"
    assert "Hidden" not in str(rows)
    widget.choice.value = ["T2 MR"]
    widget.open_selected()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert [layer.name for layer in viewer.layers] == ["T2 MR"]
    assert list(widget.choice.choices) == ["abdomen CT", "T2 MR"]  # still listed after layers changed
    assert viewer.layers["T2 MR"].data.shape == (3, 12, 10)
    widget.export_folder.value = tmp_path / "out"
    widget.export_selected()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    files = sorted((tmp_path / "out" / "deidentified").iterdir())
    assert len(files) == 3
    assert str(pydicom.dcmread(files[0]).PatientName) != "Hidden^Name"
    assert widget.status.value.startswith("3 de-identified files")
    widget.choice.value = ["abdomen CT"]
    widget.open_selected()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    widget.window_layer.value = viewer.layers["abdomen CT"]
    widget.preset.value = "lung"
    widget.apply_preset()
    assert viewer.layers["abdomen CT"].contrast_limits == [-1350.0, 150.0]
