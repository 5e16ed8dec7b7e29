"""Recipes: format, validation through the registry, input resolution, hash, session-log conversion, running."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medimg import ops
from napari_medimg.geometry import Volume
from napari_medimg.pipeline.recipe import (
    INPUT,
    Recipe,
    RecipeError,
    load_recipe,
    recipe_from_steps,
    run_recipe,
    run_step,
    save_recipe,
)
from napari_medimg.pipeline.steps import StepLog

THRESHOLD_ISLANDS = {
    "version": 1,
    "name": "bright objects",
    "steps": [
        {"op": "threshold", "params": {"method": "manual", "low": 0.5}},
        {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 10.0}},
    ],
}


@pytest.fixture
def blobs() -> Volume:
    """Two bright boxes (one of 8 voxels, one of 1000) in noise on a 2 × 1 × 1 mm grid."""
    rng = np.random.default_rng(0)
    array = rng.uniform(0, 0.4, (20, 30, 30))
    array[2:4, 2:4, 2:4] = 1.0  # 8 voxels x 2 mm3 = 16 mm3
    array[8:18, 10:20, 10:20] = 1.0
    array[0, 0, 0] = 0.9  # a 2 mm3 speck
    return Volume(array, spacing=(2.0, 1.0, 1.0), origin=(5.0, -3.0, 1.0))


def test_round_trip_and_hash_ignore_names(tmp_path):
    recipe = Recipe.from_dict(THRESHOLD_ISLANDS)
    path = save_recipe(recipe, tmp_path / "r.json")
    again = load_recipe(path)
    assert again.to_dict() == recipe.to_dict()
    assert again.hash == recipe.hash
    renamed = Recipe.from_dict({**THRESHOLD_ISLANDS, "name": "other name", "description": "x"})
    assert renamed.hash == recipe.hash
    # defaults filled in count: writing a default explicitly is the same run
    explicit = json.loads(json.dumps(THRESHOLD_ISLANDS))
    explicit["steps"][1]["params"]["connectivity"] = None
    assert Recipe.from_dict(explicit).hash == recipe.hash
    changed = json.loads(json.dumps(THRESHOLD_ISLANDS))
    changed["steps"][1]["params"]["min_size_mm3"] = 11.0
    assert Recipe.from_dict(changed).hash != recipe.hash
    with pytest.raises(FileExistsError):
        save_recipe(recipe, path)


def test_yaml_recipe(tmp_path):
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(THRESHOLD_ISLANDS))
    assert load_recipe(path).hash == Recipe.from_dict(THRESHOLD_ISLANDS).hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "thresold"}, "unknown operation 'thresold'; valid: .*islands.*threshold"),
        ({"params": {"method": "manual", "lower": 1}}, "no parameter.*'lower'.*valid: .*low"),
        ({"params": {"method": "median"}}, "'median'; valid: 'otsu', 'li', 'yen', 'triangle', 'manual'"),
        ({"params": {"low": "high"}}, "must be a number"),
        ({"inputs": {"mask": "input"}}, "no input.*'mask'.*valid: image"),
        ({"inputs": {"image": "step7"}}, "refers to 'step7'; valid: 'input'"),
    ],
)
def test_invalid_first_step_is_refused_naming_valid_choices(change, message):
    data = json.loads(json.dumps(THRESHOLD_ISLANDS))
    data["steps"][0].update(change)
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(data).validate()


def test_structure_errors(tmp_path):
    with pytest.raises(RecipeError, match="version 2 is not supported"):
        Recipe.from_dict({"version": 2, "steps": []})
    with pytest.raises(RecipeError, match="no 'version'"):
        Recipe.from_dict({"steps": []})
    with pytest.raises(RecipeError, match="unknown recipe key.*'stpes'"):
        Recipe.from_dict({"version": 1, "stpes": []})
    with pytest.raises(RecipeError, match="unknown key.*'parms'"):
        Recipe.from_dict({"version": 1, "steps": [{"op": "threshold", "parms": {}}]})
    with pytest.raises(RecipeError, match="no steps"):
        Recipe.from_dict({"version": 1, "steps": []}).validate()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RecipeError, match="bad.json: not valid JSON"):
        load_recipe(bad)
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "missing.json")


def test_inputs_default_to_latest_output_of_their_kind():
    recipe = Recipe.from_dict(
        {
            "version": 1,
            "steps": [
                {"op": "threshold", "params": {"method": "manual", "low": 0.5}},
                {"op": "threshold", "params": {"method": "manual", "low": 0.8}, "id": "strict"},
                {"op": "islands", "params": {}},
                {"op": "islands", "params": {}, "inputs": {"mask": "step1"}},
            ],
        }
    )
    plan = recipe.plan()
    assert [p.id for p in plan] == ["step1", "strict", "step3", "step4"]
    assert plan[0].inputs == (INPUT,) and plan[1].inputs == (INPUT,)
    assert plan[2].inputs == ("strict",)  # the latest mask
    assert plan[3].inputs == ("step1",)  # explicit
    # a mask input cannot come from the image
    with pytest.raises(RecipeError, match="needs a mask or labels, but 'input' makes a image"):
        Recipe.from_dict({"version": 1, "steps": [{"op": "islands", "inputs": {"mask": "input"}}]}).plan()
    with pytest.raises(RecipeError, match="no earlier step makes a 'mask'"):
        Recipe.from_dict({"version": 1, "steps": [{"op": "islands"}]}).plan()


def test_run_recipe_equals_the_ops_called_directly(blobs):
    result = run_recipe(Recipe.from_dict(THRESHOLD_ISLANDS), blobs)
    direct = ops.run(
        "islands",
        ops.run("threshold", blobs, method="manual", low=0.5),
        operation="remove_small",
        min_size_mm3=10.0,
    )
    assert isinstance(result.labels, Volume)
    np.testing.assert_array_equal(np.asarray(result.labels.array), np.asarray(direct.array))
    assert np.count_nonzero(result.labels.array) == 8 + 1000  # the speck is gone, both boxes kept
    np.testing.assert_allclose(result.labels.origin, blobs.origin)
    assert set(result.timings) == {"step1", "step2"}
    assert result.features is None and result.predictions is None
    single = run_step("threshold", blobs, method="manual", low=0.5)
    np.testing.assert_array_equal(np.asarray(single.array), np.asarray(result.outputs["step1"].array))


def test_run_recipe_reports_progress_and_names_the_failing_step(blobs):
    calls = []
    run_recipe(Recipe.from_dict(THRESHOLD_ISLANDS), blobs, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 2) and calls[-1] == (2, 2)
    bad = json.loads(json.dumps(THRESHOLD_ISLANDS))
    bad["steps"][0]["params"] = {"method": "manual", "low": 2.0, "high": 1.0}
    with pytest.raises(RecipeError, match=r"step1 \(threshold\)"):
        run_recipe(Recipe.from_dict(bad), blobs)


def test_editing_keeps_references():
    recipe = Recipe.from_dict(
        {
            "version": 1,
            "steps": [
                {"op": "threshold", "params": {"method": "manual", "low": 0.5}},
                {"op": "threshold", "params": {"method": "manual", "low": 0.8}},
                {"op": "islands", "inputs": {"mask": "step1"}},
            ],
        }
    )
    recipe.move(2, 1)  # islands now second; still reads the first threshold
    assert [s.op for s in recipe.steps] == ["threshold", "islands", "threshold"]
    assert recipe.plan()[1].inputs == ("step1",)
    recipe.move(1, 0)  # islands before its source: refused
    with pytest.raises(RecipeError, match="refers to 'step1'"):
        recipe.validate()
    recipe.move(0, 1)
    recipe.remove(0)  # the threshold it read is gone: the reference falls back to the latest mask
    assert recipe.steps[0].inputs == {}
    with pytest.raises(RecipeError, match="no earlier step makes a 'mask'"):
        recipe.validate()
    with pytest.raises(RecipeError, match="has no parameter.*'size'"):
        recipe.set_params(1, {"size": 3})


def test_recipe_from_recorded_steps_maps_layers_to_steps(blobs):
    log = StepLog()
    log.record("threshold", {"method": "manual", "low": 0.5, "high": 1.0}, ["CT"], "CT threshold")
    log.record("read_nifti", {}, ["ct.nii.gz"])  # not an operation: left out
    log.record("threshold", {"method": "manual", "low": 0.95, "high": 1.0}, ["CT"], "CT strict")
    log.record(
        "islands", {"operation": "remove_small", "min_size_mm3": 10.0}, ["CT threshold"], "CT threshold"
    )
    log.record("islands", {"operation": "keep_largest"}, ["CT strict"], "CT strict")
    log.record("undo", {}, ["CT strict"], "CT strict")  # drops the keep_largest
    recipe = recipe_from_steps(log.steps)
    assert recipe.skipped == ["read_nifti"]
    assert [s.op for s in recipe.steps] == ["threshold", "threshold", "islands"]
    assert recipe.steps[2].inputs == {"mask": "step1"}  # not the latest mask: kept explicit
    assert recipe.steps[0].inputs == {} and recipe.steps[1].inputs == {}  # defaults dropped
    result = run_recipe(recipe, blobs)
    assert np.count_nonzero(result.labels.array) == 1008
    with pytest.raises(RecipeError, match="not a registered operation"):
        recipe_from_steps(log.steps, skip_unknown=False)
    other = StepLog()
    other.record("threshold", {"method": "otsu"}, ["CT"], "m1")
    other.record("threshold", {"method": "otsu"}, ["PET"], "m2")
    with pytest.raises(RecipeError, match="replays on one scan"):
        recipe_from_steps(other.steps)
    painted = StepLog()
    painted.record("islands", {"operation": "keep_largest"}, ["my painting"], "my painting")
    with pytest.raises(RecipeError, match="no recorded step made"):
        recipe_from_steps(painted.steps)


def test_result_tells_features_from_predictions():
    import pandas as pd

    from napari_medimg.pipeline.recipe import RecipeResult

    features = pd.DataFrame({"label": [1, 2], "shape_VoxelVolume": [10.0, 20.0]})
    classified = features.assign(predicted_class=["a", "b"], probability_a=[0.9, 0.2])
    result = RecipeResult(
        outputs={"step1": features, "step2": classified}, kinds={"step1": "table", "step2": "table"}
    )
    assert result.features is features and result.predictions is classified
    only = RecipeResult(outputs={"step1": features}, kinds={"step1": "table"})
    assert only.features is features and only.predictions is None
