"""Automatic thresholds of a lazy (dask) volume read only a strided sample, never the whole volume."""

import dask.array as da
import numpy as np
import pytest

from napari_medimg.processing import threshold as th


class CountingSource:
    """An array-like that records how many voxels were read from it."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.voxels_read = 0

    def __getitem__(self, index):
        block = self.array[index]
        self.voxels_read += block.size
        return block


def test_threshold_range_of_a_lazy_volume_reads_a_sample(monkeypatch):
    rng = np.random.default_rng(0)
    array = np.where(rng.random((40, 64, 64)) < 0.3, 1000, 0).astype(np.int16) + rng.integers(
        0, 50, (40, 64, 64), dtype=np.int16
    )
    monkeypatch.setattr(th, "_MAX_SAMPLES", 10_000)  # force a stride on this small volume
    source = CountingSource(array)
    lazy = da.from_array(source, chunks=(1, 64, 64), asarray=False)
    low, high = th.threshold_range(lazy, method="otsu")
    assert source.voxels_read < array.size / 2
    assert 40 <= low < 1000  # between the two intensity classes
    assert high == np.iinfo(np.int16).max  # the whole volume was not read for its maximum
    eager_low, eager_high = th.threshold_range(array, method="otsu")
    assert low == pytest.approx(eager_low, abs=50)
    assert eager_high == array.max()
    np.testing.assert_array_equal(
        th.threshold_mask(lazy, low=low, high=high), th.threshold_mask(array, low=low, high=high)
    )
