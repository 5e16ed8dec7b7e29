"""napari end to end: phantom lesions measured, classes painted, trained, predicted back as layers; pixel classifier
strokes → live preview → whole-image segmentation layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_medimg.measure import compute_features
from napari_medimg.pipeline.steps import session_log
from napari_medimg.plugin.widgets.classify import (
    ClassifierPlotsWidget,
    ObjectClassifierWidget,
    PixelClassifierWidget,
    painted_classes,
)


def test_painted_classes_majority_vote():
    objects = np.array([[1, 1, 1, 0], [2, 2, 0, 3]])
    classes = np.array([[2, 1, 1, 5], [0, 2, 0, 0]])
    assert painted_classes(objects, classes) == {1: 1, 2: 2}


def _wait_done(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


@pytest.mark.slow
def test_objects_measured_painted_trained_predicted(make_napari_viewer, qtbot, small_phantom, tmp_path):
    viewer = make_napari_viewer()
    lesions, image = small_phantom.lesions, small_phantom.image
    geometry = image.napari_geometry()
    viewer.add_image(np.asarray(image.array), name="CT", **geometry)
    table = compute_features(lesions, np.asarray(image.array), groups=("shape", "firstorder"), bin_width=25.0)
    objects = viewer.add_labels(np.asarray(lesions.array), name="lesions", **geometry)
    objects.features = table.assign(index=table["label"])

    # paint a class stroke (a few voxels at the centre) onto each lesion: 1 = lung nodule, 2 = other
    painted = np.zeros(lesions.shape, np.uint8)
    for label in range(1, 7):
        voxels = np.argwhere(np.asarray(lesions.array) == label)
        centre = voxels[len(voxels) // 2]
        painted[tuple(centre)] = 1 if label <= 3 else 2
        painted[tuple(voxels[0])] = 1 if label <= 3 else 2
    viewer.add_labels(painted, name="classes", **geometry)

    widget = ObjectClassifierWidget(viewer)
    widget.objects.value = objects
    widget.class_source.value = "classes"
    widget.model.value = "forest"
    widget.folds.value = 3
    widget.n_estimators.value = 50
    widget.apply()
    _wait_done(qtbot, widget)
    assert widget.classifier is not None, widget.status.value
    assert widget.classifier.metrics["n"] == 6 and widget.classifier.metrics["folds"] == 3
    assert "3-fold CV on 6 objects" in widget.summary.value
    plots = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ClassifierPlotsWidget)]
    assert plots and len(plots[0].figure.axes) == 3  # confusion matrix, ROC, importances

    widget.predict()
    result = viewer.layers["lesions classes"]
    features = pd.DataFrame(result.features)
    assert list(features["label"]) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(features["predicted_class"].astype(int), [1, 1, 1, 2, 2, 2])
    np.testing.assert_allclose(features[["probability_1", "probability_2"]].sum(axis=1), 1.0)
    np.testing.assert_array_equal(result.data, lesions.array)
    colours = result.colormap.color_dict
    assert np.allclose(colours[1], colours[2]) and not np.allclose(colours[1], colours[4])
    assert session_log()[-1].name == "classify_objects"

    # save, load into a fresh widget, same predictions
    widget.model_path.value = tmp_path / "lesions.skops"
    widget.save()
    assert (tmp_path / "lesions.skops").is_file(), widget.status.value
    other = ObjectClassifierWidget(viewer)
    other.objects.value = objects
    other.model_path.value = tmp_path / "lesions.skops"
    other.load()
    assert other.classifier is not None and other.predict_button.enabled
    other.predict()
    np.testing.assert_array_equal(
        pd.DataFrame(viewer.layers["lesions classes"].features)["predicted_class"].astype(int),
        [1, 1, 1, 2, 2, 2],
    )


def test_object_widget_refuses_without_classes(make_napari_viewer, small_phantom):
    viewer = make_napari_viewer()
    objects = viewer.add_labels(np.asarray(small_phantom.lesions.array), name="lesions")
    widget = ObjectClassifierWidget(viewer)
    widget.objects.value = objects
    widget.apply()
    assert "no features" in widget.status.value and widget.worker is None


def _tubes(shape=(128, 128), seed=0):
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, bool)
    for k in range(5):
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-40, 40)
        distance = np.abs(
            (rows - shape[0] / 2) * np.cos(angle) - (columns - shape[1] / 2) * np.sin(angle) - offset
        )
        truth |= distance < (1.5 if k % 2 else 3.0)
    return (100 + 60 * truth + rng.normal(0, 12, shape)).astype(np.float32), truth


@pytest.mark.parametrize("three_d", [False, True])
def test_pixel_strokes_preview_segment(make_napari_viewer, qtbot, three_d):
    viewer = make_napari_viewer()
    image, truth = _tubes()
    if three_d:
        image, truth = np.stack([image] * 6), np.stack([truth] * 6)
    layer = viewer.add_image(image, name="vessels")
    strokes = np.zeros(image.shape, np.uint8)
    rng = np.random.default_rng(1)
    sparse = rng.random(image.shape) < 0.04
    if three_d:
        sparse[[0, 1, 3, 4, 5]] = False
    strokes[sparse] = np.where(truth[sparse], 2, 1)
    stroke_layer = viewer.add_labels(strokes, name="strokes")

    widget = PixelClassifierWidget(viewer)
    widget.image.value = layer
    widget.strokes.value = stroke_layer
    widget.sigmas.value = "1,2"
    widget.trees.value = 16
    widget.apply()
    _wait_done(qtbot, widget)
    assert widget.classifier is not None, widget.status.value
    qtbot.waitUntil(
        lambda: "vessels preview" in viewer.layers and widget._preview_worker is None, timeout=60_000
    )
    preview = viewer.layers["vessels preview"]
    shown = preview.data if not three_d else preview.data[preview.metadata["preview_slice"]]
    reference = truth if not three_d else truth[0]
    dice = 2 * ((shown == 2) & reference).sum() / ((shown == 2).sum() + reference.sum())
    assert dice > 0.8
    if three_d:  # moving to another slice refreshes the preview there
        viewer.dims.set_current_step(0, 4)
        qtbot.waitUntil(
            lambda: viewer.layers["vessels preview"].metadata.get("preview_slice") == 4, timeout=60_000
        )

    widget.segment()
    _wait_done(qtbot, widget)
    classes = viewer.layers["vessels pixel classes"]
    assert classes.data.shape == image.shape
    dice = 2 * ((classes.data == 2) & truth).sum() / ((classes.data == 2).sum() + truth.sum())
    assert dice > 0.8
    probability = viewer.layers["vessels P(class 2)"]
    assert probability.data.shape == image.shape and float(probability.data.max()) <= 1.0
    assert session_log()[-1].name == "pixel_classify"
    qtbot.waitUntil(lambda: widget._preview_worker is None, timeout=60_000)
