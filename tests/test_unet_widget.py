"""U-Net panel: paint → train (worker, live curve) → predict → correct → retrain from the previous weights."""

from __future__ import annotations

import numpy as np

from napari_medimg.plugin.widgets.unet import UNetWidget


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:6, :48, :48]
    truth = np.where((yy - 24) ** 2 + (xx - 22 - zz) ** 2 < 100, 2, 1).astype(np.uint8)
    image = (truth == 2) * 100.0 + rng.normal(0, 20, truth.shape)
    return image.astype(np.float32), truth


def _wait(qtbot, widget, timeout=240_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_paint_train_predict_correct_retrain(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, truth = _scene()
    layer = viewer.add_image(image, name="scan", scale=(3.0, 1.0, 1.0))
    annotations = viewer.add_labels(
        np.zeros(truth.shape, np.uint8), name="annotations", scale=(3.0, 1.0, 1.0)
    )
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    assert not widget.predict_button.enabled  # nothing to predict with yet

    # paint: a background stroke and the structure on slice 1 (brush strokes through the public API)
    annotations.brush_size = 5
    for y in range(2, 46, 3):
        annotations.paint((1, y, 4), 1)
        annotations.paint((1, y, 44), 1)
    for y in range(18, 31, 2):
        for x in range(17, 28, 2):
            annotations.paint((1, y, x), 2)
    assert set(np.unique(annotations.data[1])) == {0, 1, 2}

    widget.train_image.value, widget.annotations.value = layer, annotations
    widget.net_width.value, widget.levels.value, widget.patch.value = 8, 3, 32
    widget.iterations.value, widget.minutes.value = 60, 0.0
    widget.start_training()
    assert widget.training and not widget.predict_button.enabled  # no Predict while training runs
    widget.start_prediction()  # ignored while training
    assert "U-Net labels" not in " ".join(lay.name for lay in viewer.layers)
    _wait(qtbot, widget)
    assert widget.model is not None and widget.predict_button.enabled, widget.status.value
    first_run = list(widget.history)
    assert first_run and widget.canvas is not None and len(widget.axes.lines) == 2  # live curve drawn

    widget.image.value = layer
    assert widget.target.value == "class 2"
    widget.start_prediction()
    _wait(qtbot, widget)
    labels = viewer.layers["scan U-Net labels"]
    probability = viewer.layers["scan U-Net P(class 2)"]
    np.testing.assert_allclose(labels.scale, layer.scale)
    first_accuracy = float(np.mean(labels.data == truth))
    assert first_accuracy > 0.85, first_accuracy
    assert probability.data[truth == 2].mean() > probability.data[truth == 1].mean()

    # correct: take the prediction on slice 4, fix it where it is wrong, and add it to the annotations
    corrected = np.array(labels.data[4])
    wrong = corrected != truth[4]
    corrected[wrong] = truth[4][wrong]
    annotations.data[4] = corrected
    annotations.refresh()
    widget.iterations.value = 30
    assert widget.resume.value
    widget.start_training()
    _wait(qtbot, widget)
    second_run = widget.history
    assert widget.result.iterations == 30
    # retraining started from the previous weights: its first batches score far better than the first run's
    assert second_run[0]["loss"] < first_run[0]["loss"]
    widget.start_prediction()
    _wait(qtbot, widget)
    assert float(np.mean(viewer.layers["scan U-Net labels"].data == truth)) > 0.9


def test_save_load_and_errors(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image, truth = _scene(1)
    flat, flat_truth = image[2], truth[2]
    layer = viewer.add_image(flat, name="photo")
    sparse = np.zeros_like(flat_truth)
    sparse[::4] = flat_truth[::4]
    viewer.add_labels(np.zeros_like(flat_truth), name="empty")
    annotations = viewer.add_labels(sparse, name="strokes")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    widget.train_image.value, widget.annotations.value = layer, viewer.layers["empty"]
    widget.start_training()
    _wait(qtbot, widget)
    assert "two classes" in widget.status.value and widget.model is None
    widget.annotations.value = annotations
    widget.net_width.value, widget.levels.value, widget.patch.value = 8, 3, 32
    widget.iterations.value, widget.minutes.value = 30, 0.0
    widget.start_training()
    _wait(qtbot, widget)
    widget.save_path.value = str(tmp_path / "model")
    widget.save()
    assert (tmp_path / "model" / "config.json").is_file()
    widget.save()
    assert "not saved" in widget.status.value  # never replaces an existing model
    other = UNetWidget(viewer)
    viewer.window.add_dock_widget(other, name="U-Net 2")
    other.model_path.value = str(tmp_path / "model")
    other.load()
    assert other.model is not None and "2D U-Net" in other.status.value
    other.image.value = layer
    other.target.value = "class 1"
    other.start_prediction()
    _wait(qtbot, other)
    assert "photo U-Net P(class 1)" in viewer.layers
    assert viewer.layers["photo U-Net labels"].data.shape == flat.shape
    from napari_medimg.pipeline.steps import session_log

    steps = [step for step in session_log() if step.name == "unet_segment"][-2:]
    assert [step.output for step in steps] == ["photo U-Net labels", "photo U-Net P(class 1)"]
    assert steps[1].params == {"model": str(tmp_path / "model"), "output": "probability", "target": 1}
