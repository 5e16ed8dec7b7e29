"""A session's recorded steps replay through the operation registry and give identical arrays.

The widgets (Preprocess, Threshold, Region growing, Label edit, Fill between slices) are driven on a real
viewer; after each run the test keeps a copy of the output layer's data.  Then every step of
``session_log()`` runs again through ``ops.run(step.name, *inputs, **step.params)`` on Volumes taken from the
layers as they were before the session (later inputs are the replay's own earlier outputs) and must equal
the copy exactly.  The ``medimg segment`` steps replay the same way.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medimg import ops
from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti, write_nifti
from napari_medimg.pipeline.steps import StepLog, session_log
from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.interpolate import FillBetweenSlicesWidget
from napari_medimg.plugin.widgets.preprocess import PreprocessWidget
from napari_medimg.plugin.widgets.segment_tools import LabelEditWidget, RegionGrowingWidget
from napari_medimg.plugin.widgets.threshold import ThresholdWidget

TIMEOUT = 30_000


def _replay(steps, state: dict) -> list:
    """Run ``steps`` through the registry; ``state`` maps layer names to Volumes and receives the outputs."""
    results = []
    for step in steps:
        operation = ops.get(step.name)
        inputs = [state[name] for name in step.inputs if name in state][: len(operation.inputs)]
        assert len(inputs) == len(operation.inputs), (step.name, step.inputs)
        result = ops.run(step.name, *inputs, **step.params)
        state[step.output] = result
        results.append(result)
    return results


def test_widget_session_replays_through_the_registry(make_napari_viewer, qtbot, small_phantom):
    viewer = make_napari_viewer()
    image = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    lesions = small_phantom.lesions
    painted = np.zeros_like(lesions.array)
    painted[:, ::4] = lesions.array[:, ::4]
    sparse = set_or_add_layer(viewer, layer_data_tuple(lesions.with_array(painted), "labels", name="painted"))
    other = set_or_add_layer(viewer, layer_data_tuple(lesions, "labels", name="lesions"))
    # the lesion with label 6, as a seed point and as painted seeds with a background seed beside it
    row = small_phantom.lesion_table.iloc[5]
    index = small_phantom.image.world_to_index([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm])
    points = viewer.add_points([image.data_to_world(index)], name="seed point")
    seeds = np.zeros(image.data.shape, np.uint8)
    k, j, i = np.round(index).astype(int)
    seeds[k, j, i], seeds[k, j, i + 10] = 1, 2
    seed_labels = set_or_add_layer(
        viewer, layer_data_tuple(small_phantom.image.with_array(seeds), "labels", name="seed labels")
    )
    before = {layer.name: layer_to_volume(layer) for layer in (image, sparse, other, seed_labels)}
    start = len(session_log())
    expected = []

    def finish(widget, output):
        qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
        assert not widget.status.value.startswith("error"), widget.status.value
        expected.append(np.array(viewer.layers[output].data, copy=True))

    preprocess = PreprocessWidget(viewer)
    preprocess.image.value = image
    for operation, values in [
        ("denoise", {"method": "gaussian", "size_mm": 1.2}),
        ("denoise", {"method": "median", "size_mm": 1.0, "sigma_intensity": 0.0}),
        ("window/level", {"preset": "bone", "output": "unit"}),
        ("normalize", {"method": "percentile", "low_percentile": 2.0}),
        ("resample", {"spacing_mm": 2.8, "interpolation": "cubic"}),
        ("vesselness", {"method": "sato", "sigmas_mm": "1.5, 3"}),
    ]:
        preprocess.operation.value = operation
        preprocess.set_params(**values)
        preprocess.apply()
        finish(preprocess, preprocess.result_name)

    threshold = ThresholdWidget(viewer)
    threshold.image.value = image
    threshold.preview.value = False
    for method, extra in [("otsu", {}), ("manual", {"low": 200.0, "high": 2000.0}), ("multi-otsu", {})]:
        threshold.method.value = method
        for name, value in extra.items():
            getattr(threshold, name).value = value
        threshold.apply_to_volume()
        finish(threshold, threshold.result_name)
    threshold.method.value = "local"
    threshold.block_mm.value = 20.0
    threshold.offset.value = -20.0
    threshold.apply_to_volume()
    finish(threshold, threshold.result_name)
    threshold.method.value = "manual"
    threshold.low.value, threshold.high.value = 200.0, 2000.0  # the bone mask the label editor works on
    threshold.apply_to_volume()
    finish(threshold, threshold.result_name)

    growing = RegionGrowingWidget(viewer)
    growing.image.value, growing.points.value = image, points
    growing.method.value = "connected threshold"
    growing.value.value = 6
    growing.apply()
    finish(growing, growing.result_name)
    growing.method.value = "confidence connected"
    growing.apply()
    finish(growing, growing.result_name)
    growing.method.value = "grow from seeds"
    growing.seeds.value = seed_labels
    growing.apply()
    finish(growing, growing.result_name)

    editor = LabelEditWidget(viewer)
    editor.labels_layer.value = viewer.layers["CT threshold"]
    editor.value.value = 1
    for operation in [
        "close",
        "remove small islands",
        "margin",
        "smooth",
        "fill holes (per slice)",
        "keep largest island",
        "logical: union",
        "logical: invert",
        "split islands",
        "watershed split",
    ]:
        editor.operation.value = operation
        if operation.startswith("logical"):
            editor.other.value, editor.other_value.value = other, 3
        editor.apply()
        output = "CT threshold" if operation not in ("split islands", "watershed split") else None
        finish(editor, output or f"CT threshold {operation}")

    fill = FillBetweenSlicesWidget(viewer)
    fill.labels_layer.value = sparse
    fill.axis.value = "1 (rows, y)"
    fill.apply()
    finish(fill, "painted")

    steps = list(session_log())[start:]
    assert len(steps) == len(expected) == 25
    names = {step.name for step in steps}
    assert names >= {"denoise", "threshold", "multi_otsu", "local_threshold", "region_growing"}
    assert names >= {"grow_from_seeds", "morphology", "islands", "logical", "invert", "fill_between_slices"}
    for step in steps:  # the recorded steps are registry names with valid core parameters
        ops.get(step.name).validate(step.params)
    assert steps[0].params == {"method": "gaussian", "sigma_mm": 1.2, "sigma_intensity": None}
    assert steps[6].params == {"method": "otsu", "low": None, "high": None}
    replayed = _replay(StepLog.from_json(session_log().to_json()).steps[start:], dict(before))
    for step, result, want in zip(steps, replayed, expected, strict=True):
        assert result.shape == want.shape, step.name
        np.testing.assert_array_equal(np.asarray(result.array), want, err_msg=f"{step.name} {step.params}")
    # the edits really changed something (the test could fail)
    assert not np.array_equal(expected[-1], painted)
    assert len({int(np.count_nonzero(e)) for e in expected[14:24]}) > 3


@pytest.fixture
def nifti(small_phantom, tmp_path):
    return write_nifti(small_phantom.image, tmp_path / "ct.nii.gz")


def test_segment_command_steps_replay(nifti, tmp_path, capsys):
    out = tmp_path / "mask.nii.gz"
    argv = ["segment", nifti, out, "--preprocess", "median:1", "--preprocess", "normalize:percentile"]
    argv += ["--threshold", "otsu", "--close", "1.5", "--fill-holes", "--min-size", "200", "--keep-largest"]
    assert main([str(a) for a in argv]) == 0
    summary = json.loads(capsys.readouterr().out)
    steps = StepLog.from_json(json.dumps({"steps": summary["steps"]})).steps
    assert [s.name for s in steps][1:-1] == [
        "denoise",
        "normalize",
        "threshold",
        "morphology",
        "fill_holes",
        "islands",
        "islands",
    ]
    volume = read_nifti(nifti)
    for step in steps[1:-1]:
        volume = ops.run(step.name, volume, **step.params)
    np.testing.assert_array_equal(np.asarray(volume.array, np.uint8), read_nifti(out).array)
    assert 0 < summary["voxels"] < volume.array.size
