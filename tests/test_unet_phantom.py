"""3D check of the U-Net on the CT phantom: trained from every 4th slice of the lesion labels, it segments the
lesions on the other slices (Dice ≥ 0.9).  Slow: about 8 minutes of training on a 2-core CPU."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.learn.unet import UNetTrainConfig, loaded, segment, train_unet


@pytest.mark.slow
def test_lesions_from_every_fourth_slice(phantom):
    image = np.asarray(phantom.image.array)
    lesions = np.asarray(phantom.lesions.array) > 0
    truth = np.where(lesions, 2, 1).astype(np.uint8)
    painted = np.zeros_like(truth)
    painted[::4] = truth[::4]  # 16 of 64 slices annotated, 48 unseen
    config = UNetTrainConfig(iterations=100_000, minutes=8.0, normalisation="fixed", patch=[64, 64], seed=0)
    result = train_unet([image], [painted], [phantom.image.spacing], config=config, width=16, levels=4)
    assert result.model.config.dims == 2  # slices 4 apart: slice-wise model chosen automatically
    assert result.seconds < 8 * 60 + 30  # the time budget is hard (+ the threshold choice)
    seg = segment(loaded(result), image)
    unseen = np.ones(len(image), bool)
    unseen[::4] = False
    predicted, expected = seg.labels[unseen] == 2, lesions[unseen]
    dice = 2 * np.logical_and(predicted, expected).sum() / (predicted.sum() + expected.sum())
    assert dice >= 0.9, dice
