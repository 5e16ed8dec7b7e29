"""Tools on a 4D (volume, z, y, x) layer act on the volume its slider shows."""

from __future__ import annotations

import numpy as np

from napari_medimg.geometry import Volume
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer, shown_volume
from napari_medimg.plugin.widgets.measure import MeasureWidget
from napari_medimg.plugin.widgets.threshold import ThresholdWidget


def _fmri(viewer):
    array = np.zeros((3, 4, 16, 16), np.int16)
    for t in range(3):
        array[t, :, 4:12, 4:12] = 100 * (t + 1)  # volume t: a square of 100·(t+1)
        array[t, :, 6:10, 6:10] = 400 if t == 2 else 0
    volume = Volume(array, (3.0, 2.0, 2.0), metadata={"modality": "MR", "volume_info": [{}, {}, {}]})
    return set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="fmri"))


def test_threshold_and_measure_act_on_the_volume_shown(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = _fmri(viewer)
    assert layer.ndim == 4
    viewer.dims.set_current_step(0, 2)  # the third volume
    shown = shown_volume(viewer, layer)
    assert shown.shape == (4, 16, 16) and shown.metadata["volume_index"] == 2
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    widget.preview.value = False
    widget.method.value = "manual"
    widget.low.value, widget.high.value = 250.0, 1000.0
    widget.apply_to_volume()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    mask = viewer.layers[widget.result_name].data
    assert mask.shape == (4, 16, 16)
    assert np.count_nonzero(mask) == 4 * 64  # volume 3 (300 and 400 HU inside the square); volume 1 is < 250
    labels = viewer.layers[widget.result_name]
    measure = MeasureWidget(viewer)
    measure.labels.value = labels
    measure.images.value = [layer]
    measure.measure()
    qtbot.waitUntil(lambda: measure.worker is None, timeout=60000)
    assert not measure.status.value.startswith(("error", "fmri")), measure.status.value
    table = labels.features
    assert float(table.loc[table["label"] == 1, "firstorder_Maximum"].iloc[0]) == 400.0


def _blob_fmri(viewer):
    """3 volumes of 4 slices of 32 x 32: volume 1 holds centred blobs, volumes 0 and 2 corner blobs."""
    rng = np.random.default_rng(0)
    array = rng.normal(0, 0.3, (3, 4, 32, 32)).astype(np.float32)
    array[1, :, 10:22, 10:22] += 2.0
    array[[0, 2], :, 0:12, 0:12] += 2.0
    volume = Volume(array, (3.0, 1.0, 1.0), metadata={"modality": "MR", "volume_info": [{}, {}, {}]})
    return array, set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="fmri"))


def test_cnn_panel_predicts_and_trains_on_the_volume_shown(make_napari_viewer, qtbot):
    from test_cnn_widget import FAST, blobs

    from napari_medimg.learn.cnn.files import LoadedModel
    from napari_medimg.learn.cnn.models import ModelConfig
    from napari_medimg.learn.cnn.predict import predict
    from napari_medimg.learn.cnn.train import TrainConfig, train
    from napari_medimg.plugin.widgets.cnn import CNNWidget

    result = train(
        blobs(32, size=32),
        blobs(16, size=32, seed=1),
        ModelConfig(width=8, depths=[1, 1], dropout=0.0),
        TrainConfig(epochs=4, **FAST),
    )
    model = LoadedModel(result.model, result.meta())
    viewer = make_napari_viewer()
    array, layer = _blob_fmri(viewer)
    widget = CNNWidget(viewer)
    widget.model = model
    widget.image.value, widget.objects.value = layer, None
    predictions = {}
    for index in (1, 2):
        viewer.dims.set_current_step(0, index)
        widget.start_prediction()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
        probability = viewer.layers[widget.result_names["probability"]]
        assert probability.data.shape == (4, 32, 32)
        expected = predict(model, array[index])  # what the panel must give: the model on the volume shown
        assert np.allclose(probability.data, expected.probability)
        predictions[index] = np.asarray(probability.data).copy()
    assert not np.allclose(predictions[1], predictions[2])  # the two volumes differ: the slider decides

    labels = np.zeros((4, 32, 32), np.uint16)
    labels[:, 10:22, 10:22] = 1
    objects = set_or_add_layer(
        viewer, layer_data_tuple(Volume(labels, (3.0, 1.0, 1.0)), "labels", name="objects")
    )
    widget.source.value = "napari layers"
    widget.train_image.value, widget.train_labels.value = layer, objects
    viewer.dims.set_current_step(0, 1)
    data = widget._layer_data()  # what the training worker receives
    assert data["image"].shape == (4, 32, 32) and np.array_equal(data["image"].array, array[1])


def test_unet_panel_trains_and_predicts_on_the_volume_shown(make_napari_viewer, qtbot, monkeypatch):
    import napari_medimg.learn.unet as unet
    from napari_medimg.learn.unet import segment
    from napari_medimg.plugin.widgets.unet import UNetWidget

    viewer = make_napari_viewer()
    array, layer = _blob_fmri(viewer)
    strokes = np.zeros((4, 32, 32), np.uint8)
    strokes[:, 12:20, 12:20] = 2
    strokes[:, 26:30, 26:30] = 1
    strokes[:, 0:4, 26:30] = 1
    annotations = set_or_add_layer(
        viewer, layer_data_tuple(Volume(strokes, (3.0, 1.0, 1.0)), "labels", name="strokes")
    )
    seen = []
    real_train = unet.train_unet

    def spy(images, *args, **kwargs):  # the real training, recording the image it was given
        seen.append(np.asarray(images[0]))
        return real_train(images, *args, **kwargs)

    monkeypatch.setattr(unet, "train_unet", spy)
    widget = UNetWidget(viewer)
    viewer.dims.set_current_step(0, 1)
    widget.train_image.value, widget.annotations.value = layer, annotations
    widget.net_width.value, widget.levels.value, widget.patch.value = 8, 2, 16
    widget.iterations.value, widget.minutes.value = 4, 0.0
    widget.start_training()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.model is not None, widget.status.value  # the 3D annotations fit the volume shown
    assert len(seen) == 1 and np.array_equal(seen[0], array[1])

    widget.image.value = layer
    viewer.dims.set_current_step(0, 2)
    widget.start_prediction()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    labels = viewer.layers[widget.result_names(widget.target.value)["labels"]]
    expected = segment(widget.model, array[2], target=widget.model.class_names.index(widget.target.value) + 1)
    assert labels.data.shape == (4, 32, 32) and np.array_equal(labels.data, expected.labels)
