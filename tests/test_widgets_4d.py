"""Tools on a 4D (volume, z, y, x) layer act on the volume its slider shows."""

from __future__ import annotations

import numpy as np

from napari_medimg.geometry import Volume
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer, shown_volume
from napari_medimg.plugin.widgets.measure import MeasureWidget
from napari_medimg.plugin.widgets.threshold import ThresholdWidget


def _fmri(viewer):
    array = np.zeros((3, 4, 16, 16), np.int16)
    for t in range(3):
        array[t, :, 4:12, 4:12] = 100 * (t + 1)  # volume t: a square of 100·(t+1)
        array[t, :, 6:10, 6:10] = 400 if t == 2 else 0
    volume = Volume(array, (3.0, 2.0, 2.0), metadata={"modality": "MR", "volume_info": [{}, {}, {}]})
    return set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="fmri"))


def test_threshold_and_measure_act_on_the_volume_shown(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = _fmri(viewer)
    assert layer.ndim == 4
    viewer.dims.set_current_step(0, 2)  # the third volume
    shown = shown_volume(viewer, layer)
    assert shown.shape == (4, 16, 16) and shown.metadata["volume_index"] == 2
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    widget.preview.value = False
    widget.method.value = "manual"
    widget.low.value, widget.high.value = 250.0, 1000.0
    widget.apply_to_volume()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    mask = viewer.layers[widget.result_name].data
    assert mask.shape == (4, 16, 16)
    assert np.count_nonzero(mask) == 4 * 64  # volume 3 (300 and 400 HU inside the square); volume 1 is < 250
    labels = viewer.layers[widget.result_name]
    measure = MeasureWidget(viewer)
    measure.labels.value = labels
    measure.images.value = [layer]
    measure.measure()
    qtbot.waitUntil(lambda: measure.worker is None, timeout=60000)
    assert not measure.status.value.startswith(("error", "fmri")), measure.status.value
    table = labels.features
    assert float(table.loc[table["label"] == 1, "firstorder_Maximum"].iloc[0]) == 400.0
