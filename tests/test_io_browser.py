"""DICOM widgets: the browser (scan, table of series, open, de-identified copy) and the layer export."""

from __future__ import annotations

import numpy as np
import pydicom

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.dicom_browser import COLUMNS, DicomBrowserWidget
from napari_medimg.plugin.widgets.dicom_export import DicomExportWidget


def _write(folder, description, shape, modality="CT"):
    volume = Volume(
        np.random.default_rng(0).integers(0, 900, shape).astype(np.int16),
        (3.0, 0.9, 0.9),
        metadata={"modality": modality},
    )
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
    files = sorted((tmp_path / "out" / "deidentified").glob("*.dcm"))
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


def test_export_widget_writes_layers_as_dicom_series(make_napari_viewer, qtbot, tmp_path, small_phantom):
    viewer = make_napari_viewer()
    phantom = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT phantom"))
    _write(tmp_path / "source", "abdomen CT", (5, 16, 16))
    (opened,) = viewer.open(str(tmp_path / "source"), plugin="napari-medimg")
    viewer.add_image(np.zeros((8, 8)), name="flat")
    widget = DicomExportWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Export image as DICOM series")
    widget.parent_folder.value = tmp_path / "exports"

    widget.image.value = phantom
    assert widget.folder_name.value == "CT phantom DICOM" and widget.deidentify.value is True
    widget.export()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    target = tmp_path / "exports" / "CT phantom DICOM"
    assert widget.status.value == f"32 files written to {target}\n(a new study, de-identified)"
    (back,) = read_dicom(target)
    assert np.array_equal(back.array, phantom.data)
    assert np.allclose(back.affine, layer_to_volume(phantom).affine, atol=1e-3)
    written = sorted(target.glob("*.dcm"))

    widget.export()  # the folder is not empty now: refused, nothing changed
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert "not empty" in widget.status.value and sorted(target.glob("*.dcm")) == written
    first_uid = pydicom.dcmread(written[0]).SOPInstanceUID
    widget.overwrite.value = True
    widget.export()
    widget.cancel()  # cancelled before the first slice is done: the temporary folder goes, the old export stays
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert widget.status.value == "cancelled; nothing was written"
    assert sorted(target.glob("*.dcm")) == written and pydicom.dcmread(written[0]).SOPInstanceUID == first_uid
    assert not [p for p in (tmp_path / "exports").iterdir() if p.name.startswith(".")]

    widget.image.value = opened
    assert widget.folder_name.value == "abdomen CT DICOM" and widget.modality.value == "CT"
    widget.series_description.value = "liver follow-up, my export"
    widget.export()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert "(patient/study of the source series, de-identified)" in widget.status.value
    files = sorted((tmp_path / "exports" / "abdomen CT DICOM").glob("*.dcm"))
    source = pydicom.dcmread(next((tmp_path / "source").glob("*.dcm")))
    exported = [pydicom.dcmread(p) for p in files]
    assert len(exported) == 5 and all(d.PatientIdentityRemoved == "YES" for d in exported)
    assert {d.SeriesDescription for d in exported} == {"liver follow-up, my export"}  # typed: not PHI
    assert all(str(d.PatientName) != "Hidden^Name" and d.PatientID != "HID-5" for d in exported)
    assert (
        len({d.StudyInstanceUID for d in exported}) == 1
        and exported[0].StudyInstanceUID != source.StudyInstanceUID
    )
    (back,) = read_dicom(tmp_path / "exports" / "abdomen CT DICOM")
    assert np.array_equal(back.array, np.asarray(opened.data))

    widget.image.value = viewer.layers["flat"]
    widget.export()
    assert widget.worker is None and widget.status.value.startswith("error: DICOM series export needs a 3D")


def test_browser_asks_for_folders_and_speaks_in_planes_and_full_paths(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a launch folder with a series in it must not be scanned or written to
    _write(tmp_path / "launch" / "1", "not mine", (2, 8, 8))
    study = tmp_path / "study"
    sagittal = Volume(
        np.zeros((4, 8, 8), np.int16),
        (2.0, 1.0, 1.0),
        direction=np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T @ np.eye(3),
        metadata={"modality": "MR"},
    )
    write_dicom_series(sagittal, study / "2", series_description="T1 sag", modality="MR")
    viewer = make_napari_viewer()
    widget = DicomBrowserWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DICOM browser")
    widget.scan_folder()
    assert widget.worker is None and widget.status.value == "choose a DICOM folder first"
    widget.folder.value = study
    widget.scan_folder()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert str(study) in widget.status.value  # the full path, not only the folder's name
    (row,) = widget.table.data.to_list()
    assert row[COLUMNS.index("plane")] == "sagittal"
    assert "T1 sag: sagittal, 2 x 1 x 1 mm" in widget.details.value
    widget.export_selected()
    assert widget.status.value.startswith("choose the folder the de-identified copy goes to")
    assert not (tmp_path / "deidentified").exists()
    widget.open_selected()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    widget.window_layer.value = viewer.layers["T1 sag"]
    widget.preset.value = "lung"
    widget.apply_preset()
    assert "is MR: CT presets do not apply" in widget.status.value
    assert viewer.layers["T1 sag"].contrast_limits != [-1350.0, 150.0]


def test_browser_replaces_an_earlier_copy_only_when_asked(make_napari_viewer, qtbot, tmp_path):
    _write(tmp_path / "study" / "1", "abdomen CT", (3, 8, 8))
    viewer = make_napari_viewer()
    widget = DicomBrowserWidget(viewer)
    widget.folder.value, widget.export_folder.value = tmp_path / "study", tmp_path / "out"
    widget.scan_folder()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    for overwrite, expected in (
        (False, "de-identified files"),
        (False, "error"),
        (True, "de-identified files"),
    ):
        widget.overwrite.value = overwrite
        widget.export_selected()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
        assert expected in widget.status.value
