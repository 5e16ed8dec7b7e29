"""CNN core: data loading, training behaviour, model files, metrics, Grad-CAM, predictions and the CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from napari_medimg.learn.cnn.data import ImageSet, load_folder, load_npz, to_channels_first
from napari_medimg.learn.cnn.explain import grad_cam
from napari_medimg.learn.cnn.files import LoadedModel, ModelFileError, load_model, save_model
from napari_medimg.learn.cnn.metrics import classification_metrics, plot_roc
from napari_medimg.learn.cnn.models import ModelConfig, build_model
from napari_medimg.learn.cnn.predict import predict
from napari_medimg.learn.cnn.train import TrainConfig, augment_batch, train

TINY = ModelConfig(width=8, depths=[1, 1], dropout=0.0)
FAST = dict(batch_size=16, lr=1e-2, warmup_epochs=0.5, rotate_deg=0, scale=0, translate=0, intensity=0,
            flip_axes=[], ema_epochs=0, threads=1)


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
    noise = ImageSet(rng.normal(size=(16, 1, 12, 12)).astype(np.float32), rng.permutation(np.arange(16) % 2),
                     ["a", "b"])
    result = train(noise, noise, TINY, TrainConfig(epochs=30, patience=100, tta=False, **{**FAST, "lr": 3e-3}))
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
    result = train(data, data, TINY, TrainConfig(epochs=50, **FAST), on_epoch=calls.append,
                   stop=lambda: len(calls) >= 2)
    assert result.stopped == "cancelled" and len(result.history) == 2 and result.best_epoch in (1, 2)
    budget = train(data, data, TINY, TrainConfig(epochs=1000, minutes=0.02, patience=1000, **FAST))
    assert budget.stopped == "time_budget" and budget.seconds < 5


def test_model_shapes_2d_rgb_and_3d():
    for dims, channels, size in ((2, 1, 28), (2, 3, 28), (3, 1, 16)):
        model = build_model(ModelConfig(dims=dims, in_channels=channels, n_classes=3, width=8, depths=[1, 2, 1]))
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
    np.savez(path, train_images=np.zeros((6, 10, 10, 3), np.uint8), train_labels=np.array([[0], [1], [2]] * 2),
             val_images=np.zeros((3, 10, 10, 3), np.uint8), val_labels=np.array([0, 1, 2]))
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
    assert multi["acc"] == 0.75 and multi["auc"] == pytest.approx((1 + 0.75 + 2.5 / 3) / 3)  # macro one-vs-rest
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
    for change, message in (({"model": {**meta["model"], "width": 16}}, "needs"),
                            ({"format": "something"}, "format"),
                            ({"class_names": ["one"]}, "class_names"),
                            ({"model": {**meta["model"], "evil": 1}}, "architecture"),
                            ({"normalisation": {"mode": "fixed", "mean": [0], "std": [0]}}, "std")):
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
    assert maps.shape == (4, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    centre = maps[data.labels == 1][:, 5:11, 5:11].mean()
    assert centre > maps[data.labels == 1].mean()


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
    np.savez(data, train_images=(train_set.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8),
             train_labels=train_set.labels[:, None], val_images=(val_set.images[:, 0] * 40 + 100).clip(0, 255)
             .astype(np.uint8), val_labels=val_set.labels[:, None])
    out = tmp_path / "model"
    assert main(["cnn", "train", "--data", str(data), "--out", str(out), "--dims", "2", "--minutes", "0.5",
                 "--seed", "1", "--epochs", "3", "--width", "8", "--depths", "1", "1", "--threads", "1"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "roc_val.png").is_file()
    capsys.readouterr()
    assert main(["cnn", "evaluate", "--model", str(out), "--data", str(data), "--split", "val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"acc", "auc", "balanced_acc", "f1", "n"} <= set(metrics) and metrics["n"] == 16
    assert main(["cnn", "evaluate", "--model", str(out), "--data", str(data), "--split", "test"]) == 2
    assert main(["cnn", "train", "--data", str(data), "--out", str(out), "--epochs", "1"]) == 2  # no overwrite

    volume = Volume((np.random.default_rng(0).normal(0, 10, (3, 20, 20)) + 100).astype(np.float32),
                    (3.0, 0.8, 0.8), (10.0, -5.0, 2.0))
    write_nifti(volume, tmp_path / "vol.nii.gz")
    result = tmp_path / "pred"
    assert main(["cnn", "predict", "--model", str(out), str(tmp_path / "vol.nii.gz"), "--out", str(result)]) == 0
    table = (result / "predictions.csv").read_text().splitlines()
    assert table[0].startswith("slice,position_mm,class,class_name") and len(table) == 4
    saliency = read_nifti(result / "saliency.nii.gz")
    assert saliency.shape == (3, 20, 20) and np.allclose(saliency.affine, read_nifti(tmp_path / "vol.nii.gz").affine)
    assert main(["cnn", "predict", "--model", str(tmp_path), str(tmp_path / "vol.nii.gz"), "--out",
                 str(result)]) == 2


def test_predict_3d_volume_and_cubic_object_patches():
    torch.manual_seed(0)
    network = build_model(ModelConfig(dims=3, width=4, depths=[1, 1], stem_stride=2, stem_pool=True)).eval()
    model = LoadedModel(network, {"input_size": [12, 12, 12], "class_names": ["a", "b"],
                                  "normalisation": {"mode": "per_image"}, "training": {"tta": False}})
    volume = np.random.default_rng(0).normal(size=(10, 24, 20)).astype(np.float32)
    whole = predict(model, volume)
    assert whole.mode == "image" and whole.saliency.shape == volume.shape
    assert np.allclose(whole.probability, whole.table["p_b"][0])
    labels = np.zeros(volume.shape, np.int32)
    labels[2:5, 3:9, 3:7] = 1
    labels[6:9, 15:20, 10:18] = 4
    objects = predict(model, volume, labels=labels, spacing=(3.0, 1.0, 1.0))
    assert objects.table["label"].tolist() == [1, 4] and objects.table["voxels"].tolist() == [72, 120]
    assert np.all(objects.saliency[labels == 0][:10] >= 0) and objects.saliency.max() <= 1
    assert np.allclose(objects.probability[labels == 4], objects.table["p_b"][1])
    with pytest.raises(ValueError, match="3D model"):
        predict(model, volume[0])
