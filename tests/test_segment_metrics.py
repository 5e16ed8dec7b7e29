"""Dice, Jaccard, HD95, ASSD in mm and volumes in mm³ on shapes with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_medimg.measure import metrics


def _box(shape, lo, hi):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))] = True
    return mask


def test_overlap_scores():
    a = _box((10, 10, 10), (0, 0, 0), (10, 10, 5))
    b = _box((10, 10, 10), (0, 0, 0), (10, 10, 10))
    assert metrics.dice(a, b) == pytest.approx(2 * 500 / 1500)
    assert metrics.jaccard(a, b) == pytest.approx(0.5)
    assert metrics.dice(a, a) == 1.0 and metrics.dice(a, ~a) == 0.0
    empty = np.zeros_like(a)
    assert metrics.dice(empty, empty) == 1.0 and metrics.jaccard(empty, empty) == 1.0


def test_surface_distances_in_mm_with_anisotropic_spacing():
    a = _box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    b = np.roll(a, 2, axis=0)  # shifted by two slices of 3 mm
    spacing = (3.0, 0.5, 0.5)
    assert metrics.hausdorff95(a, b, spacing) == pytest.approx(6.0)
    d_ab, d_ba = metrics.surface_distances(a, b, spacing)
    assert d_ab.max() == pytest.approx(6.0) and d_ab.min() == 0.0
    assert 0 < metrics.assd(a, b, spacing) < 6.0
    assert metrics.hausdorff95(a, a, spacing) == 0.0 and metrics.assd(a, a, spacing) == 0.0
    assert metrics.hausdorff95(a, np.zeros_like(a), spacing) == math.inf
    c = np.roll(a, 2, axis=2)
    assert metrics.hausdorff95(a, c, spacing) == pytest.approx(1.0)


def test_volume_and_compare():
    a = _box((10, 10, 10), (0, 0, 0), (4, 5, 5))
    assert metrics.volume_mm3(a, (2.5, 0.7, 0.7)) == pytest.approx(100 * 2.5 * 0.49)
    b = _box((10, 10, 10), (0, 0, 0), (5, 5, 5))
    result = metrics.compare_masks(a, b, (1, 1, 1))
    assert result["volume_difference_percent"] == pytest.approx(-20.0)
    assert set(result) >= {"dice", "jaccard", "hd95_mm", "assd_mm", "volume_a_mm3", "volume_b_mm3"}
    none = metrics.compare_masks(a, np.zeros_like(a))
    assert none["hd95_mm"] is None and none["volume_difference_percent"] is None
    labels_a = a.astype(np.uint8) + 2 * _box((10, 10, 10), (6, 6, 6), (9, 9, 9))
    labels_b = b.astype(np.uint8)
    per = metrics.compare_labels(labels_a, labels_b)
    assert set(per) == {"foreground", "1", "2"} and per["2"]["dice"] == 0.0
    with pytest.raises(ValueError):
        metrics.dice(a, a[:5])
