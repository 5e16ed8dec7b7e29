"""CNN ensembles of k-fold models: one safe model folder, the mean of the members' probabilities, the CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from test_cnn_core import FAST as CORE_FAST  # tests/ is on sys.path under pytest

from napari_medimg.learn.cnn.cv import cross_validate, ensemble_model, ensemble_proba, merge_sets
from napari_medimg.learn.cnn.data import ImageSet, normalise
from napari_medimg.learn.cnn.files import ModelFileError, load_model, save_model
from napari_medimg.learn.cnn.models import Ensemble
from napari_medimg.learn.cnn.predict import predict, predict_arrays
from napari_medimg.learn.cnn.train import TrainConfig, predict_proba

FAST = {**CORE_FAST, "flip_axes": [-1]}
TINY = {"width": 8, "depths": [1, 1], "dropout": 0.0}


def blobs(n: int, size: int = 16, seed: int = 0, offset: float = 0.0) -> ImageSet:
    """Class 1: a bright blob in the centre; class 0: in a corner (``offset`` shifts the intensities)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(offset, 0.3, (n, 1, size, size)).astype(np.float32)
    labels = np.arange(n) % 2
    for i, label in enumerate(labels):
        region = (slice(5, 11),) * 2 if label else (slice(0, 6),) * 2
        images[(i, 0, *region)] += 2.0
    return ImageSet(images, labels, ["corner", "centre"])


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    # members see differently offset training folds, so their normalisations differ and must be re-mapped
    data = merge_sets(blobs(18), blobs(12, seed=1, offset=0.5), blobs(6, seed=2, offset=1.0))
    cv = cross_validate(data, TINY, TrainConfig(epochs=3, **FAST), k=3)
    ensemble, meta = ensemble_model(cv)
    folder = save_model(ensemble, meta, tmp_path_factory.mktemp("ensemble") / "model")
    return cv, ensemble, meta, folder


def test_ensemble_probability_is_the_mean_of_its_members(folds):
    cv, ensemble, meta, _ = folds
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    norms = [r.normalisation["mean"][0] for r in cv.results]
    assert max(norms) - min(norms) > 0.01  # the members were fitted on different means
    raw = blobs(10, seed=7, offset=0.3).images
    members = np.mean(
        [predict_proba(r.model, normalise(raw, r.normalisation), tta_axes=[-1]) for r in cv.results], axis=0
    )
    mine = predict_proba(ensemble, normalise(raw, meta["normalisation"]), tta_axes=[-1])
    np.testing.assert_allclose(mine, members, atol=1e-5)
    np.testing.assert_allclose(mine, ensemble_proba(cv.results, raw), atol=1e-5)
    # and without test-time flips, the forward pass alone averages the members' softmax outputs
    x = torch.from_numpy(normalise(raw, meta["normalisation"]))
    with torch.no_grad():
        single = [
            torch.softmax(r.model.eval()(torch.from_numpy(normalise(raw, r.normalisation))), 1)
            for r in cv.results
        ]
        np.testing.assert_allclose(
            torch.softmax(ensemble(x), 1).numpy(), torch.stack(single).mean(0).numpy(), atol=1e-6
        )


def test_ensemble_save_load_identical_predictions(folds):
    cv, ensemble, meta, folder = folds
    loaded = load_model(folder)
    assert isinstance(loaded.model, Ensemble) and len(loaded.model.members) == 3
    description = json.loads((folder / "config.json").read_text())
    assert description["ensemble"]["members"] == 3 and len(description["ensemble"]["best_epochs"]) == 3
    assert description["threshold"] == pytest.approx(cv.metrics["threshold"])
    assert {"auc_ci", "acc_ci"} <= set(description["metrics"]["val"])  # out-of-fold figures
    raw = blobs(10, seed=8).images
    x = torch.from_numpy(normalise(raw, meta["normalisation"]))
    with torch.no_grad():
        assert torch.equal(ensemble.eval()(x), loaded.model(x))
    probabilities, maps = predict_arrays(loaded, raw[:, 0])
    np.testing.assert_allclose(probabilities, ensemble_proba(cv.results, raw), atol=1e-5)
    assert maps.shape == (10, 16, 16) and maps.min() >= 0 and maps.max() <= 1  # Grad-CAM of the members
    assert np.mean(probabilities.argmax(1) == blobs(10, seed=8).labels) >= 0.8
    image = predict(loaded, raw[1, 0])  # the prediction API takes it like a single network
    assert image.mode == "image" and image.table.shape[0] == 1


