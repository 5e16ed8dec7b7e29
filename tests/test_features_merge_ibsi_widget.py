"""Measure objects merges its columns into the labels layer's features by label (issue 11 item 6) and has an
IBSI mode with the IBSI settings (issue 16)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_medimg.measure.ibsi import IBSISettings, compute_ibsi_features
from napari_medimg.pipeline.steps import session_log
from napari_medimg.plugin.layers import layer_data_tuple
from napari_medimg.plugin.widgets.measure import MeasureWidget, merge_features


def _add(viewer, volume, kind, name):
    data, kwargs, _ = layer_data_tuple(volume, kind, name=name)
    return viewer.add_image(data, **kwargs) if kind == "image" else viewer.add_labels(data, **kwargs)


@pytest.fixture
def viewer_with_lesions(make_napari_viewer, small_phantom):
    viewer = make_napari_viewer()
    ct = _add(viewer, small_phantom.image, "image", "CT")
    lesions = _add(viewer, small_phantom.lesions, "labels", "lesions")
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.value = lesions
    widget.images.value = [ct]
    return viewer, widget, lesions


def _run(widget, qtbot):
    widget.measure()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)


def test_merge_features_keeps_user_columns_and_rows():
    user = pd.DataFrame(
        {"index": [3, 1, 2], "class": ["benign", "malignant", "benign"], "name": ["c", "a", "b"]}
    )
    new = pd.DataFrame({"label": [1, 2], "shape_VoxelVolume": [10.0, 20.0]})
    merged = merge_features(user, new)
    assert merged.columns[:2].tolist() == ["index", "label"]
    assert merged["label"].tolist() == [1, 2, 3]  # label 3 was not measured: its row is kept
    assert merged["class"].tolist() == ["malignant", "benign", "benign"]
    assert merged["name"].tolist() == ["a", "b", "c"]
    assert merged["shape_VoxelVolume"].iloc[:2].tolist() == [10.0, 20.0] and np.isnan(
        merged["shape_VoxelVolume"][2]
    )
    # a second measurement replaces our stale columns, never the user's
    again = merge_features(
        merged, pd.DataFrame({"label": [1, 2], "firstorder_Mean": [5.0, 6.0]}), ["shape_VoxelVolume"]
    )
    assert "shape_VoxelVolume" not in again and again["class"].tolist() == ["malignant", "benign", "benign"]
    # features without an index column: napari's convention, row number = label value
    positional = merge_features(pd.DataFrame({"note": ["bg", "one", "two"]}), new)
    assert positional.loc[positional["label"] == 2, "note"].item() == "two"


def test_measure_widget_merges_by_label_and_keeps_class_column(viewer_with_lesions, qtbot, small_phantom):
    viewer, widget, lesions = viewer_with_lesions
    truth = small_phantom.lesion_table
    labels = truth["label"].tolist()
    # the user names the lesions and adds a class column, in a different row order, before measuring
    lesions.features = pd.DataFrame(
        {
            "index": labels[::-1],
            "class": ["a", "b", "a", "b", "a", "b"],
            "lesion": [f"L{v}" for v in labels[::-1]],
        }
    )
    for group in ("glcm", "glrlm", "glszm", "gldm", "ngtdm"):
        widget.groups[group].value = False
    _run(widget, qtbot)
    features = lesions.features
    assert features["index"].tolist() == labels and features["label"].tolist() == labels
    assert features["lesion"].tolist() == [f"L{v}" for v in labels]
    assert features.set_index("label")["class"].to_dict() == dict(
        zip(labels[::-1], ["a", "b", "a", "b", "a", "b"], strict=True)
    )
    np.testing.assert_allclose(features["shape_VoxelVolume"], truth["voxel_volume_mm3"], rtol=1e-9)
    assert "kept class, lesion" in widget.status.value
    # measuring again with other groups: the old feature columns go, the user's stay
    widget.groups["shape"].value = False
    _run(widget, qtbot)
    features = lesions.features
    assert "shape_VoxelVolume" not in features and "firstorder_Mean" in features
    assert features["lesion"].tolist() == [f"L{v}" for v in labels]
    assert widget.tables["lesions"].proxy.rowCount() == len(labels)


def test_measure_widget_ibsi_mode(viewer_with_lesions, qtbot, small_phantom):
    viewer, widget, lesions = viewer_with_lesions
    assert widget.ibsi.native.isHidden()
    widget.mode.value = "IBSI"
    assert not widget.ibsi.native.isHidden()  # shown in IBSI mode (hidden in the default mode)
    for group in ("glrlm", "glszm", "gldm", "ngtdm"):
        widget.groups[group].value = False
    widget.by_slice.value = True
    widget.reseg.value = True
    widget.reseg_low.value, widget.reseg_high.value = -200.0, 300.0
    assert widget.bin_count.native.isHidden() and not widget.bin_width.native.isHidden()
    widget.discretisation.value = "bin count"
    assert not widget.bin_count.native.isHidden() and widget.bin_width.native.isHidden()
    widget.bin_count.value = 16
    lesions.features = pd.DataFrame({"index": [1], "class": ["x"]})
    before = len(session_log())
    _run(widget, qtbot)
    features = lesions.features
    assert widget.status.value.startswith("6 objects"), widget.status.value
    assert "cm_joint_max_2D_avg" in features and "cm_joint_max_3D_avg" not in features
    assert "morph_volume" in features and "stat_kurt" in features and "ih_max" in features
    assert features.loc[features["label"] == 1, "class"].item() == "x"
    settings = IBSISettings(by_slice=True, reseg_range=(-200.0, 300.0), bin_count=16)
    direct = compute_ibsi_features(
        small_phantom.lesions,
        small_phantom.image,
        settings=settings,
        families=["shape", "firstorder", "glcm"],
    )
    for column in (
        "morph_volume",
        "stat_mean",
        "ih_entropy",
        "cm_contrast_2D_comb",
        "int_mask_vox_count_reseg_roi",
    ):
        np.testing.assert_allclose(
            features[column].to_numpy(float), direct[column].to_numpy(float), rtol=1e-9
        )
    assert features["ih_max"].max() == 16
    step = session_log().steps[before:][-1]
    assert step.name == "features" and step.params["ibsi"] and step.params["bin_count"] == 16
    assert step.params["reseg_range"] == [-200.0, 300.0]
    # IBSI mode measures one image
    widget.images.value = []
    widget.measure()
    assert widget.worker is None and "image" in widget.status.value
