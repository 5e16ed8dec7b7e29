"""Segment list, metadata dock (PHI hidden), sessions (save/open round trip) and the fusion widget."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_medimg.geometry import Volume, lps_to_world
from napari_medimg.plugin import layers as layers_module
from napari_medimg.plugin.layers import (
    GEOMETRY_KEY,
    layer_data_tuple,
    layer_frame,
    layer_to_volume,
    set_or_add_layer,
)
from napari_medimg.plugin.session import open_session, save_session
from napari_medimg.plugin.views.metadata import MetadataWidget, header_lines
from napari_medimg.plugin.views.readout import readout
from napari_medimg.plugin.views.segments import SegmentsWidget, segment_table
from napari_medimg.plugin.widgets.fusion import FusionWidget
from napari_medimg.processing.registration import rigid_matrix


def _labels_volume():
    labels = np.zeros((10, 20, 30), np.uint8)
    labels[2:5, 3:8, 4:10] = 1  # 90 voxels
    labels[6:9, 10:15, 20:28] = 3  # 120 voxels
    return Volume(labels, (2.0, 1.5, 0.5), (10.0, -5.0, 3.0))


def test_segment_list_names_visibility_and_volume(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = set_or_add_layer(viewer, layer_data_tuple(_labels_volume(), "labels", name="segmentation"))
    widget = SegmentsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segments")
    rows = segment_table(layer)
    assert [r["value"] for r in rows] == [1, 3]
    assert rows[0]["volume_ml"] == pytest.approx(90 * 1.5 / 1000) and rows[1]["volume_ml"] == pytest.approx(
        0.18
    )
    assert widget.table.rowCount() == 2
    widget.table.item(0, 1).setText("liver")  # the user types a name
    assert layer.metadata[GEOMETRY_KEY]["segments"] == {"1": "liver"}
    info = readout(viewer, layer.data_to_world((3, 5, 6)))
    assert info["layers"][0]["label"] == "liver"
    widget.table.item(1, 2).setCheckState(Qt.CheckState.Unchecked)  # hide segment 3
    assert layer.colormap.map(np.array([3]))[0][3] == 0 and layer.colormap.map(np.array([1]))[0][3] > 0
    assert np.count_nonzero(layer.data == 3) == 120  # hiding never edits the data
    assert segment_table(layer)[1]["visible"] is False


def test_metadata_hides_phi_unless_asked(make_napari_viewer, tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    assert str(dataset.PatientName)
    hidden = "\n".join(header_lines(path))
    shown = "\n".join(header_lines(path, show_phi=True))
    assert "PatientName" not in hidden and "PatientName" in shown and "attributes hidden" in hidden
    assert "PixelSpacing" in hidden and "Modality" in hidden
    viewer = make_napari_viewer()
    volume = Volume(np.zeros((2, 4, 4), np.int16), metadata={"source_path": str(path), "modality": "CT"})
    set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="ct"))
    widget = MetadataWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Metadata")
    assert "DICOM header" in widget.text.toPlainText() and "PatientName" not in widget.text.toPlainText()
    assert str(path) not in widget.text.toPlainText()
    widget.show_phi.setChecked(True)
    assert "PatientName" in widget.text.toPlainText()


def test_session_round_trip_keeps_geometry_segments_points_and_frame(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rotation = rigid_matrix((25.0, 0.0, 10.0))[:3, :3]
    array = np.arange(12 * 16 * 20, dtype=np.int16).reshape(12, 16, 20)
    volume = Volume(
        array, (2.0, 1.0, 1.0), (5.0, -3.0, 8.0), rotation @ np.eye(3)[:, ::-1], {"modality": "MR"}
    )
    layers_module.set_oblique_display("frame")
    try:
        image = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="oblique MR"))
    finally:
        layers_module.set_oblique_display("resample")
    image.contrast_limits = (10.0, 900.0)
    labels_volume = layer_to_volume(image).with_array((np.asarray(image.data) > 2000).astype(np.uint8))
    labels = set_or_add_layer(viewer, layer_data_tuple(labels_volume, "labels", name="mask"))
    labels.metadata[GEOMETRY_KEY]["segments"] = {"1": "bright"}
    lps = volume.index_to_world([3, 4, 5])
    viewer.add_points([lps_to_world(lps, layer_frame(image))], name="seeds")
    folder = tmp_path / "session"
    save_session(viewer, folder)
    with pytest.raises(Exception, match="exists|overwrite"):
        save_session(viewer, folder)
    other = make_napari_viewer()
    opened = open_session(other, folder)
    assert [layer.name for layer in opened] == ["oblique MR", "mask", "seeds"]
    again = layer_to_volume(opened[0])
    assert np.array_equal(np.asarray(opened[0].data), np.asarray(image.data))
    assert np.allclose(again.affine, layer_to_volume(image).affine, atol=1e-4)
    assert np.allclose(layer_frame(opened[0]), layer_frame(image), atol=1e-6)
    assert tuple(opened[0].contrast_limits) == pytest.approx((10.0, 900.0))
    assert opened[1].metadata[GEOMETRY_KEY]["segments"] == {"1": "bright"}
    assert np.array_equal(np.asarray(opened[1].data), np.asarray(labels.data))
    assert readout(other, opened[2].data_to_world(opened[2].data[0]))["lps"] == pytest.approx(
        lps.tolist(), abs=1e-4
    )


def test_fusion_same_frame_is_identity_overlay(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    fixed = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    moving = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT copy"))
    widget = FusionWidget(viewer)
    widget.fixed.value, widget.moving.value = fixed, moving
    widget.transform.value = "none (same frame of reference)"
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert not widget.status.value.startswith("error"), widget.status.value
    fused = viewer.layers["CT copy (fused)"]
    assert np.array_equal(np.asarray(fused.data), np.asarray(fixed.data))
    assert fused.blending == "additive" and fused.opacity == pytest.approx(0.5)
    widget.opacity.value = 0.3
    assert fused.opacity == pytest.approx(0.3)


@pytest.mark.shared_data
def test_segment_names_reach_nifti_sidecar_and_dicom_seg(make_napari_viewer, tmp_path, shared_data):
    import json

    import pydicom

    from napari_medimg.io.dicom import read_dicom
    from napari_medimg.io.nifti import sidecar_path
    from napari_medimg.plugin.writers import write_dicom_seg_layer, write_nifti_layer

    viewer = make_napari_viewer()
    layer = set_or_add_layer(viewer, layer_data_tuple(_labels_volume(), "labels", name="segmentation"))
    layer.metadata[GEOMETRY_KEY]["segments"] = {"1": "liver", "3": "lesion"}
    path = str(tmp_path / "seg.nii.gz")
    write_nifti_layer(path, layer.data, layer.as_layer_data_tuple()[1])
    assert json.loads(sidecar_path(path).read_text())["segments"] == {"1": "liver", "3": "lesion"}
    folder = shared_data / "dicom" / "siemens_xa30_t1w_sag_classic"
    image = set_or_add_layer(viewer, layer_data_tuple(read_dicom(folder, lazy=False)[0], "image", name="T1w"))
    mask = layer_to_volume(image).with_array((np.asarray(image.data) > 400).astype(np.uint8))
    labels = set_or_add_layer(viewer, layer_data_tuple(mask, "labels", name="bright"))
    labels.metadata[GEOMETRY_KEY]["segments"] = {"1": "white matter"}
    out = str(tmp_path / "seg.dcm")
    write_dicom_seg_layer(out, labels.data, labels.as_layer_data_tuple()[1])
    seg = pydicom.dcmread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["white matter"]
