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
