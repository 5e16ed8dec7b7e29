"""Object patches resampled to the training spacing: a model trained on image files of known spacing predicts
the same for a volume resampled to another spacing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_medimg.geometry import Volume
from napari_medimg.io.nifti import write_nifti
from napari_medimg.learn.cnn.data import load_images
from napari_medimg.learn.cnn.files import LoadedModel
from napari_medimg.learn.cnn.predict import compatibility_warnings, patch_size_mm, predict
from napari_medimg.learn.cnn.train import TrainConfig, train

#: sphere radii in mm of the two classes: they differ in physical size only
RADII = {"small": 2.5, "big": 5.0}


def _ball(shape, centre, radius_mm, spacing):
    grid = np.indices(shape).astype(float)
    distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    return distance <= radius_mm**2


def _volume(centres, radii, shape, spacing, seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 8, shape).astype(np.float32)
    labels = np.zeros(shape, np.int32)
    for index, (centre, radius) in enumerate(zip(centres, radii, strict=True), 1):
        ball = _ball(shape, centre, radius, spacing)
        image[ball] += 100
        labels[ball] = index
    return image, labels


def test_objects_of_a_resampled_volume_get_the_same_predictions(tmp_path):
    rng = np.random.default_rng(0)
    paths, classes = [], []
    for i in range(32):  # 16 mm crops at 1 mm around one sphere, resized to 8^3 for training: 2 mm pitch
        name = ["small", "big"][i % 2]
        centre = 7.5 + rng.uniform(-1, 1, 3)
        image, _ = _volume([centre], [RADII[name] * rng.uniform(0.9, 1.1)], (16, 16, 16), (1, 1, 1), i)
        paths.append(tmp_path / f"crop{i:02d}.nii.gz")
        write_nifti(Volume(image, (1.0, 1.0, 1.0)), paths[-1])
        classes.append(name)
    sets = load_images(paths, classes, [8, 8, 8], val_fraction=0.25, seed=0)
    assert sets["train"].spacing == [2.0, 2.0, 2.0]
    fast = {"batch_size": 8, "lr": 3e-3, "warmup_epochs": 0.5, "ema_epochs": 0, "threads": 1}
    augmentation = {"rotate_deg": 0, "scale": 0, "translate": 0, "intensity": 0, "flip_axes": [-3, -2, -1]}
    model_config = {"width": 4, "depths": [1, 1], "dropout": 0.0, "dims": 3}
    result = train(
        sets["train"], sets["val"], model_config, TrainConfig(epochs=25, patience=25, **fast, **augmentation)
    )
    model = LoadedModel(result.model, result.meta())
    assert patch_size_mm(model) == [16.0, 16.0, 16.0]  # the field of view of the training inputs

    centres = [(8, 8, 8), (8, 8, 24), (8, 24, 8), (24, 8, 8), (24, 24, 24), (24, 24, 8)]
    radii = [RADII[n] for n in ("small", "big", "big", "small", "small", "big")]
    image, labels = _volume(centres, radii, (32, 32, 32), (1, 1, 1), 99)
    original = predict(model, image, labels=labels, spacing=(1.0, 1.0, 1.0), saliency=False).table
    assert original["class_name"].tolist() == ["small", "big", "big", "small", "small", "big"]

    # the same scene at 2 x 0.8 x 0.8 mm: patches are cut in mm, so the network sees the same millimetres
    zoom = (0.5, 1.25, 1.25)
    coarse = ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
    coarse_labels = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
    assert sorted(np.unique(coarse_labels))[1:] == [1, 2, 3, 4, 5, 6]
    resampled = predict(model, coarse, labels=coarse_labels, spacing=(2.0, 0.8, 0.8), saliency=False).table
    assert resampled["class_name"].tolist() == original["class_name"].tolist()
    np.testing.assert_allclose(resampled["p_big"], original["p_big"], atol=0.05)

    # without a known spacing the patch falls back to a margin around each object (voxels, not mm)
    unknown = predict(model, coarse, labels=coarse_labels, saliency=False).table
    assert len(unknown) == 6

    # warnings: whole images are compared at the pitch they get when resized; objects are resampled in mm
    assert compatibility_warnings(model, (16, 16, 16), (1.0, 1.0, 1.0)) == []  # 16 mm at 2 mm: as trained
    (warning,) = compatibility_warnings(model, (16, 16, 16), (2.0, 2.0, 2.0))
    assert "trained at 2 × 2 × 2 mm; this image has 4 × 4 × 4 mm" in warning
    assert compatibility_warnings(model, coarse.shape, (2.0, 0.8, 0.8), objects=True) == []
