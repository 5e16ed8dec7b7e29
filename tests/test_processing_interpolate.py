"""Fill between slices (shape-based interpolation) on synthetic shapes and on the phantom's lesions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.measure.metrics import dice
from napari_medimg.processing.interpolate import fill_between_slices, signed_distance


def test_signed_distance_zero_level_is_the_mask():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 8:20] = True
    sd = signed_distance(mask, spacing=(0.7, 0.5))
    assert np.array_equal(sd < 0, mask)
    assert sd[10, 14] < -2.0 and sd[0, 0] > 3.0


def test_interpolates_a_cone_between_two_discs():
    labels = np.zeros((9, 41, 41), np.uint8)
    y, x = np.mgrid[0:41, 0:41]
    r = np.hypot(y - 20, x - 20)
    labels[0][r <= 4] = 1
    labels[8][r <= 12] = 1
    out = fill_between_slices(labels, axis=0, spacing=(1.0, 1.0, 1.0))
    radii = [np.sqrt(np.count_nonzero(out[k]) / np.pi) for k in range(9)]
    assert np.all(np.diff(radii) > 0)
    assert radii[4] == pytest.approx(8.0, abs=0.6)
    assert np.array_equal(out[0], labels[0]) and np.array_equal(out[8], labels[8])
    assert not labels[4].any()  # the input is left alone


def test_never_overwrites_other_labels_and_keeps_painted_slices():
    labels = np.zeros((5, 20, 20), np.uint8)
    labels[0, 5:15, 5:15] = 1
    labels[4, 5:15, 5:15] = 1
    labels[2, 8:12, :] = 2  # another label crossing the gap, painted only there
    out = fill_between_slices(labels, axis=0)
    assert np.array_equal(out == 2, labels == 2)
    assert np.all(out[1:4, 5:15, 5:15][labels[1:4, 5:15, 5:15] == 0] == 1)
    only_two = fill_between_slices(labels, axis=0, values=[2])
    assert np.array_equal(only_two, labels)
    with pytest.raises(ValueError):
        fill_between_slices(labels, values=[0])


def test_any_axis_and_2d():
    labels = np.zeros((20, 20, 20), np.uint16)
    labels[5:15, 5:15, 2] = 7
    labels[5:15, 5:15, 10] = 7
    out = fill_between_slices(labels, axis=2)
    assert np.all(out[5:15, 5:15, 2:11] == 7) and out.dtype == np.uint16
    image = np.zeros((10, 10), np.uint8)
    image[0, 3:6] = 1
    image[6, 3:6] = 1
    out2 = fill_between_slices(image, axis=0)
    assert np.all(out2[0:7, 3:6] == 1) and out2[:, :3].sum() == 0


@pytest.mark.parametrize("axis", [1, 2])
def test_phantom_lesions_every_fourth_slice(phantom, axis):
    truth = phantom.lesions.array
    spacing = phantom.lesions.spacing
    for phase in range(4):
        painted = np.zeros_like(truth)
        index = [slice(None)] * 3
        index[axis] = slice(phase, None, 4)
        index = tuple(index)
        painted[index] = truth[index]
        out = fill_between_slices(painted, axis=axis, spacing=spacing)
        assert np.array_equal(out[index], truth[index])  # painted slices unchanged
        for value in range(1, 7):
            assert dice(out == value, truth == value) >= 0.9, (axis, phase, value)
