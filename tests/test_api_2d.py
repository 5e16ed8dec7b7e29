"""2D images end to end: a 2D image (grey and RGB) and its labels through the registry, features, CNN object
patches and the object classifiers, and as napari layers, with geometry in mm all the way."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg import ops
from napari_medimg.geometry import Volume
from napari_medimg.measure.features import compute_features

SPACING = (0.4, 0.6)  # mm per row, per column: anisotropic on purpose
ORIGIN = (5.0, -3.0)


def _discs():
    """A 2D image of 12 discs: 6 small bright ('dense'), 6 large dim ('cyst'), with its ground-truth labels."""
    rng = np.random.default_rng(3)
    shape = (120, 150)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = rng.normal(0, 6, shape).astype(np.float32)
    labels = np.zeros(shape, np.int32)
    kinds = {}
    for n in range(12):
        row, column = 20 + 40 * (n // 4), 20 + 36 * (n % 4)
        dense = n % 2 == 0
        radius_mm = 2.5 if dense else 5.0
        inside = ((y - row) * SPACING[0]) ** 2 + ((x - column) * SPACING[1]) ** 2 <= radius_mm**2
        image[inside] += 200.0 if dense else 90.0
        labels[inside] = n + 1
        kinds[n + 1] = "dense" if dense else "cyst"
    volume = Volume(image, SPACING, ORIGIN)
    return volume, volume.with_array(labels), kinds


@pytest.fixture(scope="module")
def discs():
    return _discs()


def test_2d_segmentation_through_the_registry(discs):
    image, truth, _ = discs
    mask = ops.run("threshold", image, method="manual", low=45.0)
    objects = ops.run(
        "connected_components", ops.run("islands", mask, operation="remove_small", min_size_mm3=5)
    )
    assert objects.array.max() == 12 and objects.spatial_ndim == 2
    np.testing.assert_array_equal(objects.array != 0, truth.array != 0)
    np.testing.assert_allclose(objects.affine, image.affine)
    # the area of each disc in mm² (pixel area 0.24 mm²), within the pixelisation error
    areas = np.bincount(objects.array.ravel())[1:] * image.voxel_volume
    assert np.all((np.abs(areas - np.pi * 2.5**2) < 2.5) | (np.abs(areas - np.pi * 25) < 5))


def test_2d_features_in_mm(discs):
    image, labels, kinds = discs
    table = ops.run("features", image, labels, groups=["shape", "firstorder"])
    assert len(table) == 12 and "shape2D_PixelSurface" in table.columns
    expected = np.bincount(labels.array.ravel())[1:] * image.voxel_volume
    np.testing.assert_allclose(table.sort_values("label")["shape2D_PixelSurface"], expected, rtol=1e-6)
    dense = table["label"].map(kinds) == "dense"
    assert table.loc[dense, "firstorder_Mean"].min() > table.loc[~dense, "firstorder_Mean"].max()
    # the same table as the core function with the Volume's spacing
    direct = compute_features(labels.array, image.array, spacing=image.spacing, groups="shape,firstorder")
    np.testing.assert_allclose(direct.sort_values("label")["shape2D_PixelSurface"], expected, rtol=1e-6)


def test_2d_object_classifier(discs):
    from napari_medimg.learn import classify

    image, labels, kinds = discs
    table = compute_features(labels.array, image.array, spacing=image.spacing, groups="shape,firstorder")
    table["kind"] = table["label"].map(kinds)
    classifier, validation = classify.train_classifier(table, target="kind", model="forest", folds=3)
    assert list(classifier.predict(table)) == list(table["kind"])
    assert validation is not None


def test_2d_cnn_object_patches_and_training(discs):
    from napari_medimg.learn.cnn.data import object_dataset, split_dataset
    from napari_medimg.learn.cnn.models import ModelConfig
    from napari_medimg.learn.cnn.predict import predict
    from napari_medimg.learn.cnn.train import TrainConfig, train

    image, labels, kinds = discs
    data = object_dataset(image, labels, kinds, size_mm=14.0, size=(16, 16), dims=2)
    assert data.images.shape == (12, 1, 16, 16)
    assert data.patch == {"size_mm": [14.0, 14.0]}
    # patches are cut in mm: a small disc covers fewer patch pixels than a large one despite the spacing
    bright = (data.images[:, 0] > data.images[:, 0].mean(axis=(1, 2), keepdims=True) + 20).sum(axis=(1, 2))
    names = [data.class_names[k] for k in data.labels]
    small = [b for b, n in zip(bright, names, strict=True) if n == "dense"]
    large = [b for b, n in zip(bright, names, strict=True) if n == "cyst"]
    assert max(small) < min(large)
    sets = split_dataset(data, 0.34, seed=0)
    config = TrainConfig(
        epochs=6,
        batch_size=8,
        lr=1e-2,
        warmup_epochs=0.5,
        rotate_deg=0,
        scale=0,
        translate=0,
        intensity=0,
        flip_axes=[],
        ema_epochs=0,
        threads=1,
        tta=False,
    )
    result = train(sets["train"], sets["val"], ModelConfig(width=8, depths=[1, 1], dropout=0.0), config)
    assert result.model is not None
    prediction = predict(_loaded(result), image.array, labels=labels.array, spacing=image.spacing)
    assert prediction.mode == "objects" and len(prediction.table) == 12
    assert prediction.class_map.shape == image.shape
    predicted = dict(zip(prediction.table["label"], prediction.table["class_name"], strict=True))
    # the two kinds differ in size and brightness: the tiny model gets (nearly) all of them (12/12 here)
    assert sum(predicted[k] == v for k, v in kinds.items()) >= 10


def _loaded(result):
    import tempfile
    from pathlib import Path

    from napari_medimg.learn.cnn.files import load_model, save_model

    folder = Path(tempfile.mkdtemp())
    return load_model(save_model(result.model, result.meta(), folder / "model"))


def test_2d_and_rgb_as_napari_layers(make_napari_viewer, discs):
    from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer

    image, labels, _ = discs
    viewer = make_napari_viewer()
    shown = set_or_add_layer(viewer, layer_data_tuple(image, "image", name="image"))
    objects = set_or_add_layer(viewer, layer_data_tuple(labels, "labels", name="objects"))
    for layer, volume in ((shown, image), (objects, labels)):
        back = layer_to_volume(layer)
        np.testing.assert_allclose(back.affine, volume.affine)
        for index in ([0, 0], [60, 75], [119, 149]):
            np.testing.assert_allclose(layer.data_to_world(index), volume.index_to_world(index))
    rgb_array = np.stack([image.array, image.array / 2, np.zeros(image.shape, np.float32)], axis=-1)
    rgb = Volume(np.clip(rgb_array, 0, 255).astype(np.uint8), SPACING, ORIGIN, metadata={"rgb": True})
    colour = set_or_add_layer(viewer, layer_data_tuple(rgb, "image", name="colour"))
    assert colour.rgb and tuple(colour.scale) == SPACING
    back = layer_to_volume(colour)
    assert back.is_rgb and back.spatial_shape == image.shape
    np.testing.assert_allclose(back.affine, image.affine)
    # an RGB layer the user added without our metadata gives the same plane geometry
    added = viewer.add_image(rgb.array, rgb=True, scale=SPACING, translate=ORIGIN, name="added")
    plain = layer_to_volume(added)
    assert plain.is_rgb and plain.spatial_shape == image.shape
    np.testing.assert_allclose(plain.affine, image.affine)
    # the RGB image's labels share its plane geometry, and the registry runs on the grey channel's Volume
    mask = rgb.with_array((rgb.array[..., 0] > 45).astype(np.uint8))
    np.testing.assert_allclose(mask.affine, image.affine)
    grown = ops.run("morphology", mask, operation="dilate", radius_mm=0.6)
    assert grown.array.sum() > mask.array.sum()
