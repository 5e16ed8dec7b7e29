"""``medimg unet train|predict``: the CLI contract, PNG in → PNG labels out, NIfTI volumes, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_medimg.cli import main
from napari_medimg.io.raster import read_image


@pytest.fixture()
def rgb_pair(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :56]
    disk = (yy - 32) ** 2 + (xx - 26) ** 2 < 250
    rgb = np.stack([disk * 150 + 50, disk * 80 + 60, 100 - disk * 50], -1) + rng.normal(0, 10, (64, 56, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(tmp_path / "image.png")
    labels = np.zeros((64, 56), np.uint8)
    labels[::3] = np.where(disk, 2, 1)[::3]  # sparse strokes: every 3rd row, the rest unlabelled
    Image.fromarray(labels).save(tmp_path / "labels.png")
    return tmp_path, np.where(disk, 2, 1)


def test_train_and_predict_png(rgb_pair, capsys):
    folder, truth = rgb_pair
    model = folder / "model"
    args = ["unet", "train", "--image", str(folder / "image.png"), "--labels", str(folder / "labels.png")]
    args += [
        "--out",
        str(model),
        "--iterations",
        "60",
        "--width",
        "8",
        "--levels",
        "3",
        "--patch",
        "32",
        "32",
    ]
    assert main([*args, "--seed", "1", "--batch-size", "4", "--minutes", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dims"] == 2 and summary["iterations"] == 60 and summary["stopped"] == "iterations"
    out, prob = folder / "out.png", folder / "prob.tif"
    assert (
        main(
            [
                "unet",
                "predict",
                str(model),
                str(folder / "image.png"),
                "--out",
                str(out),
                "--probabilities",
                str(prob),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["probability_of"] == "class 2"
    labels = np.asarray(read_image(out).array)
    assert labels.shape == truth.shape and np.mean(labels == truth) > 0.9
    import tifffile

    probability = tifffile.imread(prob)
    assert probability.dtype == np.float32 and probability.shape == truth.shape
    assert probability[truth == 2].mean() > probability[truth == 1].mean() + 0.5
    # outputs are never replaced without --overwrite
    assert main(["unet", "predict", str(model), str(folder / "image.png"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_nifti_volume_round_trip(tmp_path, capsys):
    from napari_medimg.geometry import Volume
    from napari_medimg.io.nifti import read_nifti, write_nifti

    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:8, :32, :32]
    ball = (yy - 16) ** 2 + (xx - 16) ** 2 < 60
    image = Volume(
        ball * 100.0 + rng.normal(0, 10, ball.shape), spacing=(3.0, 1.0, 1.0), origin=(5.0, -2.0, 7.0)
    )
    labels = np.zeros(ball.shape, np.uint8)
    labels[::2] = np.where(ball, 2, 1)[::2]
    write_nifti(image, tmp_path / "ct.nii.gz")
    write_nifti(image.with_array(labels), tmp_path / "lab.nii.gz")
    args = ["unet", "train", "--image", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.nii.gz")]
    args += [
        "--out",
        str(tmp_path / "m"),
        "--iterations",
        "40",
        "--width",
        "8",
        "--levels",
        "3",
        "--patch",
        "32",
        "32",
    ]
    assert main(args) == 2  # every 2nd slice annotated: a 3D U-Net by default, which needs a 3D patch
    assert "3 values" in capsys.readouterr().err
    assert main([*args, "--dims", "2"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "unet",
                "predict",
                str(tmp_path / "m"),
                str(tmp_path / "ct.nii.gz"),
                "--out",
                str(tmp_path / "seg.nii.gz"),
            ]
        )
        == 0
    )
    result = read_nifti(tmp_path / "seg.nii.gz")
    np.testing.assert_allclose(result.spacing, image.spacing)
    np.testing.assert_allclose(result.origin, image.origin)
    assert np.mean(np.asarray(result.array) == np.where(ball, 2, 1)) > 0.9


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels", "a.png", "b.png"], "one --labels file per --image"),
        (["--labels", "missing.png"], "does not exist"),
    ],
)
def test_train_errors_are_one_line(rgb_pair, capsys, extra, message):
    folder, _ = rgb_pair
    code = main(["unet", "train", "--image", str(folder / "image.png"), *extra, "--out", str(folder / "m")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1


def test_predict_refuses_a_non_model(tmp_path, rgb_pair, capsys):
    folder, _ = rgb_pair
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "config.json").write_text("{}")
    (tmp_path / "fake" / "model.safetensors").write_bytes(b"\x80\x04junk")
    code = main(
        [
            "unet",
            "predict",
            str(tmp_path / "fake"),
            str(folder / "image.png"),
            "--out",
            str(tmp_path / "o.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "napari-medimg-unet" in err and not (tmp_path / "o.png").exists()


def test_unet_segment_operation(rgb_pair):
    from napari_medimg import ops
    from napari_medimg.learn.unet import UNetTrainConfig, save_unet, train_unet

    folder, truth = rgb_pair
    image = read_image(folder / "image.png")
    annotation = np.asarray(read_image(folder / "labels.png").array)
    config = UNetTrainConfig(iterations=40, batch_size=4, patch=[32, 32], lr=5e-3)
    result = train_unet([image.array], [annotation], config=config, width=8, levels=3, rgb=True)
    save_unet(result.model, result.meta(), folder / "op-model")
    op = ops.get("unet_segment")
    assert op.output == "labels" and {p.name for p in op.parameters} >= {
        "model",
        "output",
        "target",
        "overlap",
    }
    labels = ops.run("unet_segment", image, model=str(folder / "op-model"))
    assert labels.shape == truth.shape and np.mean(labels.array == truth) > 0.9
    assert labels.metadata["class_names"] == {1: "class 1", 2: "class 2"}
    probability = ops.run("unet_segment", image, model=str(folder / "op-model"), output="probability")
    assert probability.array.dtype == np.float32 and probability.metadata["quantity"] == "P(class 2)"
    with pytest.raises(FileNotFoundError):
        ops.run("unet_segment", image, model=str(folder / "missing"))
