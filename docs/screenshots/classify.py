"""Screenshots for docs/classify.md: the object classifier on the CT phantom's lesions and the pixel classifier
on a DRIVE fundus photograph.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/classify.py [objects] [pixels]

Writes docs/images/classify-objects.png and docs/images/classify-pixels.png (the second only when the DRIVE
data exists).
"""

from __future__ import annotations

import napari
import numpy as np
from _shots import SHARED_DATA, save, settle, wait_for_worker, wait_until

from napari_medimg.io.raster import read_image
from napari_medimg.measure import compute_features
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.samples import make_ct_phantom

DRIVE = SHARED_DATA / "segmentation" / "drive" / "training"


def objects():
    """Measure the phantom's six lesions, paint 'nodule' (1) / 'other' (2) strokes, train a forest, predict."""
    phantom = make_ct_phantom()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    set_or_add_layer(
        viewer, layer_data_tuple(phantom.image, "image", name="CT phantom", contrast_limits=(-300, 300))
    )
    lesions = set_or_add_layer(viewer, layer_data_tuple(phantom.lesions, "labels", name="lesions"))
    table = compute_features(phantom.lesions, np.asarray(phantom.image.array), groups=("shape", "firstorder"))
    lesions.features = table.assign(index=table["label"])
    painted = np.zeros(phantom.lesions.shape, np.uint8)
    array = np.asarray(phantom.lesions.array)
    for label in range(1, 7):
        voxels = np.argwhere(array == label)
        for voxel in voxels[:: max(1, len(voxels) // 3)]:
            painted[tuple(voxel)] = 1 if label <= 3 else 2
    set_or_add_layer(viewer, layer_data_tuple(phantom.image.with_array(painted), "labels", name="classes"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "Object classifier")
    widget.objects.value = lesions
    widget.class_source.value = "classes"
    widget.folds.value = 3
    widget.apply()
    wait_for_worker(widget)
    print(widget.summary.value)
    widget.predict()
    lesions.visible = False
    viewer.layers["classes"].visible = False
    centre = np.argwhere(array == 1).mean(axis=0)
    viewer.dims.set_point(0, viewer.layers["CT phantom"].data_to_world(centre)[0])
    settle(2.0)
    save(viewer, "classify-objects.png")
    viewer.close()


def pixels():
    """Strokes on DRIVE image 21 (every 40th pixel of the manual labels inside the FOV), train, segment."""
    if not DRIVE.is_dir():
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    image = read_image(DRIVE / "images" / "21_training.tif")
    manual = read_image(DRIVE / "1st_manual" / "21_manual1.gif").array > 0
    fov = read_image(DRIVE / "mask" / "21_training_mask.gif").array > 0
    layer = viewer.add_image(image.array, name="21_training", rgb=True)
    strokes = np.zeros(manual.shape, np.uint8)
    rows, columns = np.nonzero(fov)
    pick = np.arange(0, len(rows), 40)
    strokes[rows[pick], columns[pick]] = np.where(manual[rows[pick], columns[pick]], 2, 1)
    strokes_layer = viewer.add_labels(strokes, name="strokes")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "Pixel classifier")
    widget.image.value, widget.strokes.value = layer, strokes_layer
    widget.apply()  # the default settings (normalise 'auto' picks 'image' for this photograph)
    wait_for_worker(widget)
    print(widget.summary.value)
    wait_until(lambda: widget._preview_worker is None and "21_training preview" in viewer.layers)
    viewer.layers["21_training preview"].visible = False
    widget.segment()
    wait_for_worker(widget)
    strokes_layer.visible = False
    viewer.layers["21_training P(class 2)"].visible = False
    settle(2.0)
    save(viewer, "classify-pixels.png")
    viewer.close()


if __name__ == "__main__":
    import sys

    for part in sys.argv[1:] or ["objects", "pixels"]:
        {"objects": objects, "pixels": pixels}[part]()
