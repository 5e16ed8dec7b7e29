"""A napari session driven through the Threshold and Morphology/islands widgets, saved from the Recipe dock and
replayed by ``medimg batch`` and by the dock itself: the results equal the widgets' voxel for voxel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batch_cohort import dicom_cases, synthetic_cases

from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti
from napari_medimg.pipeline.batch import case_name
from napari_medimg.pipeline.recipe import load_recipe
from napari_medimg.pipeline.steps import session_log
from napari_medimg.plugin.layers import layer_to_volume
from napari_medimg.plugin.widgets.batch import BatchWidget
from napari_medimg.plugin.widgets.recipe import RecipeWidget
from napari_medimg.plugin.widgets.segment_tools import LabelEditWidget
from napari_medimg.plugin.widgets.threshold import ThresholdWidget

TIMEOUT = 60_000


def _wait(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert not widget.status.value.startswith("error"), widget.status.value


def _edit(qtbot, widget, operation, **values):
    widget.operation.value = operation
    for name, value in values.items():
        getattr(widget, name).value = value
    widget.apply()
    _wait(qtbot, widget)


def _session(viewer, qtbot, path):
    """Open ``path``, threshold (Otsu), remove small islands, close, split into objects; the objects layer."""
    session_log().clear()
    [image] = viewer.open(str(path), plugin="napari-medimg")
    threshold = ThresholdWidget(viewer)
    threshold.image.value = image
    threshold.method.value = "otsu"
    threshold.apply_to_volume()
    _wait(qtbot, threshold)
    mask = viewer.layers[f"{image.name} threshold"]
    edit = LabelEditWidget(viewer)
    edit.labels_layer.value = mask
    edit.value.value = 1
    _edit(qtbot, edit, "remove small islands", min_size_mm3=60.0)
    _edit(qtbot, edit, "close", radius_mm=2.0)
    _edit(qtbot, edit, "connected components")
    return image, viewer.layers[f"{mask.name} connected components"]


def _inputs(kind, tmp_path, shared_data):
    if kind == "nifti":
        return synthetic_cases(tmp_path / "in", 1, size=48, seed=7)[0]
    if not shared_data.is_dir():
        pytest.skip(f"{shared_data} does not exist")
    return dicom_cases(shared_data, tmp_path / "in", count=1, slices=24)[0]


@pytest.mark.parametrize("kind", ["nifti", pytest.param("dicom", marks=pytest.mark.shared_data)])
def test_session_saved_as_recipe_and_replayed_by_batch(
    make_napari_viewer, qtbot, tmp_path, shared_data, kind
):
    path = _inputs(kind, tmp_path, shared_data)
    viewer = make_napari_viewer()
    image, objects = _session(viewer, qtbot, path)
    # several objects in the synthetic case (their numbering depends on the array order); the sagittal
    # DICOM block is transposed for display, so its replay on the file's grid must be put back exactly
    assert objects.data.max() >= (2 if kind == "nifti" else 1)
    assert np.count_nonzero(objects.data) > 1000

    dock = RecipeWidget(viewer)
    assert [s.op for s in dock.recipe.steps] == ["threshold", "islands", "morphology", "connected_components"]
    assert dock.recipe.steps[0].params == {"method": "otsu", "low": None, "high": None}
    assert len(dock.steps.choices) == 4
    saved = dock.save(tmp_path / "session.json")
    assert saved is not None and "hash" in dock.status.value
    assert load_recipe(saved).hash == dock.recipe.hash

    out = tmp_path / "out"
    code = main(["batch", str(saved), str(path), "--out", str(out), "--workers", "1", "--json"])
    assert code == 0
    labels = read_nifti(out / case_name(path) / "labels.nii.gz")
    assert json.loads((out / "batch.json").read_text())["done"] == 1
    displayed = labels.canonical()  # the orientation napari shows
    np.testing.assert_array_equal(np.asarray(displayed.array), np.asarray(objects.data))
    widget_geometry = layer_to_volume(objects)
    np.testing.assert_allclose(displayed.affine, widget_geometry.affine, atol=1e-4)

    # the dock replays the same recipe on the image layer, in a worker, into new layers
    dock.image.value = image
    dock.replay()
    _wait(qtbot, dock)
    replayed = viewer.layers[f"{image.name} recipe step4 connected_components"]
    np.testing.assert_array_equal(np.asarray(replayed.data), np.asarray(objects.data))
    np.testing.assert_allclose(replayed.scale, objects.scale)
    np.testing.assert_allclose(replayed.translate, objects.translate)


def test_recipe_dock_edits_and_loads(make_napari_viewer, qtbot, tmp_path):
    session_log().clear()
    viewer = make_napari_viewer()
    dock = RecipeWidget(viewer)
    assert dock.recipe.steps == []
    session_log().record(
        "threshold", {"method": "manual", "low": 100.0, "high": None}, ["CT"], "CT threshold"
    )
    session_log().record("islands", {"operation": "keep_largest"}, ["CT threshold"], "CT threshold")
    session_log().record("read_nifti", {}, ["ct.nii.gz"])
    qtbot.waitUntil(lambda: len(dock.recipe.steps) == 2, timeout=5_000)  # follows the session
    dock.reset_choices()  # what napari does to docked widgets when layers change: the list stays
    assert len(dock.steps.choices) == 2
    assert "left out: read_nifti" in dock.status.value
    dock.select(0)
    assert json.loads(dock.params.value) == {"method": "manual", "low": 100.0, "high": None}
    dock.params.value = json.dumps({"method": "manual", "low": 250.0})
    dock.apply_params()
    assert dock.recipe.steps[0].params == {"method": "manual", "low": 250.0}
    assert not dock.follow.value  # hand edits stop following the session
    dock.params.value = json.dumps({"method": "manual", "lowest": 1})
    dock.apply_params()
    assert "no parameter(s) 'lowest'" in dock.status.value
    assert dock.recipe.steps[0].params == {"method": "manual", "low": 250.0}
    dock.select(1)
    dock.move(-1)  # islands before the threshold it reads: reported, not hidden
    assert [s.op for s in dock.recipe.steps] == ["islands", "threshold"]
    assert dock.status.value.startswith("error") and "mask" in dock.status.value
    dock.move(1)
    dock.select(1)
    dock.delete()
    assert [s.op for s in dock.recipe.steps] == ["threshold"]
    path = dock.save(tmp_path / "r.yaml")
    assert path is not None and path.read_text().startswith("version: 1")
    session_log().record("islands", {"operation": "keep_largest"}, ["CT threshold"], "CT threshold")
    dock._poll()
    assert [s.op for s in dock.recipe.steps] == ["threshold"]  # not following: the edit is kept
    loaded = dock.load(tmp_path / "r.yaml")
    assert loaded is not None and loaded.steps[0].params["low"] == 250.0
    assert dock.load(tmp_path / "missing.json") is None and "does not exist" in dock.status.value


def test_batch_widget_runs_and_opens_a_case(make_napari_viewer, qtbot, tmp_path):
    cases = synthetic_cases(tmp_path / "in", 2, size=32, seed=2)
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps(
            {
                "version": 1,
                "steps": [
                    {"op": "threshold", "params": {"method": "otsu"}},
                    {"op": "connected_components"},
                    {"op": "features", "params": {"groups": ["shape"]}},
                ],
            }
        )
    )
    viewer = make_napari_viewer()
    widget = BatchWidget(viewer)
    widget.recipe.value = recipe
    widget.add_inputs(cases)
    widget.add_inputs(cases[:1])  # no duplicates
    assert widget.input_paths() == cases
    widget.run()
    assert widget.status.value.startswith("error: choose an output folder")
    widget.out.value = tmp_path / "out"
    widget.workers.value = 1
    widget.run()
    _wait(qtbot, widget)
    assert widget.summary["done"] == 2 and (tmp_path / "out" / "features.csv").is_file()
    widget.reset_choices()
    widget.cases.value = "synthetic01"
    layers = widget.open_case(widget.selected_case())
    assert [layer.name for layer in layers] == ["synthetic01", "synthetic01 labels"]
    assert layers[1].data.max() >= 1 and layers[1].data.shape == layers[0].data.shape
