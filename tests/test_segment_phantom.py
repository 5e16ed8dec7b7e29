"""Verification on the generated CT phantom: thresholds + islands recover every lesion."""

from __future__ import annotations

import numpy as np

from napari_medimg.measure.metrics import compare_masks
from napari_medimg.processing import morphology as mo
from napari_medimg.processing.preprocess import denoise
from napari_medimg.processing.region_growing import seed_indices
from napari_medimg.processing.threshold import threshold_mask


def test_thresholds_and_islands_recover_every_lesion(phantom):
    """The reader clicks a lesion and gives its rough radius; the threshold is half-way (FWHM rule) between
    the lesion's HU (a 3 mm ball at the click) and its surroundings' (a ring 1.5–2 radii out); the island at
    the click is kept and its holes are filled."""
    image = denoise(phantom.image, method="gaussian", sigma_mm=0.7)  # the phantom has 12 HU correlated noise
    array, spacing = image.array, image.spacing
    grid = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(array.shape, spacing, strict=False)], indexing="ij", sparse=True
    )
    for row in phantom.lesion_table.itertuples():
        click = np.array([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm])  # LPS mm
        centre_mm = image.world_to_index(click) * spacing  # (z, y, x) mm from the first voxel
        radius = max(row.radius_z_mm, row.radius_y_mm, row.radius_x_mm)
        distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre_mm, strict=False)))
        lesion_hu = float(array[distance <= 3].mean())
        around_hu = float(np.median(array[(distance >= 1.5 * radius) & (distance <= 2 * radius)]))
        half = (lesion_hu + around_hu) / 2
        low, high = (half, 3071) if lesion_hu > around_hu else (-1024, half)
        mask = threshold_mask(array, low=low, high=high)
        island = mo.fill_holes(mo.keep_selected(mask, seed_indices(image, [click]), connectivity=1))
        result = compare_masks(island, phantom.lesions.array == row.label, spacing)
        assert result["dice"] >= 0.95, (row.name, result)
        assert abs(result["volume_difference_percent"]) < 5.0, (row.name, result)
        assert result["hd95_mm"] <= 1.0, (row.name, result)
