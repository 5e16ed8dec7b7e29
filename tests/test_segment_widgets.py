"""Preprocess, threshold extensions, region growing, label editing and fill-between-slices dock widgets."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_medimg.measure.metrics import dice
from napari_medimg.pipeline.steps import session_log
from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.interpolate import FillBetweenSlicesWidget
from napari_medimg.plugin.widgets.preprocess import PreprocessWidget
from napari_medimg.plugin.widgets.segment_tools import LabelEditWidget, RegionGrowingWidget
from napari_medimg.plugin.widgets.threshold import ThresholdWidget
from napari_medimg.processing.preprocess import denoise

TIMEOUT = 20_000


def _add(viewer, volume, kind, name):
    return set_or_add_layer(viewer, layer_data_tuple(volume, kind, name=name))


def _wait(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert not widget.status.value.startswith("error"), widget.status.value


def test_preprocess_preview_apply_and_record(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    image = _add(viewer, small_phantom.image, "image", "CT")
    widget = PreprocessWidget(viewer)
    widget.image.value = image
    widget.operation.value = "denoise"
    widget.set_params(method="gaussian", size_mm=2.0)
    viewer.dims.set_point(0, image.data_to_world((16, 0, 0))[0])
    widget.preview.value = True
    qtbot.waitUntil(lambda: not widget.preview_busy, timeout=20000)
    preview = viewer.layers["CT preview"]
    expected = denoise(small_phantom.image, method="gaussian", sigma_mm=2.0).array[16]
    np.testing.assert_allclose(preview.data[16], expected, atol=0.5)  # slab preview ≈ the whole-volume result
    assert not preview.data[5].any()
    before = len(session_log())
    widget.apply()
    _wait(qtbot, widget)
    result = viewer.layers["CT denoise"]
    np.testing.assert_allclose(
        result.data, denoise(small_phantom.image, method="gaussian", sigma_mm=2.0).array, atol=1e-4
    )
    np.testing.assert_allclose(result.scale, image.scale)
    np.testing.assert_allclose(result.translate, image.translate)
    step = session_log()[-1]
    assert len(session_log()) == before + 1 and step.name == "denoise"
    assert step.params == {"method": "gaussian", "sigma_mm": 2.0, "sigma_intensity": None}
    assert step.inputs == ["CT"] and step.output == "CT denoise"
    widget.operation.value = "resample"
    widget.set_params(spacing_mm=2.8)
    widget.apply()
    _wait(qtbot, widget)
    resampled = viewer.layers["CT resample"]
    np.testing.assert_allclose(resampled.scale, (2.8, 2.8, 2.8))
    corner = layer_to_volume(resampled).index_to_world([-0.5] * 3)
    np.testing.assert_allclose(corner, layer_to_volume(image).index_to_world([-0.5] * 3), atol=1e-6)


def test_threshold_multi_otsu_and_local(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    image = _add(viewer, small_phantom.image, "image", "CT")
    widget = ThresholdWidget(viewer)
    widget.image.value = image
    widget.method.value = "multi-otsu"
    widget.classes.value = 3
    qtbot.waitUntil(lambda: not widget.preview_busy, timeout=20000)
    assert len(widget._thresholds) == 2 and widget.status.value.startswith("thresholds ")
    widget.apply_to_volume()
    _wait(qtbot, widget)
    labels = viewer.layers["CT threshold"].data
    assert set(np.unique(labels)) == {0, 1, 2}
    bone = small_phantom.tissues.array == 3
    assert np.mean(labels[bone] == 2) > 0.8
    step = session_log()[-1]
    assert step.name == "multi_otsu"
    assert step.params == {"classes": 3, "thresholds": None, "ignore_zeros": False}
    widget.method.value = "local"
    assert widget.status.value == ""  # the multi-Otsu thresholds are not shown for another method
    widget.block_mm.value = 20.0
    qtbot.waitUntil(lambda: not widget.preview_busy, timeout=20000)
    preview = viewer.layers["CT threshold preview"]
    assert preview.data.any()
    widget.apply_to_volume()
    _wait(qtbot, widget)
    assert set(np.unique(viewer.layers["CT threshold"].data)) == {0, 1}


def test_region_growing_from_a_point_on_a_lesion(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    image = _add(viewer, small_phantom.image, "image", "CT")
    row = small_phantom.lesion_table.iloc[5]  # the enhancing lesion, 160 HU in soft tissue
    index = small_phantom.image.world_to_index([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm])
    points = viewer.add_points([image.data_to_world(index)], name="seeds")
    widget = RegionGrowingWidget(viewer)
    widget.image.value, widget.points.value = image, points
    widget.method.value = "connected threshold"
    widget.auto_range.value = False
    widget.low.value, widget.high.value = 100.0, 400.0
    widget.value.value = 6
    widget.apply()
    _wait(qtbot, widget)
    grown = viewer.layers["CT region"].data
    truth = small_phantom.lesions.array == 6
    assert set(np.unique(grown)) == {0, 6}
    assert dice(grown == 6, truth) > 0.85
    step = session_log()[-1]
    assert step.name == "region_growing" and len(step.params["seeds"]) == 1
    seeds = np.zeros(image.data.shape, np.uint8)
    k, j, i = np.round(index).astype(int)
    seeds[k, j, i] = 1
    seeds[k, j, i + 10] = 2  # background seed in the soft tissue beside the lesion, as in Slicer
    viewer.add_labels(seeds, name="seed labels", scale=image.scale, translate=image.translate)
    widget.method.value = "grow from seeds"
    widget.seeds.value = viewer.layers["seed labels"]
    widget.apply()
    _wait(qtbot, widget)
    competing = viewer.layers["CT grown"].data
    assert dice(competing == 1, truth) > 0.8 and competing[k, j, i + 10] == 2


def test_label_edit_in_place_with_undo_and_new_layers(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    labels = _add(
        viewer, small_phantom.lesions.with_array(small_phantom.lesions.array.copy()), "labels", "lesions"
    )
    original = labels.data.copy()
    widget = LabelEditWidget(viewer)
    widget.labels_layer.value = labels
    widget.value.value = 1
    widget.operation.value = "margin"
    widget.margin_mm.value = 3.0
    widget.apply()
    _wait(qtbot, widget)
    assert widget.status.value.startswith("label 1"), widget.status.value
    assert np.count_nonzero(labels.data == 1) > 1.5 * np.count_nonzero(original == 1)
    others = original > 1
    assert np.array_equal(labels.data[others], original[others])  # other lesions untouched
    assert session_log()[-1].name == "margin" and session_log()[-1].params["margin_mm"] == 3.0
    widget.undo()
    assert np.array_equal(labels.data, original)
    two = original.copy()
    two[two == 2] = 1  # lesions 1 and 2 now share a value: two islands
    labels.data = two
    widget.operation.value = "split islands"
    widget.min_size_mm3.value = 0.0
    widget.apply()
    _wait(qtbot, widget)
    assert viewer.layers["lesions split islands"].data.max() == 2
    widget.operation.value = "keep largest island"
    widget.apply()
    _wait(qtbot, widget)
    assert np.count_nonzero(labels.data == 1) == max(
        np.count_nonzero(original == 1), np.count_nonzero(original == 2)
    )
    widget.operation.value = "logical: union"
    widget.other.value = viewer.layers["lesions split islands"]
    widget.other_value.value = 2
    widget.apply()
    _wait(qtbot, widget)
    assert np.count_nonzero(labels.data == 1) == np.count_nonzero(two == 1)


def test_fill_between_slices_widget(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    truth = phantom.lesions.array
    painted = np.zeros_like(truth)
    painted[:, ::4] = truth[:, ::4]
    labels = _add(viewer, phantom.lesions.with_array(painted), "labels", "painted")
    widget = FillBetweenSlicesWidget(viewer)
    widget.labels_layer.value = labels
    assert widget.params()["axis"] == 0  # by default the axis the viewer's slider moves along
    viewer.dims.order = (1, 0, 2)  # now the slider moves along y (coronal slices)
    assert widget.params()["axis"] == 1
    viewer.dims.order = (0, 1, 2)
    widget.axis.value = "1 (rows, y)"
    widget.apply()
    _wait(qtbot, widget)
    for value in range(1, 7):
        assert dice(labels.data == value, truth == value) >= 0.9
    assert np.array_equal(labels.data[:, ::4], truth[:, ::4])
    assert session_log()[-1].name == "fill_between_slices" and session_log()[-1].params["axis"] == 1
    widget.undo()
    assert np.array_equal(labels.data, painted)


def test_viewer_stays_responsive_while_a_volume_job_runs(make_napari_viewer, qtbot, phantom):
    """A QTimer probe ticking every 10 ms keeps ticking while the denoise job runs in its worker (adding the
    finished result as a layer, on the main thread, is napari's own work and is not probed).  The bound is
    loose so a loaded CI machine cannot fail it; a job run on the main thread would stall the probe for the
    whole job (seconds).  The 100 ms target is measured in benchmarks/bench_segment.py --only responsive."""
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    image = _add(viewer, phantom.image, "image", "CT")
    widget = PreprocessWidget(viewer)
    widget.image.value = image
    widget.operation.value = "denoise"
    widget.set_params(method="median", size_mm=1.5)
    ticks = []
    timer = QTimer()

    def probe():
        if widget.worker is not None and widget.worker.is_running:
            ticks.append(time.perf_counter())

    timer.timeout.connect(probe)
    timer.start(10)
    widget.apply()
    _wait(qtbot, widget)
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 20
    assert gaps.max() < 0.5, f"longest event-loop gap {gaps.max() * 1000:.0f} ms"
    assert "CT denoise" in viewer.layers


@pytest.mark.parametrize(
    "cls", [PreprocessWidget, RegionGrowingWidget, LabelEditWidget, FillBetweenSlicesWidget]
)
def test_widgets_open_from_the_manifest(make_napari_viewer, cls):
    viewer = make_napari_viewer()
    names = {
        PreprocessWidget: "Preprocess",
        RegionGrowingWidget: "Region growing",
        LabelEditWidget: "Morphology and islands",
        FillBetweenSlicesWidget: "Fill between slices",
    }
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", names[cls])
    assert isinstance(widget, cls)
