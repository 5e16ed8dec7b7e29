"""The operation registry's segmentation operations: contract names, parameters and results."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg import ops
from napari_medimg.geometry import Volume
from napari_medimg.processing import morphology as mo
from napari_medimg.processing.threshold import threshold_mask, threshold_range


@pytest.fixture
def two_blobs() -> Volume:
    array = np.zeros((12, 30, 30), np.float32)
    array[2:10, 3:15, 3:15] = 100.0  # 8 * 12 * 12 voxels
    array[4:6, 20:23, 20:23] = 100.0  # 18 voxels
    noise = np.random.default_rng(1).normal(0, 5, array.shape).astype(np.float32)
    return Volume(array + noise, spacing=(2.0, 0.5, 0.5), origin=(1.0, 2.0, 3.0))


def test_threshold_contract_names_and_choices():
    op = ops.get("threshold")
    assert op.inputs == ("image",) and op.output == "mask"
    assert op.parameter("method").choices == ("otsu", "li", "yen", "triangle", "manual")
    assert {p.name for p in op.parameters} >= {"method", "low", "high"}
    islands = ops.get("islands")
    assert islands.parameter("operation").choices == ("keep_largest", "remove_small")
    assert islands.parameter("min_size_mm3").unit == "mm³"


@pytest.mark.parametrize("method", ["otsu", "li", "yen", "triangle"])
def test_threshold_automatic_matches_core(two_blobs, method):
    mask = ops.run("threshold", two_blobs, method=method)
    low, high = threshold_range(two_blobs.array, method=method)
    np.testing.assert_array_equal(mask.array, threshold_mask(two_blobs.array, low=low, high=high))
    assert mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.origin, two_blobs.origin)
    np.testing.assert_array_equal(mask.spacing, two_blobs.spacing)


def test_threshold_manual_open_ended(two_blobs):
    mask = ops.run("threshold", two_blobs, method="manual", low=50.0)
    np.testing.assert_array_equal(mask.array, (two_blobs.array >= 50).astype(np.uint8))
    with pytest.raises(ops.ParameterError, match="method"):
        ops.run("threshold", two_blobs, method="random")


def test_islands(two_blobs):
    mask = ops.run("threshold", two_blobs, method="manual", low=50.0)
    largest = ops.run("islands", mask, operation="keep_largest")
    np.testing.assert_array_equal(largest.array, mo.keep_largest(mask.array))
    assert largest.array.sum() == 8 * 12 * 12
    # the small blob is 18 voxels of 0.5 mm³ = 9 mm³
    kept = ops.run("islands", mask, operation="remove_small", min_size_mm3=8.0)
    assert kept.array.sum() == 8 * 12 * 12 + 18
    removed = ops.run("islands", mask, operation="remove_small", min_size_mm3=10.0)
    assert removed.array.sum() == 8 * 12 * 12


def _widget_and_cli_operations() -> set[str]:
    """Every registry name the Preprocess / Threshold / Segment tools / Fill widgets and medimg segment run."""
    from napari_medimg.cli import segment as cli_segment
    from napari_medimg.plugin.widgets import preprocess, segment_tools

    names = {entry[0] for entry in preprocess.OPERATIONS.values()}
    values = {
        "value": 1,
        "overwrite": False,
        "radius_mm": 1.0,
        "axis": 0,
        "min_size_mm3": 1.0,
        "margin_mm": 1.0,
        "smoothing": "median",
        "h_mm": 1.0,
        "other_value": 1,
    }
    for tool in segment_tools.EDIT_OPERATIONS:
        name, params = segment_tools.label_edit_step(tool, values)
        ops.get(name).validate(params)
        names.add(name)
    names |= {"threshold", "multi_otsu", "local_threshold", "region_growing", "grow_from_seeds"}
    names.add("fill_between_slices")
    for spec in ["gaussian:1", "median:1", "bilateral:1", "nl-means", "window:bone", "window:40,400"]:
        names.add(cli_segment.preprocess_step(spec)[0])
    for spec in ["normalize:min-max", "clahe", "gamma:0.5", "unsharp", "resample:2"]:
        name, params = cli_segment.preprocess_step(spec)
        ops.get(name).validate(params)
        names.add(name)
    return names | {"morphology", "fill_holes", "islands"}


def test_medimg_ops_json_lists_every_operation_the_widgets_and_cli_use(capsys):
    import json

    from napari_medimg.cli import main

    assert main(["ops", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out)["operations"]
    listed = {entry["name"]: entry for entry in catalogue}
    used = _widget_and_cli_operations()
    assert len(used) >= 25 and used <= set(listed), sorted(used - set(listed))
    radius = {p["name"]: p for p in listed["morphology"]["parameters"]}["radius_mm"]
    assert radius == {
        "name": "radius_mm",
        "type": "number",
        "default": 1.0,
        "required": False,
        "unit": "mm",
        "choices": None,
        "description": "Ball radius in mm",
    }
    method = listed["threshold"]["schema"]["properties"]["method"]
    assert method["enum"] == ["otsu", "li", "yen", "triangle", "manual"] and method["default"] == "otsu"
    seeds = listed["region_growing"]["schema"]
    assert "seeds" in seeds["required"] and seeds["additionalProperties"] is False
    assert main(["ops", "islands"]) == 0
    text = capsys.readouterr().out
    assert "islands(mask) -> mask" in text and "min_size_mm3: number [mm³], default 0.0" in text
    assert main(["ops", "nope"]) == 2
    assert "unknown operation 'nope'" in capsys.readouterr().err


def test_label_mode_edits_one_label_and_keeps_the_others():
    labels = np.zeros((20, 20), np.uint8)
    labels[2:8, 2:8] = 1
    labels[8:14, 2:8] = 2  # touches label 1
    volume = Volume(labels, (1.0, 1.0))
    grown = ops.run("margin", volume, margin_mm=2.0, label=1)
    assert set(np.unique(grown.array)) == {0, 1, 2}
    np.testing.assert_array_equal(grown.array == 2, labels == 2)  # label 2 kept (no overwrite)
    assert np.count_nonzero(grown.array == 1) > np.count_nonzero(labels == 1)
    over = ops.run("margin", volume, margin_mm=2.0, label=1, overwrite=True)
    assert np.count_nonzero(over.array == 2) < np.count_nonzero(labels == 2)
    mask = ops.run("margin", volume, margin_mm=2.0)  # no label: any non-zero voxel, a uint8 mask
    assert set(np.unique(mask.array)) == {0, 1} and mask.array.dtype == np.uint8
    union = ops.run("logical", volume, volume, operation="union", label=1, other_label=2)
    np.testing.assert_array_equal(union.array, labels)  # label 2's voxels are not taken without overwrite
    union = ops.run("logical", volume, volume, operation="union", label=1, other_label=2, overwrite=True)
    assert np.count_nonzero(union.array == 1) == np.count_nonzero(labels)
    with pytest.raises(ops.ParameterError, match="takes 2 input"):
        ops.run("logical", volume, operation="union")


def test_every_parameter_is_described_from_the_numpydoc_section():
    mine = (
        "napari_medimg.ops.segment",
        "napari_medimg.ops.preprocess",
        "napari_medimg.processing.preprocess",
    )
    undescribed = [
        f"{name}.{p.name}"
        for name in ops.names()
        if ops.get(name).function.__module__ in mine
        for p in ops.get(name).parameters
        if not p.description
    ]
    assert not undescribed, undescribed
    low, high = ops.get("hysteresis_threshold").parameters  # "low, high : float" describes both
    assert low.description == high.description != ""


LOOKUP_DURING_LOAD = """
import sys, threading
from napari_medimg import ops
loader = threading.Thread(target=ops.names)
loader.start()
while "napari_medimg.ops.classify" not in sys.modules:  # the loader is part-way through the op modules
    pass
ops.get("threshold")  # ops/segment.py is imported last: this lookup must wait for it, not fail
loader.join()
print(len(ops.names()))
"""


def test_an_op_looked_up_while_another_thread_loads_the_registry_is_found():
    import subprocess
    import sys

    # the demo's worker looked up "threshold" while the main thread was still importing the op modules
    result = subprocess.run(
        [sys.executable, "-c", LOOKUP_DURING_LOAD], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 30
