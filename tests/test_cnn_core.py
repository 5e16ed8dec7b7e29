"""CNN core: data loading, training behaviour, model files, metrics, Grad-CAM, predictions and the CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from napari_medimg.geometry import Volume
from napari_medimg.learn.cnn.data import ImageSet, load_folder, load_npz, to_channels_first
from napari_medimg.learn.cnn.explain import grad_cam
from napari_medimg.learn.cnn.files import LoadedModel, ModelFileError, load_model, save_model
from napari_medimg.learn.cnn.metrics import classification_metrics, plot_roc
from napari_medimg.learn.cnn.models import ModelConfig, build_model
from napari_medimg.learn.cnn.predict import predict
from napari_medimg.learn.cnn.train import TrainConfig, augment_batch, train

TINY = ModelConfig(width=8, depths=[1, 1], dropout=0.0)
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


def blobs(n: int, size: int = 16, dims: int = 2, seed: int = 0) -> ImageSet:
    """Class 1 has a bright blob in the centre, class 0 in a corner: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.3, (n, 1) + (size,) * dims).astype(np.float32)
    labels = np.arange(n) % 2
    centre, corner = (slice(size // 2 - 3, size // 2 + 3),) * dims, (slice(0, 6),) * dims
    for i, label in enumerate(labels):
        images[(i, 0) + (centre if label else corner)] += 2.0
    return ImageSet(images, labels, ["corner", "centre"])


def test_overfits_a_tiny_batch_of_noise():
    rng = np.random.default_rng(1)
    noise = ImageSet(
        rng.normal(size=(16, 1, 12, 12)).astype(np.float32), rng.permutation(np.arange(16) % 2), ["a", "b"]
    )
    result = train(
        noise, noise, TINY, TrainConfig(epochs=30, patience=100, tta=False, **{**FAST, "lr": 3e-3})
    )
    assert result.metrics["acc"] == 1.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 4


def test_training_is_deterministic_with_a_seed():
    data = blobs(24)
    config = dict(epochs=2, **{**FAST, "rotate_deg": 10, "scale": 0.1, "intensity": 0.1, "flip_axes": [-1]})
    first = train(data, data, TINY, TrainConfig(seed=3, **config)).model.state_dict()
    second = train(data, data, TINY, TrainConfig(seed=3, **config)).model.state_dict()
    other = train(data, data, TINY, TrainConfig(seed=4, **config)).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_learns_blobs_2d_and_3d_and_keeps_best_checkpoint():
    for dims in (2, 3):
        train_set, val_set = blobs(32, 12, dims, seed=0), blobs(16, 12, dims, seed=1)
        result = train(train_set, val_set, TINY, TrainConfig(epochs=6, patience=100, **FAST))
        assert result.model_config.dims == dims
        assert result.metrics["auc"] >= max(r["val_auc"] for r in result.history) - 1e-9
        assert result.metrics["auc"] > 0.9
        ranked = max(result.history, key=lambda r: (round(r["val_auc"], 6), -r["val_loss"]))
        assert result.best_epoch == ranked["epoch"]


def test_cancel_and_time_budget_keep_the_best_model():
    data = blobs(32)
    calls = []
    result = train(
        data, data, TINY, TrainConfig(epochs=50, **FAST), on_epoch=calls.append, stop=lambda: len(calls) >= 2
    )
    assert result.stopped == "cancelled" and len(result.history) == 2 and result.best_epoch in (1, 2)
    budget = train(data, data, TINY, TrainConfig(epochs=1000, minutes=0.02, patience=1000, **FAST))
    assert budget.stopped == "time_budget" and budget.seconds < 5


def test_model_shapes_2d_rgb_and_3d():
    for dims, channels, size in ((2, 1, 28), (2, 3, 28), (3, 1, 16)):
        model = build_model(
            ModelConfig(dims=dims, in_channels=channels, n_classes=3, width=8, depths=[1, 2, 1])
        )
        out = model(torch.zeros((2, channels) + (size,) * dims))
        assert out.shape == (2, 3)
    with pytest.raises(ValueError):
        ModelConfig(dims=4)


def test_augmentation_keeps_shapes_and_changes_pixels():
    generator = torch.Generator().manual_seed(0)
    for shape in ((4, 1, 16, 16), (4, 1, 8, 12, 16)):
        x = torch.rand(shape)
        y = augment_batch(x, TrainConfig(flip_axes=[-1, -2]), generator)
        assert y.shape == x.shape and not torch.allclose(x, y)


def test_load_npz_label_shapes_rgb_and_3d(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(
        path,
        train_images=np.zeros((6, 10, 10, 3), np.uint8),
        train_labels=np.array([[0], [1], [2]] * 2),
        val_images=np.zeros((3, 10, 10, 3), np.uint8),
        val_labels=np.array([0, 1, 2]),
    )
    sets = load_npz(path)
    assert sets["train"].images.shape == (6, 3, 10, 10) and sets["train"].labels.shape == (6,)
    assert sets["train"].class_names == ["0", "1", "2"] and "test" not in sets
    assert to_channels_first(np.zeros((2, 8, 9, 10))).shape == (2, 1, 8, 9, 10)
    assert to_channels_first(np.zeros((2, 8, 9, 3)), dims=3).shape == (2, 1, 8, 9, 3)
    np.savez(path, train_images=np.zeros((2, 4, 4)), train_labels=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="single-label"):
        load_npz(path)
    bad = tmp_path / "object.npz"
    np.savez(bad, train_images=np.array([{"a": 1}], dtype=object), train_labels=np.array([0]))
    with pytest.raises(ValueError):
        load_npz(bad)


def test_load_folder_with_labels_csv(tmp_path):
    from skimage.io import imsave

    rows = ["path,label"]
    for i in range(10):
        image = np.zeros((20, 24), np.uint8)
        image[5:15, 5:15] = 200 if i % 2 else 0
        imsave(tmp_path / f"img{i}.png", image, check_contrast=False)
        rows.append(f"img{i}.png,{'lesion' if i % 2 else 'normal'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    sets = load_folder(tmp_path / "labels.csv", size=(16, 16), val_fraction=0.2)
    assert sets["train"].class_names == ["lesion", "normal"]
    assert len(sets["train"]) == 8 and len(sets["val"]) == 2
    assert sorted(sets["val"].labels.tolist()) == [0, 1]
    assert sets["train"].images.shape[1:] == (1, 16, 16)


def test_metrics_binary_and_multiclass(tmp_path):
    labels = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    metrics = classification_metrics(labels, np.stack([1 - p1, p1], 1))
    assert metrics["acc"] == pytest.approx(0.6) and metrics["auc"] == pytest.approx(5 / 6)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["balanced_acc"] == pytest.approx((0.5 + 2 / 3) / 2)
    three = np.eye(3)[[0, 1, 2, 2]] * 0.7 + 0.1
    multi = classification_metrics(np.array([0, 1, 2, 1]), three)
    assert multi["acc"] == 0.75 and multi["auc"] == pytest.approx(
        (1 + 0.75 + 2.5 / 3) / 3
    )  # macro one-vs-rest
    assert classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.3, 0.7]]))["auc"] is None
    png = plot_roc(labels, np.stack([1 - p1, p1], 1), tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000 and png.endswith("roc.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    result = train(blobs(32), blobs(16, seed=1), TINY, TrainConfig(epochs=4, **FAST))
    folder = save_model(result.model, result.meta(), tmp_path_factory.mktemp("model") / "blobs")
    return result, folder


def test_save_load_identical_logits(trained):
    result, folder = trained
    loaded = load_model(folder)
    x = torch.from_numpy(blobs(8, seed=5).images)
    with torch.no_grad():
        assert torch.equal(result.model.eval()(x), loaded.model(x))
    meta = json.loads((folder / "config.json").read_text())
    assert meta["class_names"] == ["corner", "centre"] and meta["input_size"] == [16, 16]
    assert meta["versions"]["torch"] == torch.__version__ and "val" in meta["metrics"]
    with pytest.raises(FileExistsError):
        save_model(result.model, result.meta(), folder)


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (target / name).write_bytes((folder / name).read_bytes())
    return target


def test_refuses_pickled_and_malformed_model_files(trained, tmp_path):
    _, folder = trained
    target = _copy(folder, tmp_path)
    state = {k: v.numpy() for k, v in load_model(folder).model.state_dict().items()}
    (target / "model.safetensors").write_bytes(pickle.dumps(state))
    with pytest.raises(ModelFileError, match="safetensors"):
        load_model(target)
    torch.save(load_model(folder).model.state_dict(), target / "model.safetensors")  # a zip of pickles
    with pytest.raises(ModelFileError, match="safetensors"):
        load_model(target)

    target = _copy(folder, tmp_path / "b")
    (target / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="JSON"):
        load_model(target)
    meta = json.loads((folder / "config.json").read_text())
    for change, message in (
        ({"model": {**meta["model"], "width": 16}}, "needs"),
        ({"format": "something"}, "format"),
        ({"class_names": ["one"]}, "class_names"),
        ({"model": {**meta["model"], "evil": 1}}, "architecture"),
        ({"normalisation": {"mode": "fixed", "mean": [0], "std": [0]}}, "std"),
        ({"patch": {"size_mm": [-1.0, 9.0]}}, "patch"),
        ({"patch": "40 mm"}, "patch"),
    ):
        (target / "config.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(ModelFileError, match=message):
            load_model(target)
    (target / "config.json").write_text(json.dumps(meta))
    (target / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ModelFileError):
        load_model(target)
    with pytest.raises(ModelFileError, match="missing"):
        load_model(tmp_path)


def test_grad_cam_highlights_the_blob(trained):
    result, _ = trained
    data = blobs(4, seed=7)
    maps = grad_cam(result.model, data.images)
    assert maps.shape == (4, 16, 16)
    # every map has evidence for the explained class (not all zero) and is scaled to its own peak
    np.testing.assert_allclose(maps.reshape(4, -1).max(axis=1), 1.0, rtol=1e-5)
    centre = maps[data.labels == 1][:, 5:11, 5:11].mean()
    assert centre > maps[data.labels == 1].mean()
    corner = maps[data.labels == 0][:, 0:6, 0:6].mean()
    assert corner > maps[data.labels == 0].mean()  # a corner blob is explained by its corner
    # the map depends on the class explained: the other class's evidence lies elsewhere
    other = grad_cam(result.model, data.images, target=1 - data.labels)
    assert not np.allclose(other, maps, atol=0.05)


def test_predict_image_slices_and_objects(trained):
    result, folder = trained
    model = load_model(folder)
    assert isinstance(model, LoadedModel)
    volume = np.random.default_rng(0).normal(0, 0.3, (5, 32, 32)).astype(np.float32)
    volume[1:3, 10:22, 10:22] += 2.0  # centred blob in slices 1-2 (the training images at twice the size)
    volume[3:5, 0:12, 0:12] += 2.0  # corner blob in slices 3-4
    slices = predict(model, volume, spacing=(2.5, 0.7, 0.7))
    assert slices.mode == "slices" and len(slices.table) == 5
    assert slices.table["class_name"].tolist()[1:] == ["centre", "centre", "corner", "corner"]
    assert slices.table["position_mm"].tolist() == [0, 2.5, 5.0, 7.5, 10.0]
    assert slices.saliency.shape == volume.shape and slices.class_map.shape == volume.shape
    assert np.allclose(slices.probability[2], slices.table["p_centre"][2])

    image = np.random.default_rng(1).normal(0, 0.3, (48, 48)).astype(np.float32)
    labels = np.zeros((48, 48), np.int32)
    image[8:14, 8:14] += 2.0
    labels[8:14, 8:14] = 3
    labels[30:40, 30:40] = 7
    objects = predict(model, image, labels=labels, margin=0.5)
    assert objects.mode == "objects" and objects.table["label"].tolist() == [3, 7]
    assert set(objects.class_map[labels == 3]) == {objects.table["class"][0] + 1}
    assert np.all(objects.probability[labels == 0] == 0)
    whole = predict(model, image[:16, :16])
    assert whole.mode == "image" and len(whole.table) == 1
    with pytest.raises(ValueError, match="labels shape"):
        predict(model, image, labels=labels[:10])


def test_cli_train_evaluate_predict(tmp_path, capsys):
    from napari_medimg.cli import main
    from napari_medimg.geometry import Volume
    from napari_medimg.io.nifti import read_nifti, write_nifti

    train_set, val_set = blobs(32), blobs(16, seed=1)
    data = tmp_path / "blobs.npz"
    np.savez(
        data,
        train_images=(train_set.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8),
        train_labels=train_set.labels[:, None],
        val_images=(val_set.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8),
        val_labels=val_set.labels[:, None],
    )
    out = tmp_path / "model"
    assert (
        main(
            [
                "cnn",
                "train",
                "--data",
                str(data),
                "--out",
                str(out),
                "--dims",
                "2",
                "--minutes",
                "0.5",
                "--seed",
                "1",
                "--epochs",
                "3",
                "--width",
                "8",
                "--depths",
                "1",
                "1",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (out / "model.safetensors").is_file() and (out / "roc_val.png").is_file()
    capsys.readouterr()
    assert (
        main(["cnn", "evaluate", "--model", str(out), "--data", str(data), "--split", "val", "--json"]) == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert {"acc", "auc", "balanced_acc", "f1", "n"} <= set(metrics) and metrics["n"] == 16
    assert {"auc_ci", "acc_ci", "threshold"} <= set(metrics)  # keys kept, bootstrap intervals added
    assert metrics["acc_ci"][0] <= metrics["acc"] <= metrics["acc_ci"][1]
    assert metrics["auc_ci"][0] <= metrics["auc"] <= metrics["auc_ci"][1]
    assert json.loads((out / "config.json").read_text())["threshold"] == metrics["threshold"]
    assert main(["cnn", "evaluate", "--model", str(out), "--data", str(data), "--split", "test"]) == 2
    assert (
        main(["cnn", "train", "--data", str(data), "--out", str(out), "--epochs", "1"]) == 2
    )  # no overwrite

    volume = Volume(
        (np.random.default_rng(0).normal(0, 10, (3, 20, 20)) + 100).astype(np.float32),
        (3.0, 0.8, 0.8),
        (10.0, -5.0, 2.0),
    )
    write_nifti(volume, tmp_path / "vol.nii.gz")
    result = tmp_path / "pred"
    assert (
        main(["cnn", "predict", "--model", str(out), str(tmp_path / "vol.nii.gz"), "--out", str(result)]) == 0
    )
    table = (result / "predictions.csv").read_text().splitlines()
    assert table[0].startswith("slice,position_mm,class,class_name") and len(table) == 4
    saliency = read_nifti(result / "saliency.nii.gz")
    assert saliency.shape == (3, 20, 20) and np.allclose(
        saliency.affine, read_nifti(tmp_path / "vol.nii.gz").affine
    )
    assert (
        main(["cnn", "predict", "--model", str(tmp_path), str(tmp_path / "vol.nii.gz"), "--out", str(result)])
        == 2
    )


def test_predict_3d_volume_and_cubic_object_patches():
    torch.manual_seed(0)
    network = build_model(ModelConfig(dims=3, width=4, depths=[1, 1], stem_stride=2, stem_pool=True)).eval()
    model = LoadedModel(
        network,
        {
            "input_size": [12, 12, 12],
            "class_names": ["a", "b"],
            "normalisation": {"mode": "per_image"},
            "training": {"tta": False},
        },
    )
    volume = np.random.default_rng(0).normal(size=(10, 24, 20)).astype(np.float32)
    whole = predict(model, volume)
    assert whole.mode == "image" and whole.saliency.shape == volume.shape
    assert np.allclose(whole.probability, whole.table["p_b"][0])
    labels = np.zeros(volume.shape, np.int32)
    labels[2:5, 3:9, 3:7] = 1
    labels[6:9, 15:20, 10:18] = 4
    objects = predict(model, volume, labels=labels, spacing=(3.0, 1.0, 1.0))
    assert objects.table["label"].tolist() == [1, 4] and objects.table["voxels"].tolist() == [72, 120]
    # the objects' Grad-CAM maps are painted back over them (this untrained model has evidence for object 1;
    # a map can be all zero when no channel supports the class)
    assert objects.saliency[labels == 1].max() > 0 and objects.saliency.std() > 0
    assert np.allclose(objects.probability[labels == 4], objects.table["p_b"][1])
    with pytest.raises(ValueError, match="3D model"):
        predict(model, volume[0])


def spheres(seed: int = 0, spacing=(4.0, 0.75, 0.75)):
    """A small CT-like volume with 16 spheres (radius 3 mm) alternately dense (+200 HU) and cyst-like (-100 HU)."""
    shape = (8, 48, 48)
    rng = np.random.default_rng(seed)
    image = rng.normal(40, 10, shape).astype(np.float32)
    labels = np.zeros(shape, np.int32)
    mm = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=False)], indexing="ij", sparse=True
    )
    classes = {}
    for label in range(1, 17):
        row, column = divmod(label - 1, 4)
        centre = (
            14.0 + rng.uniform(-2, 2),
            4.5 + 9 * row + rng.uniform(-1, 1),
            4.5 + 9 * column + rng.uniform(-1, 1),
        )
        inside = sum((g - c) ** 2 for g, c in zip(mm, centre, strict=False)) <= 3.0**2
        labels[inside] = label
        classes[label] = "dense" if label % 2 else "cyst"
        image[inside] = rng.normal(200 if label % 2 else -100, 10, int(inside.sum()))
    origin, direction = (-20.0, 30.0, 5.0), np.eye(3)[:, ::-1]
    return Volume(image, spacing, origin, direction), Volume(labels, spacing, origin, direction), classes


def test_object_patches_cut_a_fixed_size_in_mm_with_anisotropic_spacing():
    from napari_medimg.learn.cnn.patches import object_patches

    shape, spacing = (12, 40, 60), (5.0, 1.0, 0.5)
    labels = np.zeros(shape, np.int32)
    labels[5:8, 18:23, 28:33] = 3  # centroid at voxel (6, 20, 30) = (30, 20, 15) mm
    labels[6, 17:24, 27:34] = 3  # the largest cross-section
    centre_mm = np.array([6.0, 20.0, 30.0]) * spacing
    for axis in range(3):  # an image whose value is the mm coordinate along one axis: patches read back mm
        ramp = (np.indices(shape)[axis] * spacing[axis]).astype(np.float32)
        (item,) = object_patches(ramp, labels, spacing, 3, size_mm=(30, 20, 10), out_size=(6, 10, 10))
        n, size = (6, 10, 10)[axis], (30, 20, 10)[axis]
        expected = centre_mm[axis] + ((np.arange(n) + 0.5) / n - 0.5) * size
        profile = np.moveaxis(item.patch, axis, 0).reshape(n, -1)
        assert item.patch.shape == (6, 10, 10)
        assert np.allclose(profile, expected[:, None], atol=1e-3)
        # a 2D patch lies in the slice of the largest cross-section, centred on that cross-section
        (flat,) = object_patches(ramp, labels, spacing, 2, size_mm=12, out_size=(8, 8))
        assert flat.plane == 6 and flat.patch.shape == (8, 8)
        if axis:
            expected = centre_mm[axis] + ((np.arange(8) + 0.5) / 8 - 0.5) * 12
            assert np.allclose(
                np.moveaxis(flat.patch, axis - 1, 0).reshape(8, -1), expected[:, None], atol=1e-3
            )
        else:
            assert np.allclose(flat.patch, 30.0)


def test_object_and_slice_datasets_and_stratified_split(tmp_path):
    import pandas as pd

    from napari_medimg.learn.cnn.data import (
        object_dataset,
        read_slice_classes,
        slice_classes_from_labels,
        slice_dataset,
        split_dataset,
    )

    image, labels, classes = spheres()
    data = object_dataset(image, labels, {**classes, 16: float("nan"), 99: "absent"}, 9.0, (12, 12))
    assert data.images.shape == (15, 1, 12, 12) and data.class_names == ["cyst", "dense"]
    assert data.labels.tolist() == [1, 0] * 7 + [1] and data.names[-1] == "label 15"
    assert data.spacing == [0.75, 0.75] and data.patch == {"size_mm": [9.0, 9.0]}
    centres = data.images[:, 0, 6, 6]  # the patch centre lies inside the sphere: +200 HU dense, -100 HU cyst
    assert centres[data.labels == 1].min() > 150 and centres[data.labels == 0].max() < -50
    cubes = object_dataset(image, labels, classes, (16.0, 9.0, 9.0), (4, 12, 12), dims=3)
    assert cubes.images.shape == (16, 1, 4, 12, 12) and cubes.spacing == [4.0, 0.75, 0.75]
    with pytest.raises(ValueError, match="voxel grid"):
        object_dataset(
            image,
            Volume(labels.array, (2.0, 0.75, 0.75), labels.origin, labels.direction),
            classes,
            9.0,
            (12, 12),
        )

    split = split_dataset(data, 0.25, seed=3)
    assert np.bincount(split["val"].labels).tolist() == [2, 2] and len(split["train"]) == 11
    again = split_dataset(data, 0.25, seed=3)
    assert split["val"].names == again["val"].names and split["val"].patch == data.patch
    assert set(split["val"].names).isdisjoint(split["train"].names)
    with pytest.raises(ValueError, match="class 'dense' has 1"):
        split_dataset(object_dataset(image, labels, {1: "dense", 2: "cyst", 4: "cyst"}, 9.0, (12, 12)))
    with pytest.raises(ValueError, match="two classes"):
        split_dataset(object_dataset(image, labels, {1: "dense", 3: "dense"}, 9.0, (12, 12)))

    small = np.zeros((4, 6, 6), np.int32)
    small[1, 0, :3], small[1, 2, :5], small[2, 0, :2], small[3] = 1, 2, 1, 3
    assert slice_classes_from_labels(small, {1: "dense", 2: "cyst", 3: None}, empty="none") == [
        "none",
        "cyst",
        "dense",
        "none",
    ]  # the class of the object with most voxels in the slice
    assert slice_classes_from_labels(small, {1: 1.0, 2: pd.NA, 3: ""}) == [None, "1", "1", None]
    per_slice = slice_classes_from_labels(labels.array, classes, empty="none")
    slices = slice_dataset(image, per_slice, (16, 16))
    assert slices.images.shape == (8, 1, 16, 16) and slices.class_names == ["cyst", "dense", "none"]
    assert slices.spacing == [2.25, 2.25]  # 48 pixels of 0.75 mm resized to 16
    csv_path = tmp_path / "slices.csv"
    csv_path.write_text("slice,label\n0,normal\n3, lesion\n3,lesion\n")
    assert read_slice_classes(csv_path, 5) == ["normal", None, None, "lesion", None]
    for text, message in (
        ("slice,label\n5,x\n", "outside 0..4"),
        ("slice,label\n1,a\n1,b\n", "listed as"),
        ("index,label\n1,a\n", r"(columns 'slice' and 'label'|lacks the column\(s\) \['slice'\])"),
    ):
        csv_path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_slice_classes(csv_path, 5)
    skipped = slice_dataset(image, slice_classes_from_labels(labels.array, classes), (16, 16))
    assert skipped.names == [f"slice {k}" for k in np.flatnonzero(labels.array.any(axis=(1, 2)))]


def test_trained_on_object_patches_predicts_with_the_same_patches(tmp_path):
    from napari_medimg.learn.cnn.data import normalise, object_dataset, split_dataset
    from napari_medimg.learn.cnn.train import predict_proba

    image, labels, classes = spheres()
    data = object_dataset(image, labels, classes, 9.0, (12, 12))
    sets = split_dataset(data, 0.25, seed=0)
    result = train(sets["train"], sets["val"], TINY, TrainConfig(epochs=8, **FAST))
    assert result.meta()["patch"] == {"size_mm": [9.0, 9.0]}
    model = load_model(save_model(result.model, result.meta(), tmp_path / "spheres"))
    assert model.meta["patch"] == {"size_mm": [9.0, 9.0]}
    # prediction cuts each object's patch exactly as the training set did
    objects = predict(model, image.array, labels=labels.array, spacing=image.spacing)
    expected = predict_proba(model.model, normalise(data.images, model.normalisation))
    assert np.allclose(objects.table[["p_cyst", "p_dense"]].to_numpy(), expected, atol=1e-5)
    assert objects.table["class_name"].tolist() == [classes[k] for k in range(1, 17)]
    assert objects.saliency.max() <= 1 and objects.saliency[labels.array > 0].mean() > 0

    torch.manual_seed(
        0
    )  # 3D: cubes of 16 x 9 x 9 mm on 4 x 12 x 12 voxels, the same in training and prediction
    network = build_model(ModelConfig(dims=3, width=4, depths=[1, 1])).eval()
    cubes = object_dataset(image, labels, classes, (16.0, 9.0, 9.0), (4, 12, 12), dims=3)
    model = LoadedModel(
        network,
        {
            "input_size": [4, 12, 12],
            "class_names": ["cyst", "dense"],
            "normalisation": {"mode": "per_image"},
            "training": {"tta": False},
            "patch": cubes.patch,
        },
    )
    objects = predict(model, image.array, labels=labels.array, spacing=image.spacing)
    expected = predict_proba(network, normalise(cubes.images, {"mode": "per_image"}))
    assert np.allclose(objects.table[["p_cyst", "p_dense"]].to_numpy(), expected, atol=1e-5)


def test_validation_threshold_and_bootstrap_intervals():
    from napari_medimg.learn.cnn.metrics import (
        bootstrap_intervals,
        choose_threshold,
        classification_metrics,
        decide,
    )

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    score = np.clip(np.r_[rng.normal(0.15, 0.08, 300), rng.normal(0.35, 0.08, 100)], 0, 1)  # shifted low
    probabilities = np.c_[1 - score, score]
    threshold = choose_threshold(labels, probabilities)
    assert 0.2 < threshold < 0.3  # between the two classes, not 0.5
    at_half = classification_metrics(labels, probabilities)
    chosen = classification_metrics(labels, probabilities, threshold=threshold)
    assert chosen["balanced_acc"] > at_half["balanced_acc"] + 0.2
    assert (decide(probabilities, threshold) == (score >= threshold)).all()
    intervals = bootstrap_intervals(labels, probabilities, threshold=threshold, n_boot=300)
    low, high = intervals["acc_ci"]
    assert low < chosen["acc"] < high and high - low < 0.12
    low, high = intervals["auc_ci"]
    assert low < chosen["auc"] < high <= 1.0
    assert choose_threshold(np.zeros(5, int), probabilities[:5]) is None


def test_2d_and_rgb_object_patches():
    """A 2D image + labels gives object patches; an RGB image layer gives 3-channel patches cut alike."""
    from napari_medimg.geometry import Volume
    from napari_medimg.learn.cnn.data import object_dataset

    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20], labels[40:50, 40:50], labels[10:20, 40:50] = 1, 2, 3
    classes = {1: "a", 2: "b", 3: "a"}
    grid = Volume(labels, (0.5, 0.5))
    colour = object_dataset(
        Volume(rgb, (0.5, 0.5, 1.0), metadata={"rgb": True}), grid, classes, 10.0, [16, 16]
    )
    assert colour.images.shape == (3, 3, 16, 16) and colour.labels.tolist() == [0, 1, 0]
    assert colour.patch == {"size_mm": [10.0, 10.0]} and colour.spacing == [0.625, 0.625]
    grey = object_dataset(Volume(rgb[..., 1], (0.5, 0.5)), grid, classes, 10.0, [16, 16])
    assert grey.images.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(grey.images[:, 0], colour.images[:, 1])  # the green channel, cut alike
    with pytest.raises(ValueError, match="differs"):
        object_dataset(
            Volume(rgb[..., 1], (0.5, 0.5)), Volume(labels[:32], (0.5, 0.5)), classes, 10.0, [16, 16]
        )


def test_cross_validation_out_of_fold_and_ensemble():
    from napari_medimg.learn.cnn.cv import cross_validate, ensemble_proba, merge_sets, stratified_folds

    labels = np.r_[np.zeros(10, int), np.ones(25, int)]
    folds = stratified_folds(labels, 5, seed=0)
    for fold in range(5):  # every fold holds both classes in proportion
        assert (labels[folds == fold] == 0).sum() == 2 and (labels[folds == fold] == 1).sum() == 5
    with pytest.raises(ValueError, match="fewer than"):
        stratified_folds(np.r_[0, 1, 1, 1], 3)
    data = merge_sets(blobs(24), blobs(16, seed=1))
    assert len(data) == 40
    fast = {k: v for k, v in FAST.items() if k != "threads"}
    result = cross_validate(
        data, {"width": 8, "depths": [1, 1], "dropout": 0.0}, TrainConfig(epochs=3, **fast), k=4
    )
    assert (
        result.probabilities.shape == (40, 2) and len(result.results) == 4 and len(result.fold_metrics) == 4
    )
    np.testing.assert_allclose(result.probabilities.sum(1), 1, atol=1e-5)  # every example predicted once
    assert result.metrics["n"] == 40 and result.metrics["auc"] > 0.9
    assert result.metrics["auc_ci"][0] <= result.metrics["auc"] <= result.metrics["auc_ci"][1]
    test = blobs(12, seed=5)
    ensemble = ensemble_proba(result.results, test.images)
    assert ensemble.shape == (12, 2) and np.mean(ensemble.argmax(1) == test.labels) > 0.8
