"""The Measure objects widget and its table dock: features on the layer, selection both ways, CSV, map, plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.plugin.widgets.feature_table import HISTOGRAM
from napari_medimg.plugin.widgets.measure import MeasureWidget


@pytest.fixture
def measured(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    ct = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    lesions = set_or_add_layer(viewer, layer_data_tuple(small_phantom.lesions, "labels", name="lesions"))
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.value = lesions
    widget.images.value = [ct]
    for group in ("glrlm", "glszm", "gldm"):
        widget.groups[group].value = False
    widget.bin_width.value = 10.0
    widget.measure()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    return viewer, widget, lesions


def test_measure_writes_features_and_opens_a_linked_table(measured, small_phantom):
    viewer, widget, lesions = measured
    features = lesions.features
    truth = small_phantom.lesion_table
    assert features["index"].tolist() == truth["label"].tolist() == features["label"].tolist()
    np.testing.assert_allclose(features["shape_VoxelVolume"], truth["voxel_volume_mm3"], rtol=1e-9)
    assert (
        "glcm_Contrast" in features and "ngtdm_Busyness" in features and "glrlm_RunVariance" not in features
    )
    assert widget.status.value.startswith("6 objects")
    table = widget.tables["lesions"]
    assert table.proxy.rowCount() == 6

    # clicking a row selects the label and moves the slice to the object's centre
    row = table.row_of_label(4)
    table.select_row(row)
    assert lesions.selected_label == 4
    z_centre = np.argwhere(np.asarray(lesions.data) == 4)[:, 0].mean()
    shown_z = lesions.world_to_data(viewer.dims.point)[0]
    assert shown_z == pytest.approx(z_centre, abs=0.51)
    # selecting a label in the layer highlights its row
    lesions.selected_label = 2
    assert table.highlighted_label() == 2

    # numeric sort on a column, largest first
    column = list(table.frame.columns).index("shape_VoxelVolume")
    table.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    first = table.proxy.mapToSource(table.proxy.index(0, 0)).row()
    assert table.frame["index"].iloc[first] == truth.loc[truth["voxel_volume_mm3"].idxmax(), "label"]


def test_csv_round_trip_parametric_map_and_plot(measured, tmp_path):
    viewer, widget, lesions = measured
    table = widget.tables["lesions"]
    path = table.export_csv(tmp_path / "lesions.csv")
    exported = pd.read_csv(path)
    assert exported.columns[0] == "label" and "index" not in exported
    with pytest.raises(FileExistsError):
        table.export_csv(path)

    edited = exported[["label", "firstorder_Mean"]].assign(grade=[1, 2, 3, 1, 2, 3])
    edited.to_csv(tmp_path / "edited.csv", index=False)
    table.import_csv(tmp_path / "edited.csv")
    assert lesions.features["grade"].tolist() == [1, 2, 3, 1, 2, 3]
    assert table.proxy.columnCount() == 4  # index, label, firstorder_Mean, grade
    pd.DataFrame({"label": [99]}).to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(ValueError, match="not in layer"):
        table.import_csv(tmp_path / "wrong.csv")

    layer = table.add_parametric_map("grade")
    assert layer.name == "lesions grade"
    data, labels = np.asarray(layer.data), np.asarray(lesions.data)
    assert np.all(data[labels == 3] == 3) and np.isnan(data[labels == 0]).all()
    np.testing.assert_allclose(layer.scale, lesions.scale)

    plot = table.open_plot()
    plot.x.setCurrentText("firstorder_Mean")
    plot.y.setCurrentText("grade")
    assert len(plot.figure.axes[0].collections) == 1  # a scatter
    plot.y.setCurrentText(HISTOGRAM)
    assert len(plot.figure.axes[0].patches) > 0  # histogram bars


def test_widget_refuses_texture_without_an_image(make_napari_viewer, small_phantom):
    viewer = make_napari_viewer()
    set_or_add_layer(viewer, layer_data_tuple(small_phantom.lesions, "labels", name="lesions"))
    widget = MeasureWidget(viewer)
    widget.measure()
    assert widget.worker is None and "image" in widget.status.value
