"""One case and small cohorts: outputs, resume, refusal of another recipe's outputs, failures, the CLI."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from batch_cohort import synthetic_cases

from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti
from napari_medimg.pipeline.batch import case_name, case_status, on_grid_of, run_batch, run_case
from napari_medimg.pipeline.recipe import Recipe, run_recipe

RECIPE = {
    "version": 1,
    "steps": [
        {"op": "threshold", "params": {"method": "otsu"}},
        {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 20.0}},
        {"op": "connected_components"},
        {"op": "features", "params": {"groups": ["shape", "firstorder"]}},
    ],
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return synthetic_cases(tmp_path_factory.mktemp("cases"), 3, size=40)


def _hidden(folder):
    return sorted(p.name for p in folder.rglob(".*") if p.name != ".napari-medimg-output")


def test_case_names(tmp_path):
    (tmp_path / "series_7").mkdir()
    assert case_name(tmp_path / "series_7") == "series_7"
    assert case_name(tmp_path / "ct01.nii.gz") == "ct01"
    assert case_name(tmp_path / "mr.nii") == "mr"


def test_run_case_outputs_resume_and_refusal(cases, tmp_path):
    record = run_case(RECIPE, cases[0], tmp_path)
    assert record["status"] == "done", record
    folder = tmp_path / "synthetic00"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "features.csv",
        "labels.nii.gz",
        "log.json",
    ]
    log = json.loads((folder / "log.json").read_text())
    recipe = Recipe.from_dict(RECIPE)
    assert log["recipe_hash"] == recipe.hash and log["status"] == "done"
    assert set(log["timings_s"]) == {"read", "step1", "step2", "step3", "step4", "write"}
    assert log["versions"]["napari-medimg"] and log["versions"]["numpy"]
    # outputs equal the recipe run in memory on the axes napari shows, put back on the input's grid
    volume = read_nifti(cases[0])
    assert volume.canonical() is not volume  # the synthetic NIfTI (RAS) is flipped for display
    expected = run_recipe(recipe, volume.canonical())
    labels = read_nifti(folder / "labels.nii.gz")
    np.testing.assert_array_equal(labels.array, np.asarray(on_grid_of(expected.labels, volume).array))
    np.testing.assert_allclose(labels.affine, volume.affine, atol=1e-5)
    table = pd.read_csv(folder / "features.csv")
    assert len(table) == int(np.asarray(expected.labels.array).max()) >= 3
    pd.testing.assert_frame_equal(table, expected.features, check_dtype=False, rtol=1e-9)
    # the same recipe again: skipped, nothing rewritten
    mtime = (folder / "labels.nii.gz").stat().st_mtime_ns
    assert run_case(RECIPE, cases[0], tmp_path)["status"] == "skipped"
    assert (folder / "labels.nii.gz").stat().st_mtime_ns == mtime
    # another recipe: refused without overwrite, replaced with it
    other = json.loads(json.dumps(RECIPE))
    other["steps"][1]["params"]["min_size_mm3"] = 500.0
    refused = run_case(other, cases[0], tmp_path)
    assert refused["status"] == "failed" and "--overwrite" in refused["error"]
    assert case_status(folder, recipe.hash) == "complete"
    assert run_case(other, cases[0], tmp_path, overwrite=True)["status"] == "done"
    assert case_status(folder, Recipe.from_dict(other).hash) == "complete"
    assert _hidden(tmp_path) == []


def test_failing_case_is_recorded_and_the_rest_go_on(cases, tmp_path):
    broken = tmp_path / "inputs" / "broken.nii.gz"
    broken.parent.mkdir()
    broken.write_bytes(b"not a nifti file")
    inputs = [cases[0], broken, cases[1], cases[2]]
    out = tmp_path / "out"
    environment = dict(os.environ)
    summary = run_batch(RECIPE, inputs, out, workers=1)
    assert dict(os.environ) == environment  # the nanny's variables do not leak into this process
    assert (summary["cases"], summary["done"], summary["skipped"], summary["failed"]) == (4, 3, 0, 1)
    failed = [r for r in summary["results"] if r["status"] == "failed"]
    assert failed[0]["case"] == "broken" and "not a readable NIfTI" in failed[0]["error"]
    assert not (out / "broken").exists()
    combined = pd.read_csv(out / "features.csv")
    assert list(combined.columns[:2]) == ["case", "label"]
    alone = pd.concat(
        [
            pd.read_csv(out / name / "features.csv").assign(case=name)
            for name in ("synthetic00", "synthetic01", "synthetic02")
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(combined, alone[combined.columns])
    assert json.loads((out / "batch.json").read_text())["failed"] == 1
    assert _hidden(out) == []
    again = run_batch(RECIPE, inputs, out, workers=1)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 3, 1)
    pd.testing.assert_frame_equal(pd.read_csv(out / "features.csv"), combined)


def test_cli_errors_are_one_line(cases, tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    assert main(["batch", str(recipe), str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"medimg batch: error: input {tmp_path / 'missing.nii.gz'} does not exist"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "steps": [{"op": "threshold", "params": {"methd": "otsu"}}]}))
    assert main(["run", str(bad), str(cases[0]), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no parameter(s) 'methd'; valid: method, low, high" in err[0]
    assert main(["run", str(recipe), str(cases[0]), "--out", str(tmp_path / "o"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "done" and record["case"] == "synthetic00"
    assert nib.load(tmp_path / "o" / "synthetic00" / "labels.nii.gz").shape == (40, 40, 40)


def test_a_classifying_recipe_writes_predictions(cases, tmp_path):
    from napari_medimg.learn.classify.core import save_classifier, train_classifier
    from napari_medimg.pipeline.batch import combine_features

    measure = json.loads(json.dumps(RECIPE))
    tables = [run_recipe(Recipe.from_dict(measure), read_nifti(path).canonical()).features for path in cases]
    table = pd.concat(tables, ignore_index=True)
    table["big"] = np.where(table["shape_VoxelVolume"] > table["shape_VoxelVolume"].median(), "big", "small")
    columns = ["shape_VoxelVolume", "firstorder_Mean"]
    classifier, _ = train_classifier(table, target="big", folds=2, features=columns, n_estimators=20)
    model = tmp_path / "objects.skops"
    save_classifier(classifier, model)
    classify = json.loads(json.dumps(RECIPE))
    classify["steps"].append({"op": "classify_objects", "params": {"model": str(model)}})
    out = tmp_path / "out"
    for path in cases:
        record = run_case(classify, path, out)
        assert record["status"] == "done", record
        assert "predictions.csv" in record["outputs"] and "features.csv" in record["outputs"]
    features = pd.read_csv(out / "synthetic00" / "features.csv")
    predictions = pd.read_csv(out / "synthetic00" / "predictions.csv")
    assert "predicted_class" not in features.columns
    assert set(predictions["predicted_class"]) <= {"big", "small"}
    assert list(predictions["label"]) == list(features["label"])
    combined = combine_features(out, ["synthetic00", "synthetic01"], "predictions.csv")
    assert list(combined.columns[:2]) == ["case", "label"] and "predicted_class" in combined.columns
