"""CNN panel: predictions land as layers with the source geometry; training runs in a worker with live curves."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.geometry import Volume
from napari_medimg.learn.cnn.data import ImageSet
from napari_medimg.learn.cnn.files import LoadedModel
from napari_medimg.learn.cnn.models import ModelConfig
from napari_medimg.learn.cnn.predict import predict
from napari_medimg.learn.cnn.train import TrainConfig, train
from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.cnn import CLASS_COLOURS, CNNWidget

FAST = {
    "batch_size": 16,
    "lr": 1e-2,
    "warmup_epochs": 0.5,
    "rotate_deg": 0,
    "scale": 0,
    "translate": 0,
    "intensity": 0,
    "flip_axes": [],
    "ema_epochs": 0,
    "threads": 1,
}


def blobs(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.3, (n, 1, size, size)).astype(np.float32)
    labels = np.arange(n) % 2
    for i, label in enumerate(labels):
        images[i, 0, 5:11, 5:11] += 2.0 if label else 0.0
        images[i, 0, 0:6, 0:6] += 0.0 if label else 2.0
    return ImageSet(images, labels, ["corner", "centre"])


@pytest.fixture(scope="module")
def model():
    result = train(
        blobs(32),
        blobs(16, seed=1),
        ModelConfig(width=8, depths=[1, 1], dropout=0.0),
        TrainConfig(epochs=4, **FAST),
    )
    return LoadedModel(result.model, result.meta())


def _blobs_npz(tmp_path):
    """A MedMNIST-style .npz of the blob images (64 train, 32 val)."""
    train_set, val_set = blobs(64), blobs(32, seed=1)
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        train_images=(train_set.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8),
        train_labels=train_set.labels,
        val_images=(val_set.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8),
        val_labels=val_set.labels,
    )
    return path


def _widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = CNNWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CNN classifier")
    return viewer, widget


def _geometry(layer):
    return np.asarray(layer.scale), np.asarray(layer.translate), np.asarray(layer.affine.affine_matrix)


def test_predictions_land_as_layers_with_the_source_geometry(make_napari_viewer, qtbot, model):
    viewer, widget = _widget(make_napari_viewer)
    array = np.random.default_rng(0).normal(0, 0.3, (4, 32, 32)).astype(np.float32)
    array[0:2, 10:22, 10:22] += 2.0
    array[2:4, 0:12, 0:12] += 2.0
    angle = np.radians(20)
    direction = np.array([[0, np.sin(angle), np.cos(angle)], [0, np.cos(angle), -np.sin(angle)], [1, 0, 0]])
    volume = Volume(array, (2.5, 0.7, 0.7), (-30.0, 12.0, 40.0), direction)
    source = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="scan"))
    widget.model = model
    widget.image.value = source
    widget.objects.value = None
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)

    names = widget.result_names
    probability, saliency, classes = (viewer.layers[names[k]] for k in ("probability", "saliency", "classes"))
    for layer in (probability, saliency, classes):
        for mine, theirs in zip(_geometry(layer), _geometry(source), strict=False):
            assert np.allclose(mine, theirs)
        assert layer.data.shape == source.data.shape
    assert probability.colormap.name == "magma" and 0 < probability.opacity < 1
    assert saliency.colormap.name == "hot" and saliency.data.max() <= 1
    slices = classes.metadata["cnn_predictions"]
    # the oblique scan is shown resampled on napari's axes: predictions are those of the displayed slices
    expected_slices = predict(model, np.asarray(source.data)).table
    assert slices["class_name"] == expected_slices["class_name"].tolist()
    assert np.allclose(probability.data[:, 0, 0], slices["p_centre"])
    assert set(classes.features.columns) >= {"index", "class_name", "n_slices", "mean_p_centre"}
    counts = expected_slices["class_name"].value_counts()
    assert classes.features["n_slices"].tolist() == [counts.get("corner", 0), counts.get("centre", 0)]
    assert len(widget.axes.lines) == 2  # per-slice probability of each class along the slice axis
    assert "4 slices" in widget.status.value

    labels = np.zeros(array.shape, np.uint16)
    labels[1, 10:22, 10:22] = 5
    labels[2:4, 0:12, 0:12] = 9
    objects = set_or_add_layer(viewer, layer_data_tuple(volume.with_array(labels), "labels", name="objects"))
    widget.objects.value = objects
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    classes = viewer.layers[names["classes"]]
    assert len([layer for layer in viewer.layers if layer.name == names["classes"]]) == 1
    assert set(np.unique(classes.data)) == {0, 5, 9}
    features = classes.features.set_index("index")
    shown = layer_to_volume(source)  # the displayed (resampled) scan and objects are what is classified
    expected = predict(model, np.asarray(source.data), labels=np.asarray(objects.data), spacing=shown.spacing)
    expected = expected.table.set_index("label")
    assert features.loc[5, "class_name"] == "centre"  # a centred blob inside its object's patch
    assert np.allclose(features.loc[[5, 9], "p_centre"], expected.loc[[5, 9], "p_centre"])
    assert features.loc[5, "p_centre"] > 0.5 and {"p_corner", "voxels"} <= set(features.columns)
    assert np.allclose(classes.colormap.map(np.array([5]))[0], CLASS_COLOURS[1])
    for mine, theirs in zip(_geometry(classes), _geometry(source), strict=False):
        assert np.allclose(mine, theirs)


def test_training_runs_in_a_worker_with_live_curves_and_cancel_keeps_the_best(
    make_napari_viewer, qtbot, tmp_path
):
    from qtpy.QtCore import QTimer

    viewer, widget = _widget(make_napari_viewer)
    path = _blobs_npz(tmp_path)
    widget.data_path.value = path
    widget.net_width.value, widget.depths.value, widget.epochs.value = 8, "1 1", 500
    widget.minutes.value = 0.0
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    widget.start_training()
    assert widget.worker is not None and not widget.train_button.enabled
    # the event loop keeps running while the worker trains (500 epochs: still training when this holds)
    qtbot.waitUntil(lambda: len(widget.history) >= 3 and len(ticks) >= 10, timeout=60000)
    timer.stop()
    assert widget.worker is not None
    assert len(widget.axes.lines) >= 4  # live curves drawn from the relayed epochs
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert widget.result.stopped == "cancelled" and len(widget.result.history) < 500
    assert widget.model is not None and widget.model.class_names == ["0", "1"]
    best = max(widget.result.history, key=lambda r: (round(r["val_auc"], 6), -r["val_loss"]))
    assert widget.result.best_epoch == best["epoch"]
    assert "cancelled" in widget.status.value and widget.train_button.enabled


def _spheres():
    """A CT-like volume (anisotropic voxels) with 16 spheres of 3 mm, alternately dense and cyst-like."""
    shape, spacing = (8, 48, 48), (4.0, 0.75, 0.75)
    rng = np.random.default_rng(0)
    image = rng.normal(40, 10, shape).astype(np.float32)
    labels = np.zeros(shape, np.int32)
    mm = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=False)], indexing="ij", sparse=True
    )
    for label in range(1, 17):
        row, column = divmod(label - 1, 4)
        inside = (
            sum((g - c) ** 2 for g, c in zip(mm, (14.0, 4.5 + 9 * row, 4.5 + 9 * column), strict=False))
            <= 9.0
        )
        labels[inside] = label
        image[inside] = rng.normal(200 if label % 2 else -100, 10, int(inside.sum()))
    return Volume(image, spacing, (-20.0, 30.0, 5.0)), labels


def test_training_from_layers_object_patches_then_per_object_prediction(make_napari_viewer, qtbot):
    import pandas as pd

    viewer, widget = _widget(make_napari_viewer)
    volume, labels = _spheres()
    image = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="scan"))
    features = pd.DataFrame(
        {"index": np.arange(1, 17), "kind": ["dense", "cyst"] * 8, "partial": ["dense"] + [None] * 15}
    )
    objects = set_or_add_layer(
        viewer, layer_data_tuple(volume.with_array(labels), "labels", name="spheres", features=features)
    )
    widget.source.value = "napari layers"
    assert not widget.train_image.native.isHidden() and widget.data_path.native.isHidden()
    widget.train_image.value, widget.train_labels.value = image, objects
    assert set(widget.class_column.choices) == {"kind", "partial", "label value"}
    widget.class_column.value = "partial"  # a single labelled object: refused before any training
    widget.start_training()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert "at least two classes" in widget.status.value and widget.result is None

    widget.class_column.value = "kind"
    widget.patch_mm.value, widget.size.value = 9.0, "12 12"
    widget.net_width.value, widget.depths.value, widget.epochs.value, widget.minutes.value = 8, "1 1", 3, 0.0
    widget.start_training()
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    result = widget.result
    assert result is not None and result.class_names == ["cyst", "dense"], widget.status.value
    assert result.meta()["patch"] == {"size_mm": [9.0, 9.0]} and len(result.history) == 3
    assert len(widget.history) == 3 and "best epoch" in widget.status.value

    widget.image.value, widget.objects.value = image, objects
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    classes = viewer.layers[widget.result_names["classes"]]
    table = classes.features.set_index("index")
    expected = predict(widget.model, volume.array, labels=labels, spacing=volume.spacing).table
    assert table.index.tolist() == list(range(1, 17))
    assert np.allclose(table["p_dense"], expected["p_dense"]) and set(table["class_name"]) <= {
        "cyst",
        "dense",
    }
    for mine, theirs in zip(_geometry(classes), _geometry(image), strict=False):
        assert np.allclose(mine, theirs)
    assert "16 objects" in widget.status.value


def test_training_from_layers_with_a_class_per_slice(make_napari_viewer, qtbot, tmp_path):
    viewer, widget = _widget(make_napari_viewer)
    volume, labels = _spheres()
    image = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="scan"))
    objects = set_or_add_layer(
        viewer,
        layer_data_tuple(volume.with_array((labels > 0).astype(np.int32)), "labels", name="any sphere"),
    )
    widget.source.value, widget.layer_mode.value = "napari layers", "class per slice"
    assert not widget.empty_class.native.isHidden() and widget.patch_mm.native.isHidden()
    widget.train_image.value, widget.train_labels.value = image, objects
    widget.class_column.value = "label value"
    widget.size.value = "16"
    widget.net_width.value, widget.depths.value, widget.epochs.value, widget.minutes.value = 8, "1 1", 1, 0.0
    widget.start_training()  # slices without objects are skipped: every remaining slice is class "1"
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert widget.result is None and "at least two classes" in widget.status.value
    widget.empty_class.value = "no sphere"
    widget.start_training()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert widget.result is not None and widget.result.class_names == ["1", "no sphere"], widget.status.value
    assert widget.result.input_size == [16, 16] and "patch" not in widget.result.meta()

    csv_path = tmp_path / "slices.csv"  # or the classes come from a CSV of slice indices
    csv_path.write_text(
        "slice,label\n" + "".join(f"{k},{'upper' if k < 4 else 'lower'}\n" for k in range(1, 8))
    )
    widget.slice_csv.value = csv_path
    widget.start_training()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert widget.result.class_names == ["lower", "upper"], widget.status.value


def test_class_column_list_offers_in_place_feature_edits_when_opened(make_napari_viewer, qtbot):
    """Issue 11 item 7: ``layer.features["class"] = …`` emits no event; opening the list must offer it."""
    import pandas as pd
    from qtpy.QtCore import Qt

    viewer, widget = _widget(make_napari_viewer)
    volume, labels = _spheres()
    set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="scan"))
    objects = set_or_add_layer(viewer, layer_data_tuple(volume.with_array(labels), "labels", name="spheres"))
    objects.features = pd.DataFrame({"index": np.arange(1, 17)})
    widget.source.value = "napari layers"
    widget.train_labels.value = objects
    assert widget.class_column.choices == ("label value",)
    objects.features["class"] = ["dense", "cyst"] * 8  # in place, as the docs say: no event
    assert "class" not in widget.class_column.choices
    qtbot.mouseClick(widget.class_column.native, Qt.MouseButton.LeftButton)  # the user opens the list
    widget.class_column.native.hidePopup()
    assert "class" in widget.class_column.choices and widget.class_column.value == "class"
    objects.features["name"] = [f"sphere {i}" for i in range(1, 17)]
    qtbot.keyClick(widget.class_column.native, Qt.Key.Key_F4)  # keyboard opening too
    widget.class_column.native.hidePopup()
    assert set(widget.class_column.choices) == {"class", "name", "label value"}


def test_probability_layer_of_the_picked_class_and_mismatch_warnings(make_napari_viewer, qtbot, model):
    """Issue 11 item 9: P(picked class), default the minority class, named in the layer; warn on mismatch."""
    viewer, widget = _widget(make_napari_viewer)
    imbalanced = LoadedModel(
        model.model, {**model.meta, "class_counts": [5, 27], "source": {"modality": "US"}}
    )  # "corner" is the minority (the finding), although alphabetically first
    widget._set_model(imbalanced)
    assert widget.target_class.choices == ("corner", "centre") and widget.target_class.value == "corner"
    array = np.random.default_rng(0).normal(0, 0.3, (4, 64, 64)).astype(np.float32)
    array[0:2, 20:44, 20:44] += 2.0
    scan = Volume(array, (2.5, 0.7, 0.7), metadata={"modality": "CT"})
    source = set_or_add_layer(viewer, layer_data_tuple(scan, "image", name="scan"))
    widget.image.value, widget.objects.value = source, None
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    layer = viewer.layers["scan CNN P(corner)"]
    table = viewer.layers["scan CNN classes"].metadata["cnn_predictions"]
    assert np.allclose(layer.data[:, 0, 0], table["p_corner"])
    assert layer.metadata["cnn"]["quantity"] == "P(corner)"
    assert "trained on US images; this image is CT" in widget.status.value
    assert "takes 16 × 16 images" in widget.status.value
    widget.target_class.value = "centre"  # the user picks the other class
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert np.allclose(viewer.layers["scan CNN P(centre)"].data[:, 0, 0], table["p_centre"])


def test_predict_is_disabled_while_training_runs(make_napari_viewer, qtbot, tmp_path, model):
    """Issue 11 item 19: Predict stays enabled during training and then does nothing."""
    viewer, widget = _widget(make_napari_viewer)
    assert not widget.predict_button.enabled  # no model yet
    widget._set_model(model)
    assert widget.predict_button.enabled
    path = _blobs_npz(tmp_path)
    widget.data_path.value = path
    widget.net_width.value, widget.depths.value, widget.epochs.value = 8, "1 1", 2
    widget.start_training()
    assert widget.worker is not None and not widget.predict_button.enabled
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert widget.predict_button.enabled and widget.model is not model


def test_panel_trains_a_fold_ensemble_saves_and_predicts_with_it(make_napari_viewer, qtbot, tmp_path):
    from napari_medimg.learn.cnn.files import load_model
    from napari_medimg.learn.cnn.models import Ensemble

    viewer, widget = _widget(make_napari_viewer)
    widget.data_path.value = _blobs_npz(tmp_path)
    widget.net_width.value, widget.depths.value, widget.epochs.value = 8, "1 1", 2
    widget.minutes.value, widget.folds.value = 0.0, 1
    widget.start_training()
    assert widget.worker is None and "at least 2 folds" in widget.status.value
    widget.folds.value, widget.save_path.value = 3, tmp_path / "ensemble"
    widget.start_training()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    assert isinstance(widget.model.model, Ensemble) and len(widget.model.model.members) == 3, (
        widget.status.value
    )
    assert "ensemble of 3 folds" in widget.status.value and "out-of-fold AUC" in widget.status.value
    assert {r["fold"] for r in widget.history} == {0, 1, 2} and widget.axes.get_title() == "training, fold 3"
    saved = load_model(tmp_path / "ensemble")
    assert isinstance(saved.model, Ensemble) and saved.meta["ensemble"]["members"] == 3
    image = blobs(1, seed=9).images[0, 0] * 40 + 100
    layer = viewer.add_image(image, name="one blob")
    widget.model_path.value = tmp_path / "ensemble"
    widget.load()
    widget.image.value = layer
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    probability = viewer.layers[widget.result_names["probability"]].data
    expected = predict(saved, image).probability
    assert np.allclose(probability, expected, atol=1e-5)
