"""Pixel classifier on DRIVE (real fundus photographs, LZW TIFF + GIF masks): trained on 21–24, Dice on 25–40."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.io.raster import read_image
from napari_medimg.learn.pixels import FeatureSettings, predict_pixels, train_pixel_classifier


def _case(drive, case):
    image = read_image(drive / "images" / f"{case}_training.tif")
    manual = read_image(drive / "1st_manual" / f"{case}_manual1.gif").array > 0
    fov = read_image(drive / "mask" / f"{case}_training_mask.gif").array > 0
    return image, manual, fov


@pytest.mark.slow
@pytest.mark.shared_data
def test_drive_trained_on_21_to_24_with_the_default_settings(shared_data):
    """What `medimg pixels train` does with its defaults (normalise 'auto' → 'image' for these photographs)."""
    drive = shared_data / "segmentation" / "drive" / "training"
    training = [_case(drive, case) for case in (21, 22, 23, 24)]
    labels = [np.where(fov, np.where(manual, 2, 1), 0).astype(np.uint8) for _, manual, fov in training]
    classifier = train_pixel_classifier(
        [image for image, _, _ in training], labels, class_names=["background", "vessel"]
    )
    assert classifier.settings == FeatureSettings(normalise="image")
    assert classifier.channels == ["red", "green", "blue"] and classifier.spacing_assumed
    assert classifier.metrics["oob_acc"] > 0.93
    dices = []
    for case in range(25, 41):
        image, manual, fov = _case(drive, case)
        vessel = (predict_pixels(classifier, image, probabilities=False).labels == 2) & fov
        truth = manual & fov
        dices.append(2 * (vessel & truth).sum() / (vessel.sum() + truth.sum()))
    # measured: 0.765 with auto-context (benchmarks/bench_classify.py --part drive); the target of 0.78 is NOT
    # reached — this asserts the level we do reach, so that a regression fails
    assert np.mean(dices) >= 0.76, dices
    assert min(dices) > 0.55  # the hardest image gives about 0.6
