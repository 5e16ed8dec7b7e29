"""U-Net core: sparse-label training, sliding-window inference, safe model folders, CLI contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_medimg.learn.cnn.files import ModelFileError
from napari_medimg.learn.unet import (
    UNetConfig,
    UNetTrainConfig,
    build_unet,
    load_unet,
    loaded,
    save_unet,
    segment,
    train_unet,
)
from napari_medimg.learn.unet.data import Annotated, PatchSampler, as_channels_first
from napari_medimg.learn.unet.infer import gaussian_weights, window_starts
from napari_medimg.learn.unet.model import plan_pooling
from napari_medimg.learn.unet.train import augment, segmentation_loss
from napari_medimg.progress import Cancelled

FAST = {"batch_size": 4, "patch": [32, 32], "lr": 5e-3}


def disk_image(rng, shape=(64, 64), rgb=False):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disk = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2 - 3) ** 2 < (shape[0] / 4) ** 2
    image = disk * 2.0 + rng.normal(0, 0.4, shape)
    if rgb:
        image = (
            np.stack([image * 60 + 80, image * 20 + 100, 120 - image * 30], -1).clip(0, 255).astype(np.uint8)
        )
    return image, np.where(disk, 2, 1).astype(np.uint8)


@pytest.fixture(scope="module")
def trained_2d():
    rng = np.random.default_rng(0)
    image, truth = disk_image(rng)
    sparse = np.zeros_like(truth)
    sparse[::6] = truth[::6]  # every 6th row annotated, the rest unlabelled
    result = train_unet([image], [sparse], config=UNetTrainConfig(iterations=80, **FAST), width=8, levels=3)
    return image, truth, result


def test_sparse_labels_train_a_segmenter(trained_2d):
    image, truth, result = trained_2d
    seg = segment(loaded(result), image)
    assert seg.labels.shape == truth.shape and seg.labels.dtype == np.uint8
    assert set(np.unique(seg.labels)) <= {1, 2}
    accuracy = float(np.mean(seg.labels == truth))
    assert accuracy > 0.95, accuracy
    assert seg.target == 2 and seg.probability.shape == truth.shape
    assert seg.probability.min() >= 0.0 and seg.probability.max() <= 1.0
    assert result.history and result.history[-1]["step"] == 80


def test_unlabelled_voxels_carry_no_loss():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, :4] = 1
    labels[1, 4:] = 3
    loss, _ = segmentation_loss(logits, labels)
    loss.backward()
    unlabelled = (labels == 0).unsqueeze(1).expand_as(logits)
    assert torch.all(logits.grad[unlabelled] == 0)
    assert torch.any(logits.grad[~unlabelled] != 0)
    empty, dice = segmentation_loss(logits, torch.zeros_like(labels))
    assert float(empty.detach()) == 0.0 and np.isnan(dice)


def test_patches_are_balanced_by_class():
    labels = np.ones((1, 100, 100), np.int32)
    labels[0, 50, 50] = 2  # one voxel of class 2 among 9999 of class 1
    image = np.zeros((1, 1, 100, 100), np.float32)
    sampler = PatchSampler([Annotated(image, labels)], [1, 9, 9], 2, seed=0)
    _, patches = sampler.sample(200)
    with_rare = np.mean([(p == 2).any() for p in patches])
    assert 0.35 < with_rare < 0.65  # about half the patches hold the rare class


def test_augmentation_in_mm_keeps_labels_on_the_image():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 4:12, 4:12] = 1
    y = (x[:, 0] > 0).long() + 1
    config = UNetTrainConfig(rotate_deg=40, scale=0.2, intensity=0.0, flip=True)
    xa, ya = augment(x, y, [1.0, 3.0], config, torch.Generator().manual_seed(1))
    assert xa.shape == x.shape and ya.shape == y.shape
    inside = ya == 2
    assert inside.any() and float(xa[0, 0][inside[0]].mean()) > 0.8  # labels moved with the image
    assert float(xa[0, 0][(ya == 1)[0]].mean()) < 0.2
    assert set(torch.unique(ya).tolist()) <= {0, 1, 2}


def test_pooling_follows_the_spacing():
    assert plan_pooling([2.5, 0.7, 0.7], 4, 3) == [[1, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert plan_pooling([1, 1, 1], 3, 3) == [[2, 2, 2], [2, 2, 2]]
    config = UNetConfig(dims=3, levels=3, pooling=[[1, 2, 2], [2, 2, 2]])
    assert config.divisor == [2, 4, 4]
    with pytest.raises(ValueError, match="pooling"):
        UNetConfig(dims=3, levels=3, pooling=[[2, 2]])


def test_sliding_window_blends_and_covers():
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(100, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 68 and max(np.diff(starts)) <= 16
    weights = gaussian_weights([1, 8, 8])
    assert weights.shape == (1, 8, 8) and weights.max() == 1 and weights.min() > 0
    assert weights[0, 3, 3] > weights[0, 0, 0]


def test_windowed_result_matches_one_window(trained_2d):
    image, _, result = trained_2d
    model = loaded(result)
    whole = segment(model, image, window=[64, 64])
    tiled = segment(model, image, window=[32, 32], overlap=0.5)
    agreement = np.mean(whole.labels == tiled.labels)
    assert agreement > 0.97, agreement


def test_progress_and_cancel(trained_2d):
    image, _, result = trained_2d
    calls = []
    segment(loaded(result), image, window=[32, 32], progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] > 1

    def cancel(done, total):
        raise Cancelled("test")

    with pytest.raises(Cancelled):
        segment(loaded(result), image, window=[32, 32], progress=cancel)


def test_model_folder_round_trip_and_refusals(tmp_path, trained_2d):
    image, _, result = trained_2d
    folder = save_unet(result.model, result.meta(), tmp_path / "model")
    assert {"config.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    again = load_unet(folder)
    np.testing.assert_array_equal(segment(again, image).labels, segment(loaded(result), image).labels)
    with pytest.raises(FileExistsError):
        save_unet(result.model, result.meta(), folder)
    # a pickled checkpoint renamed to .safetensors is refused without unpickling
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((folder / "config.json").read_text())
    torch.save(result.model.state_dict(), bad / "model.safetensors")
    with pytest.raises(ModelFileError, match="safetensors"):
        load_unet(bad)
    meta = json.loads((folder / "config.json").read_text())
    meta["model"]["width"] = 4
    (bad / "config.json").write_text(json.dumps(meta))
    (bad / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="tensor"):
        load_unet(bad)
    meta["model"]["width"] = 8
    meta["patch"] = [33, 32]
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="patch"):
        load_unet(bad)
    with pytest.raises(ModelFileError, match="format"):
        (bad / "config.json").write_text(json.dumps({**meta, "format": "napari-medimg-cnn"}))
        load_unet(bad)


def test_retraining_starts_from_previous_weights(trained_2d):
    image, truth, result = trained_2d
    before = {k: v.clone() for k, v in result.model.state_dict().items()}
    again = train_unet(
        [image],
        [truth],
        config=UNetTrainConfig(iterations=2, **FAST),
        initial=result.model,
        normalisation=result.normalisation,
    )
    assert again.model.config == result.model.config
    moved = max(
        float((again.model.state_dict()[k].float() - v.float()).abs().max()) for k, v in before.items()
    )
    fresh = build_unet(result.model.config).state_dict()
    distance_fresh = float((fresh["head.weight"] - before["head.weight"]).abs().max())
    distance_again = float((again.model.state_dict()["head.weight"] - before["head.weight"]).abs().max())
    assert moved > 0 and distance_again < distance_fresh
    assert np.mean(segment(loaded(again), image).labels == truth) > 0.95


def test_refuses_single_class_and_bad_grids():
    rng = np.random.default_rng(1)
    image, truth = disk_image(rng)
    with pytest.raises(ValueError, match="two classes"):
        train_unet([image], [np.where(truth == 2, 2, 0)], config=UNetTrainConfig(iterations=1))
    with pytest.raises(ValueError, match="grid"):
        train_unet([image], [truth[:10]], config=UNetTrainConfig(iterations=1))


def test_rgb_and_channels():
    rng = np.random.default_rng(2)
    image, truth = disk_image(rng, rgb=True)
    assert as_channels_first(image).shape == (3, 1, 64, 64)
    assert as_channels_first(image[..., 0]).shape == (1, 1, 64, 64)
    assert as_channels_first(np.zeros((5, 8, 3)), channels=1).shape == (1, 5, 8, 3)  # 3 columns, not colour
    result = train_unet([image], [truth], config=UNetTrainConfig(iterations=30, **FAST), width=8, levels=3)
    assert result.model.config.in_channels == 3
    seg = segment(loaded(result), image)
    assert seg.labels.shape == (64, 64) and np.mean(seg.labels == truth) > 0.9
    with pytest.raises(ValueError, match="3-channel"):
        segment(loaded(result), image[..., 0])


def test_3d_slab_wise_and_2d_model_on_a_volume():
    rng = np.random.default_rng(3)
    image, truth = disk_image(rng, (32, 32))
    volume = np.stack([image] * 12)
    labels = np.stack([truth] * 12)
    sparse = np.zeros_like(labels)
    sparse[::4] = labels[::4]
    config = UNetTrainConfig(iterations=40, batch_size=2, patch=[8, 32, 32], lr=5e-3)
    result = train_unet([volume], [sparse], [(3.0, 1.0, 1.0)], config=config, dims=3, width=4, levels=3)
    assert result.model.config.dims == 3 and result.model.config.pooling == [[1, 2, 2], [2, 2, 2]]
    calls = []
    seg = segment(
        loaded(result), volume, target="all", window=[4, 32, 32], progress=lambda d, t: calls.append(d)
    )
    assert seg.labels.shape == volume.shape and seg.probability.shape == (2, *volume.shape)
    np.testing.assert_allclose(seg.probability.sum(0), 1.0, atol=1e-4)
    assert len(calls) > 1 and np.mean(seg.labels == labels) > 0.9
    flat = train_unet(
        [volume], [sparse], config=UNetTrainConfig(iterations=30, **FAST), dims=2, width=8, levels=3
    )
    seg2 = segment(loaded(flat), volume)
    assert flat.model.config.dims == 2 and seg2.labels.shape == volume.shape
    assert np.mean(seg2.labels == labels) > 0.9
