"""The CNN's image inputs go through ``napari_medimg.io.read_volume``: NIfTI or DICOM, 4D with ``--volume``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.nifti import write_nifti
from napari_medimg.learn.cnn.data import ImageSet, read_image
from napari_medimg.learn.cnn.files import load_model, save_model
from napari_medimg.learn.cnn.models import ModelConfig
from napari_medimg.learn.cnn.predict import predict
from napari_medimg.learn.cnn.train import TrainConfig, train


def _set(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.3, (n, 1, 20, 20)).astype(np.float32)
    labels = np.arange(n) % 2
    images[labels == 1, 0, 6:14, 6:14] += 2.0
    return ImageSet(images, labels, ["plain", "square"])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    result = train(
        _set(16, 0),
        _set(8, 1),
        ModelConfig(width=4, depths=[1, 1], dropout=0.0),
        TrainConfig(epochs=1, batch_size=8, rotate_deg=0, scale=0, translate=0, intensity=0, threads=1),
    )
    return save_model(result.model, result.meta(), tmp_path_factory.mktemp("cnn") / "model")


def _fmri():
    rng = np.random.default_rng(2)
    array = (rng.normal(0, 10, (3, 4, 20, 20)) + 100).astype(np.float32)
    array[1, :, 6:14, 6:14] += 60  # volume 1 differs from the others
    return Volume(array, (3.0, 0.8, 0.8), (10.0, -5.0, 2.0), metadata={"volume_info": [{}, {}, {}]})


def test_cnn_predict_takes_one_volume_of_a_4d_nifti(model_folder, tmp_path, capsys):
    write_nifti(_fmri(), tmp_path / "fmri.nii.gz")
    out = tmp_path / "pred"
    command = [
        "cnn",
        "predict",
        "--model",
        str(model_folder),
        str(tmp_path / "fmri.nii.gz"),
        "--out",
        str(out),
    ]
    assert main(command) == 2  # 4D without --volume: one clear line naming the option
    assert "choose one with --volume N (0 to 2)" in capsys.readouterr().err
    assert main([*command, "--volume", "1"]) == 0
    table = pd.read_csv(out / "predictions.csv")
    expected = predict(load_model(model_folder), _fmri().array[1], spacing=(3.0, 0.8, 0.8)).table
    assert len(table) == 4 and np.allclose(table["p_square"], expected["p_square"])
    assert main([*command, "--volume", "3", "--overwrite"]) == 2
    assert "volume 3 does not exist" in capsys.readouterr().err


def test_cnn_predict_and_training_images_read_a_dicom_series_folder(model_folder, tmp_path):
    volume = Volume(
        (np.random.default_rng(3).normal(0, 10, (4, 20, 20)) + 100).astype(np.int16),
        (3.0, 0.8, 0.8),
        (10.0, -5.0, 2.0),
        metadata={"modality": "MR"},
    )
    write_dicom_series(volume, tmp_path / "series")
    array, spacing = read_image(tmp_path / "series")  # a folder: the whole series, not one file
    assert np.array_equal(array, volume.array) and np.allclose(spacing, (3.0, 0.8, 0.8))
    out = tmp_path / "pred"
    assert (
        main(["cnn", "predict", "--model", str(model_folder), str(tmp_path / "series"), "--out", str(out)])
        == 0
    )
    assert len(pd.read_csv(out / "predictions.csv")) == 4
    write_nifti(_fmri(), tmp_path / "fmri.nii.gz")
    with pytest.raises(ValueError, match="4D with 3 volumes"):
        read_image(tmp_path / "fmri.nii.gz")
