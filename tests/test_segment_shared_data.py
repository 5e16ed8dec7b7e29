"""Verification on real data: MNI152 grey/white matter and DRIVE vessels (small subsets; full runs in
benchmarks/bench_segment.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.io.nifti import read_nifti
from napari_medimg.measure.metrics import dice
from napari_medimg.processing import morphology as mo
from napari_medimg.processing import threshold as th

MNI = "segmentation/mni152/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


@pytest.mark.shared_data
def test_mni152_white_and_grey_matter_by_multi_otsu(shared_data):
    t1 = read_nifti(shared_data / MNI.format("t1"))
    slab = slice(70, 100)  # 30 axial slices through the ventricles keep the test fast
    array = np.asarray(t1.array[slab])
    wm = read_nifti(shared_data / MNI.format("wm")).array[slab] >= 128
    gm = read_nifti(shared_data / MNI.format("gm")).array[slab] >= 128
    thresholds = th.multi_otsu_thresholds(array, classes=3, mask=array > 0)
    classes = th.multi_otsu_labels(array, classes=3, thresholds=thresholds)
    white = mo.keep_largest(classes == 2, connectivity=1)
    grey = mo.remove_small(classes == 1, min_size_mm3=100.0, spacing=t1.spacing)
    assert dice(white, wm) >= 0.85
    assert dice(grey, gm) >= 0.8


def _bench_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_segment.py"
    spec = importlib.util.spec_from_file_location("bench_segment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.shared_data
def test_drive_vessel_recipe_on_two_cases(shared_data):
    bench = _bench_module()
    folder = shared_data / "segmentation" / "drive" / "training"
    for case in ("21", "30"):
        rgb = bench._read_gray(folder / "images" / f"{case}_training.tif")
        truth = bench._read_gray(folder / "1st_manual" / f"{case}_manual1.gif") > 127
        fov = bench._read_gray(folder / "mask" / f"{case}_training_mask.gif") > 127
        mask = bench.drive_segment(rgb, fov)
        assert dice(mask[fov], truth[fov]) >= 0.7, case
        assert np.mean(mask[fov] == truth[fov]) >= 0.93, case
