"""The napari side of the foundation: sample data, layer geometry, the threshold widget and the worker bridge."""

import threading

import numpy as np
import pytest

from napari_medimg.geometry import Volume
from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.threshold import ThresholdWidget
from napari_medimg.plugin.workers import start_job
from napari_medimg.processing.threshold import automatic_threshold, threshold_mask
from napari_medimg.progress import Cancelled, report


def test_phantom_sample_opens_with_geometry_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-medimg", "ct_phantom")
    assert [layer.name for layer in viewer.layers] == ["CT phantom", "phantom tissues", "phantom lesions"]
    image = viewer.layers["CT phantom"]
    np.testing.assert_allclose(image.scale, (2.5, 0.7, 0.7))
    assert tuple(str(u) for u in image.units) == ("millimeter",) * 3
    assert image.contrast_limits == [-160.0, 240.0]  # the phantom's soft-tissue window 40/400
    lesions = viewer.layers["phantom lesions"]
    assert lesions.data.dtype == np.uint8
    assert list(lesions.features["index"]) == [1, 2, 3, 4, 5, 6]
    assert lesions.features["volume_mm3"].between(1000, 5000).all()
    # voxel (10, 20, 30) lies at the same world point in the image and its labels
    np.testing.assert_allclose(image.data_to_world((10, 20, 30)), lesions.data_to_world((10, 20, 30)))


@pytest.mark.parametrize(
    "key, name, pixel_mm", [("ct_small", "CT_small", 0.661468), ("mr_small", "MR_small", 0.3125)]
)
def test_pydicom_samples_open_with_pixel_spacing(make_napari_viewer, key, name, pixel_mm):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-medimg", key)
    layer = viewer.layers[name]
    np.testing.assert_allclose(layer.scale[1:], (pixel_mm, pixel_mm))


def test_layer_round_trip_keeps_sagittal_geometry(make_napari_viewer):
    viewer = make_napari_viewer()
    # a sagittal DICOM stack: rows along +P, columns along -S (IOP 0,1,0,0,0,-1), slices along -L
    direction = np.stack([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1)
    volume = Volume(
        np.arange(24, dtype=np.int16).reshape(2, 3, 4), (2.0, 0.5, 0.75), (4.0, -2.0, 9.0), direction
    )
    layer = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="sagittal"))
    assert layer.data.shape == (3, 4, 2)  # shown as an axial stack (S, P, L) without resampling
    back = layer_to_volume(layer)
    np.testing.assert_allclose(back.affine, volume.canonical().affine, atol=1e-9)
    # every voxel keeps its value and sits at napari's world point = reversed LPS of the original voxel
    for index in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        world = volume.index_to_world(index)
        shown = np.round(layer.world_to_data(world[::-1])).astype(int)
        assert layer.data[tuple(shown)] == volume.array[index]


def _phantom_layer(viewer, small_phantom):
    return set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))


def test_threshold_widget_otsu_preview_and_apply(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    image = _phantom_layer(viewer, small_phantom)
    widget = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = image
    widget.method.value = "otsu"
    qtbot.waitUntil(lambda: not widget.preview_busy, timeout=20000)
    assert widget.low.value == pytest.approx(
        automatic_threshold(image.data, method="otsu"), abs=0.006
    )  # the spin box shows 2 decimals

    # the preview thresholds only the slice on screen
    slice_index = 12
    viewer.dims.set_point(0, image.data_to_world((slice_index, 0, 0))[0])
    qtbot.waitUntil(lambda: not widget.preview_busy, timeout=20000)
    assert viewer.layers.selection.active is not viewer.layers[widget.preview_name]  # the image stays active
    preview = viewer.layers[widget.preview_name].data
    expected_slice = threshold_mask(image.data[slice_index], low=widget.low.value, high=widget.high.value)
    np.testing.assert_array_equal(preview[slice_index], expected_slice)
    assert preview[slice_index].any()
    assert not np.delete(preview, slice_index, axis=0).any()

    # apply to volume runs in a worker and writes a Labels layer with the image's geometry
    widget.method.value = "manual"
    widget.low.value, widget.high.value = 300.0, 3000.0
    widget.apply_to_volume()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    result = viewer.layers[widget.result_name]
    np.testing.assert_array_equal(result.data, threshold_mask(image.data, low=300.0, high=3000.0))
    np.testing.assert_allclose(result.scale, image.scale)
    assert "mL" in widget.status.value

    # re-running replaces the layer instead of stacking copies
    widget.low.value = 500.0
    widget.apply_to_volume()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert [layer.name for layer in viewer.layers].count(widget.result_name) == 1
    assert viewer.layers[widget.result_name].data.sum() < result.data.size


def test_worker_bridge_reports_progress_and_cancels(qtbot):
    release = threading.Event()
    results, ticks = [], []

    def slow(progress=None):
        for step in range(1000):
            release.wait(0.005)
            report(progress, step + 1, 1000)
        return "finished"

    finished = []
    worker = start_job(
        slow, description="slow job", on_done=results.append, on_finished=lambda: finished.append("slow")
    )
    worker.relay.advanced.connect(lambda done, total: ticks.append(done))
    qtbot.waitUntil(lambda: len(ticks) > 0, timeout=10000)
    worker.quit()
    qtbot.waitUntil(lambda: finished == ["slow"], timeout=10000)
    assert results == []  # cancelled: no result reaches the main thread
    assert ticks[-1] < 1000

    start_job(
        lambda progress=None: 42,
        description="quick job",
        on_done=results.append,
        on_finished=lambda: finished.append("quick"),
    )
    qtbot.waitUntil(lambda: finished == ["slow", "quick"], timeout=10000)
    assert results == [42]


def test_worker_bridge_passes_errors_to_handler(qtbot):
    errors = []

    def broken(progress=None):
        raise ValueError("bad input")

    finished = []
    start_job(broken, description="broken", on_error=errors.append, on_finished=lambda: finished.append(1))
    qtbot.waitUntil(lambda: finished == [1], timeout=10000)
    assert len(errors) == 1 and "bad input" in str(errors[0])
    assert not isinstance(errors[0], Cancelled)
