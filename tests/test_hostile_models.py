"""Issue 12, items 14, 20, 22–23 (model files): hostile or broken model folders are refused with one clear
line before anything large is built; model folders are written as one unit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_medimg.cli import main
from napari_medimg.io.atomic import MARKER
from napari_medimg.learn.cnn.files import (
    CONFIG,
    WEIGHTS,
    ModelFileError,
    load_model,
    model_size,
    save_model,
)
from napari_medimg.learn.cnn.models import ModelConfig, build_model

META = {
    "input_size": [16, 16],
    "normalisation": {"mode": "fixed", "mean": [0.0], "std": [1.0]},
    "class_names": ["a", "b"],
}


@pytest.fixture
def model_dir(tmp_path) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depths=[1, 1]))
    return save_model(model, dict(META), tmp_path / "model")


def _edit_config(folder: Path, change) -> None:
    meta = json.loads((folder / CONFIG).read_text())
    change(meta)
    (folder / CONFIG).write_text(json.dumps(meta))


def _edit_weights(folder: Path, change) -> None:
    tensors = load_file(folder / WEIGHTS)
    change(tensors)
    save_file(tensors, folder / WEIGHTS)
    meta = json.loads((folder / CONFIG).read_text())
    meta.pop("weights_sha256")  # an attacker rewrites both files consistently
    (folder / CONFIG).write_text(json.dumps(meta))


def test_a_saved_model_loads_and_is_one_unit(model_dir):
    loaded = load_model(model_dir)
    assert loaded.class_names == ["a", "b"] and (model_dir / MARKER).is_file()
    assert len(json.loads((model_dir / CONFIG).read_text())["weights_sha256"]) == 64


def test_weights_of_another_model_beside_the_config_are_refused(model_dir, tmp_path):
    other = save_model(build_model(ModelConfig(width=4, depths=[1, 1])), dict(META), tmp_path / "other")
    (model_dir / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())  # what a kill between two writes did
    with pytest.raises(ModelFileError, match="mixes two models"):
        load_model(model_dir)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("width", "8", "'width' must be an integer, got '8'"),
        ("width", 8.5, "'width' must be an integer, got 8.5"),
        ("n_classes", 2.0, "'n_classes' must be an integer, got 2.0"),
        ("depths", [1, "1"], "'depths' must be a list of integers"),
        ("stem_pool", 1, "'stem_pool' must be true or false"),
        ("dropout", "0.2", "'dropout' must be a number"),
    ],
)
def test_wrong_types_in_the_architecture_are_refused_by_name(model_dir, key, value, message):
    def change(meta):
        meta["model"][key] = value

    _edit_config(model_dir, change)
    with pytest.raises(ModelFileError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_model(model_dir)


def test_deeply_nested_json_is_one_clear_error(model_dir, capsys):
    (model_dir / CONFIG).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model(model_dir)


def test_huge_architectures_are_refused_with_the_numbers_before_building(model_dir, monkeypatch):
    import napari_medimg.learn.cnn.files as files

    monkeypatch.setattr(files, "build_model", lambda config: pytest.fail("built a hostile network"))

    def huge(meta):
        meta["model"].update(width=512, depths=[8] * 6)
        meta["input_size"] = [64, 64]

    _edit_config(model_dir, huge)
    with pytest.raises(ModelFileError, match=r"parameters \(.* GiB\); the limit is 50,000,000"):
        load_model(model_dir)

    def big_input(meta):
        meta["model"].update(dims=3, width=8, depths=[1, 1], stem_stride=2, stem_pool=True)
        meta["input_size"] = [1024, 1024, 1024]
        meta["normalisation"] = {"mode": "per_image"}

    _edit_config(model_dir, big_input)
    with pytest.raises(ModelFileError, match=r"1024x1024x1024 input needs .* GiB of activations"):
        load_model(model_dir)


def test_the_size_estimate_matches_the_built_network():
    config = ModelConfig(width=8, depths=[1, 2])
    built = sum(p.numel() for p in build_model(config).parameters())
    parameters, activation = model_size(config, [32, 32])
    assert abs(parameters - built) / built < 0.05 and activation > 32 * 32 * 8 * 4


@pytest.mark.parametrize("case", ["negative_var", "huge", "tiny_std"])
def test_finite_but_broken_weights_are_refused(model_dir, case):
    if case == "tiny_std":

        def change(meta):
            meta["normalisation"]["std"] = [1e-46]

        _edit_config(model_dir, change)
        match = "normalisation std must be at least"
    else:

        def change(tensors):
            name = "stem.1.running_var" if case == "negative_var" else "head.weight"
            tensors[name] = torch.full_like(tensors[name], -0.5 if case == "negative_var" else 3e38)

        _edit_weights(model_dir, change)
        match = "variance of -0.5" if case == "negative_var" else "reaches 3e"
    with pytest.raises(ModelFileError, match=match):
        load_model(model_dir)


def test_fifo_or_device_as_weights_is_not_a_regular_file(model_dir, tmp_path):
    (model_dir / WEIGHTS).unlink()
    os.mkfifo(model_dir / WEIGHTS)  # opening it would block forever
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(model_dir)
    (model_dir / WEIGHTS).unlink()
    os.symlink("/dev/zero", model_dir / WEIGHTS)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(model_dir)
    (model_dir / CONFIG).unlink()
    os.mkfifo(model_dir / CONFIG)
    with pytest.raises(ModelFileError, match="config.json is not a regular file"):
        load_model(model_dir)


def test_cli_reports_hostile_models_in_one_line(model_dir, tmp_path, capsys):
    def change(meta):
        meta["model"]["width"] = 8.5

    _edit_config(model_dir, change)
    code = main(
        ["cnn", "predict", "--model", str(model_dir), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "must be an integer, got 8.5" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "divisible by groups" not in err