def _rewrite(folder, target, edit_tensors=None, edit_meta=None):
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    tensors = load_file(str(folder / "model.safetensors"))
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "napari-medimg-cnn"})
    meta = json.loads((folder / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()
    if edit_meta:
        edit_meta(meta)
    (target / "config.json").write_text(json.dumps(meta))
    return target


def test_loader_checks_every_member(folds, tmp_path):
    _, _, _, folder = folds

    def nan_in_member_2(tensors):
        tensors["members.2.head.weight"][0, 0] = float("nan")

    with pytest.raises(ModelFileError, match=r"members\.2\.head\.weight.*NaN"):
        load_model(_rewrite(folder, tmp_path / "nan", nan_in_member_2))

    def drop_member_1(tensors):
        for name in [n for n in tensors if n.startswith("members.1.")]:
            del tensors[name]

    with pytest.raises(ModelFileError, match="missing"):
        load_model(_rewrite(folder, tmp_path / "short", drop_member_1))

    def negative_scale(tensors):
        tensors["input_scale"][1] = -1.0

    with pytest.raises(ModelFileError, match="input scale"):
        load_model(_rewrite(folder, tmp_path / "scale", negative_scale))
    for members in (1, 21, "3", True):

        def declare(meta, members=members):
            meta["ensemble"]["members"] = members

        with pytest.raises(ModelFileError, match="ensemble must be"):
            load_model(_rewrite(folder, tmp_path / f"members{members}", edit_meta=declare))

    def declare_more(meta):
        meta["ensemble"]["members"] = 4

    with pytest.raises(ModelFileError, match="missing"):  # four members declared, three stored
        load_model(_rewrite(folder, tmp_path / "more", edit_meta=declare_more))


def test_cross_validation_keeps_a_hard_time_budget():
    import time

    data = merge_sets(blobs(30), blobs(30, seed=1))
    start = time.monotonic()
    cv = cross_validate(data, TINY, TrainConfig(epochs=10_000, patience=10_000, minutes=0.1, **FAST), k=3)
    elapsed = time.monotonic() - start
    assert elapsed < 0.1 * 60 + 4  # every fold stops within the share of the budget that is left
    assert all(r.stopped == "time_budget" for r in cv.results)
    assert sum(len(r.history) for r in cv.results) > 3


def _train_cli(tmp_path, *extra):
    from napari_medimg.cli import main

    args = ["cnn", "train", "--out", str(tmp_path / "model"), "--seed", "0", "--epochs", "3"]
    args += ["--width", "8", "--depths", "1", "1", "--threads", "1", "--batch-size", "16", *extra]
    return main([str(a) for a in args])


def _blob_npz(path, n=36, seed=0, flip=False):
    data = blobs(n, seed=seed)
    data.labels = 1 - data.labels if flip else data.labels
    images = (data.images[:, 0] * 40 + 100).clip(0, 255).astype(np.uint8)
    np.savez(
        path,
        val_images=images,
        val_labels=data.labels[:, None],
        train_images=images[:4],
        train_labels=data.labels[:4, None],
    )
    return images, data.labels


def test_cli_trains_a_fold_ensemble_from_png_files_and_uses_it(tmp_path, capsys):
    import pandas as pd
    from skimage.io import imread, imsave

    from napari_medimg.cli import main

    _blob_npz(tmp_path / "test.npz", seed=3, flip=True)  # class 0 is "centre" for a model of sorted names
    paths, classes = [], []
    for i, (image, label) in enumerate(zip(*_blob_npz(tmp_path / "train.npz", n=30), strict=True)):
        paths.append(tmp_path / f"img{i:02d}.png")
        imsave(paths[-1], image, check_contrast=False)
        classes.append(["corner", "centre"][label])
    capsys.readouterr()
    assert _train_cli(tmp_path, "--images", *paths, "--labels", *classes, "--size", 16, 16, "--folds", 3) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert {"auc", "acc", "auc_ci", "acc_ci", "threshold", "n"} <= set(printed) and printed["n"] == 30
    assert "fold 3/3" in captured.err and "ensemble of 3 fold models" in captured.err
    model = tmp_path / "model"
    description = json.loads((model / "config.json").read_text())
    assert description["ensemble"]["members"] == 3 and description["class_names"] == ["centre", "corner"]
    assert (model / "roc_val.png").is_file()
    assert (
        main(["cnn", "evaluate", "--model", str(model), "--data", str(tmp_path / "test.npz"), "--json"]) == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 36 and metrics["auc"] > 0.8 and metrics["threshold"] == description["threshold"]
    out = tmp_path / "pred"
    assert main(["cnn", "predict", "--model", str(model), str(paths[1]), "--out", str(out)]) == 0
    table = pd.read_csv(out / "predictions.csv")
    expected, _ = predict_arrays(load_model(model), imread(paths[1])[None], saliency=False)
    np.testing.assert_allclose(table[["p_centre", "p_corner"]].to_numpy()[0], expected[0], atol=1e-5)
    assert _train_cli(tmp_path, "--images", *paths, "--labels", "a", "--size", 16, 16, "--overwrite") == 2
    assert "--labels needs one class per --images file" in capsys.readouterr().err
    extra = ("--size", 16, 16, "--folds", 1, "--overwrite")
    assert _train_cli(tmp_path, "--images", *paths, "--labels", *classes, *extra) == 2
    assert "--folds must be 2..20" in capsys.readouterr().err


def test_cli_trains_from_nifti_volumes_and_rgb_tiffs(tmp_path):
    from skimage.io import imsave

    from napari_medimg.geometry import Volume
    from napari_medimg.io.nifti import write_nifti

    rng = np.random.default_rng(0)
    volumes, tiffs, classes = [], [], []
    for i in range(12):
        volume = rng.normal(100, 10, (10, 10, 10)).astype(np.float32)
        centre = i % 2 == 1
        volume[(slice(3, 7),) * 3 if centre else (slice(0, 4),) * 3] += 80
        volumes.append(tmp_path / f"v{i:02d}.nii.gz")
        write_nifti(Volume(volume, (2.0, 1.0, 1.0)), volumes[-1])
        rgb = np.stack([volume[5], volume[5] * 0.5, volume[5] * 0.2], axis=-1).clip(0, 255).astype(np.uint8)
        tiffs.append(tmp_path / f"rgb{i:02d}.tif")
        imsave(tiffs[-1], rgb, check_contrast=False)
        classes.append("centre" if centre else "corner")
    extra = ("--size", 8, 8, 8, "--folds", 2)  # a 3D ensemble
    assert _train_cli(tmp_path, "--images", *volumes, "--labels", *classes, *extra) == 0
    description = json.loads((tmp_path / "model" / "config.json").read_text())
    assert description["model"]["dims"] == 3 and description["input_size"] == [8, 8, 8]
    assert description["spacing"] == [2.5, 1.25, 1.25]  # the pitch of the network's input grid (10 -> 8)
    assert description["ensemble"]["members"] == 2
    from napari_medimg.cli import main
    from napari_medimg.io.nifti import read_nifti

    assert (
        main(
            [
                "cnn",
                "predict",
                "--model",
                str(tmp_path / "model"),
                str(volumes[3]),
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    saliency = read_nifti(tmp_path / "p" / "saliency.nii.gz")  # Grad-CAM of the 3D members, on the input grid
    assert saliency.shape == (10, 10, 10) and saliency.array.min() >= 0 and saliency.array.max() <= 1
    out = tmp_path / "rgb"
    assert _train_cli(out, "--images", *tiffs, "--labels", *classes, "--size", 8, 8) == 0
    description = json.loads((out / "model" / "config.json").read_text())
    assert description["model"]["in_channels"] == 3 and description["spacing"] is None


def test_the_cli_and_the_panel_start_from_the_default_recipe(make_napari_viewer):
    import argparse

    from napari_medimg.cli.cnn import register
    from napari_medimg.learn.cnn.recipe import DEFAULT_RECIPE, recipe_configs
    from napari_medimg.plugin.widgets.cnn import CNNWidget

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["cnn", "train", "--data", "x.npz", "--out", "m"])
    assert (args.balance, args.lr, args.epochs, args.augmentation, args.depths) == (
        DEFAULT_RECIPE["balance"],
        DEFAULT_RECIPE["lr"],
        DEFAULT_RECIPE["epochs"],
        DEFAULT_RECIPE["augmentation"],
        DEFAULT_RECIPE["depths"],
    )
    widget = CNNWidget(make_napari_viewer())
    assert (
        widget.balance.value == DEFAULT_RECIPE["balance"] and widget.epochs.value == DEFAULT_RECIPE["epochs"]
    )
    assert widget.augmentation.value == DEFAULT_RECIPE["augmentation"] and widget.folds.value == 0
    model, training = recipe_configs(3, {"augmentation": "flips"}, minutes=2.0)
    assert model["width"] == DEFAULT_RECIPE["width_3d"] and model["stem_stride"] == 2 and model["stem_pool"]
    assert (
        training["rotate_deg"] == 0 and training["flip_axes"] == [-3, -2, -1] and training["minutes"] == 2.0
    )
    with pytest.raises(ValueError, match="unknown recipe keys"):
        recipe_configs(2, {"widht": 3})
    with pytest.raises(ValueError, match="augmentation must be"):
        recipe_configs(2, {"augmentation": "heavy"})
