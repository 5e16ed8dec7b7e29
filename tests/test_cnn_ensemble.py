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
