"""IBSI mode through the ``medimg features --ibsi`` CLI contract and the ``features`` registry operation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_medimg import ops
from napari_medimg.cli import main
from napari_medimg.geometry import Volume

DIGITAL = "ibsi/digital_phantom/nifti"
CT = "ibsi/ct_phantom/nifti"


@pytest.mark.shared_data
def test_cli_digital_phantom_tags_and_settings(shared_data, tmp_path):
    out = tmp_path / "dp.csv"
    image, mask = shared_data / DIGITAL / "image/phantom.nii.gz", shared_data / DIGITAL / "mask/mask.nii.gz"
    assert main(["features", str(image), str(mask), "--out", str(out), "--ibsi"]) == 0
    table = pd.read_csv(out)
    reference = pd.read_csv(shared_data / "ibsi/digital_phantom/ibsi_1_reference_values.csv", sep=";")
    assert set(reference["tag"]) <= set(table.columns)
    assert table.loc[0, "morph_volume"] == pytest.approx(556, abs=4)
    assert table.loc[0, "ngl_lde_2_5D"] == pytest.approx(0.159, abs=5e-4)
    assert table.loc[0, "int_mask_vox_count_reseg_roi"] == 74
    settings = json.loads((tmp_path / "dp.settings.json").read_text())
    assert settings["mode"] == "ibsi" and settings["settings"]["bin_width"] is None
    # refuses to replace the pair without --overwrite; replaces both with it
    assert main(["features", str(image), str(mask), "--out", str(out), "--ibsi"]) != 0
    assert (
        main(
            [
                "features",
                str(image),
                str(mask),
                "--out",
                str(out),
                "--ibsi",
                "--bin-count",
                "3",
                "--overwrite",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "dp.settings.json").read_text())["settings"]["bin_count"] == 3


@pytest.mark.shared_data
def test_cli_ct_configuration_b_options(shared_data, tmp_path, capsys):
    out = tmp_path / "b.csv"
    image, mask = shared_data / CT / "image/phantom.nii.gz", shared_data / CT / "mask/mask.nii.gz"
    argv = [
        "features",
        str(image),
        str(mask),
        "--out",
        str(out),
        "--ibsi",
        "--by-slice",
        "--resample-mm",
        "2",
    ]
    argv += [
        "--interpolation",
        "linear",
        "--reseg-range",
        "-500:400",
        "--bin-count",
        "32",
        "--groups",
        "morph,stat,ih",
    ]
    assert main(argv) == 0
    table = pd.read_csv(out)
    assert table.loc[0, "img_dim_x_interp_img"] == 100 and table.loc[0, "vox_dim_z_interp_img"] == 3
    assert table.loc[0, "int_mask_min_int_reseg_roi"] == -500
    assert abs(table.loc[0, "morph_volume"] - 358000) <= 5000
    assert table.loc[0, "ih_max"] == 32 and "cm_joint_max_2D_avg" not in table
    settings = json.loads((tmp_path / "b.settings.json").read_text())["settings"]
    assert settings["reseg_range"] == "-500:400" and settings["resample_mm"] == 2 and settings["by_slice"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reseg-range", "-500:400"], "need --ibsi"),
        (["--ibsi", "--reseg-range", "400"], "LOW:HIGH"),
        (["--ibsi", "--bin-width", "25", "--bin-count", "32"], "not both"),
        (["--ibsi", "--reseg-range", "400:-500"], "empty"),
        (["--ibsi", "--groups", "morph,colour"], "unknown IBSI feature family"),
        (["--ibsi", "--force-2d"], "--by-slice"),
    ],
)
def test_cli_bad_ibsi_options_give_one_line(tmp_path, capsys, extra, message):
    image = tmp_path / "missing.nii.gz"
    code = main(["features", str(image), str(image), "--out", str(tmp_path / "t.csv"), *extra])
    error = capsys.readouterr().err
    assert code != 0 and message in error and "Traceback" not in error
    assert not (tmp_path / "t.csv").exists()


def _blob():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 21, size=(6, 12, 12)).astype(np.int16)
    labels = np.zeros(image.shape, np.uint8)
    labels[1:5, 2:8, 2:8] = 1
    labels[1:4, 8:11, 8:11] = 2
    spacing = (2.0, 1.0, 1.0)
    return Volume(image, spacing=spacing), Volume(labels, spacing=spacing)


def test_registry_op_ibsi_parameters():
    image, labels = _blob()
    op = ops.get("features")
    names = {p.name for p in op.parameters}
    assert {"groups", "bin_width", "ibsi", "by_slice", "resample_mm", "interpolation", "reseg_range"} <= names
    assert {"reseg_sigma", "bin_count", "ivh_bin_width", "ivh_bin_count"} <= names
    table = ops.run("features", image, labels, ibsi=True, bin_width=None, groups=["morph", "stat", "cm"])
    assert table["label"].tolist() == [1, 2]
    assert table.loc[0, "morph_vol_approx"] == pytest.approx(4 * 6 * 6 * 2.0)
    assert "cm_joint_max_3D_comb" in table and "firstorder_Mean" not in table
    inside = np.asarray(image.array)[np.asarray(labels.array) == 1]
    assert table.loc[0, "stat_mean"] == pytest.approx(inside.mean())
    binned = ops.run(
        "features", image, labels, ibsi=True, bin_count=4, reseg_range=[2, None], by_slice=True, groups=["ih"]
    )
    assert binned["ih_max"].max() == 4 and binned.loc[0, "int_mask_min_int_reseg_roi"] >= 2
    with pytest.raises(ValueError, match="must be ≥ 1"):  # grey level 0 without a bin option
        ops.run("features", image.with_array(np.asarray(image.array) - 1), labels, ibsi=True, bin_width=None)
    # the default mode is the pyradiomics-compatible table
    default = ops.run("features", image, labels, groups=["firstorder"])
    assert "firstorder_Mean" in default and "stat_mean" not in default
    with pytest.raises(ValueError, match="empty"):
        ops.run("features", image, labels, ibsi=True, reseg_range=[5, 1])
    # a label that re-segmentation empties gets a row of NaN; the other labels are measured
    spiked = image.with_array(
        np.where(np.asarray(labels.array) == 2, 500, np.asarray(image.array)).astype(np.int16)
    )
    table = ops.run("features", spiked, labels, ibsi=True, reseg_range=[0, 100], groups=["stat"])
    assert table["label"].tolist() == [1, 2] and np.isfinite(table.loc[0, "stat_mean"])
    assert np.isnan(table.loc[1, "stat_mean"])
