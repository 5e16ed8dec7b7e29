"""Every feature we share with pyradiomics matches its own output on real ROIs (1e-3 relative or 1e-6 absolute).

The reference set (../shared/data/radiomics_reference) holds pyradiomics 3.1.0 values for MNI152 spheres (3D,
13 directions) and CT_small masks (force2D, shape2D).  The two whole-brain ROIs are checked by
``benchmarks/bench_features.py`` (too slow for the test suite).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from napari_medimg.io.nifti import read_nifti
from napari_medimg.measure import compute_features

pytestmark = pytest.mark.shared_data

SMALL_ROIS = [
    "mni_sph_wm_centrum_semiovale_L",
    "mni_sph_wm_centrum_semiovale_R",
    "mni_sph_wm_frontal_R",
    "mni_sph_gm_putamen_L",
    "mni_sph_gm_thalamus_R",
    "ct_softtissue",
    "ct_bone",
    "ct_fat",
    "ct_circle",
]


@lru_cache(maxsize=4)
def _volume(path: str):
    return read_nifti(path)


@pytest.fixture(scope="module")
def reference(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "radiomics_reference" / "pyradiomics_features.csv").set_index("roi_name")


@pytest.mark.parametrize("roi", SMALL_ROIS)
def test_matches_pyradiomics(roi, reference, shared_data):
    folder = shared_data / "radiomics_reference"
    expected = reference.loc[roi]
    image = _volume(str(folder / expected["image_file"]))
    mask = _volume(str(folder / expected["mask_file"]))
    row = compute_features(mask.array, image.array, mask.spacing, bin_width=25).iloc[0]
    compared = 0
    mismatches = []
    for column, value in expected.items():
        if not column.startswith("original_") or pd.isna(value):
            continue
        name = column.removeprefix("original_")
        ours = row[name]
        compared += 1
        if not (abs(ours - value) <= 1e-6 or abs(ours - value) <= 1e-3 * abs(value)):
            mismatches.append(f"{name}: ours {ours!r}, pyradiomics {value!r}")
    assert compared == (102 if roi.startswith("ct_") else 107)
    assert not mismatches, "\n".join(mismatches)


def test_mirror_rois_are_identical(shared_data):
    folder = shared_data / "radiomics_reference" / "rois"
    image = _volume(str(folder / "mni152_t1.nii.gz"))
    labels = np.zeros(image.shape, np.uint8)
    labels[_volume(str(folder / "mni152_mask_sph_wm_centrum_semiovale_L.nii.gz")).array > 0] = 1
    labels[_volume(str(folder / "mni152_mask_sph_wm_centrum_semiovale_R.nii.gz")).array > 0] = 2
    table = compute_features(labels, {"T1": image.array}, image.spacing).set_index("label")
    values = [c for c in table.columns if "Centroid" not in c and "BBox" not in c]
    pd.testing.assert_series_equal(table.loc[1, values], table.loc[2, values], check_names=False, rtol=1e-9)
