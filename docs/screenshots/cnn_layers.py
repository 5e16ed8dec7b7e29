"""Screenshot for docs/cnn-tutorial.md § "Train from napari layers": object patches from a Labels layer.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/cnn_layers.py

The CT phantom's six lesions plus nine lesion-free spheres (soft tissue, lung, liver) form a Labels layer
whose ``features`` column ``class`` says lesion/normal; the panel trains a 2D CNN on 40 mm patches around
them and classifies the objects back.  Writes docs/images/cnn-train-layers.png.
"""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
from _shots import save, settle, wait_until

from napari_medimg.learn.cnn.examples import PHANTOM_SHAPE, PHANTOM_SPACING, normal_tissue_objects
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.samples import make_ct_phantom


def main():
    phantom = make_ct_phantom(shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, seed=0)
    objects = phantom.lesions
    for seed in range(3):  # three lesion-free spheres per call, away from everything labelled so far
        objects = objects.with_array(normal_tissue_objects(objects, phantom.tissues, seed=seed))
    ids = np.unique(objects.array)[1:]
    names = dict(zip(phantom.lesion_table["label"], phantom.lesion_table["name"], strict=False))
    features = pd.DataFrame(
        {
            "index": ids,
            "name": [names.get(i, "normal tissue") for i in ids],
            "class": ["lesion" if i in names else "normal" for i in ids],
        }
    )
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    image = set_or_add_layer(
        viewer, layer_data_tuple(phantom.image, "image", name="CT phantom", contrast_limits=(-300, 300))
    )
    labels = set_or_add_layer(viewer, layer_data_tuple(objects, "labels", name="objects", features=features))
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "CNN classifier")
    widget.source.value = "napari layers"
    widget.train_image.value, widget.train_labels.value = image, labels
    widget.class_column.value = "class"
    widget.patch_mm.value, widget.size.value, widget.val_fraction.value = 40.0, "32 32", 0.34
    widget.net_width.value, widget.depths.value = 16, "1 1 1"
    widget.epochs.value, widget.minutes.value = 30, 1.0
    widget.start_training()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    widget.image.value, widget.objects.value = image, labels
    widget.start_prediction()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    print(
        viewer.layers["CT phantom CNN classes"].features[["index", "class_name", "probability"]].to_string()
    )
    for name in ("objects", widget.result_names["probability"], "CT phantom CNN saliency"):
        viewer.layers[name].visible = False
    viewer.dims.set_point(0, image.data_to_world((12, 0, 0))[0])
    settle(0.5)
    save(viewer, "cnn-train-layers.png")
    viewer.close()


if __name__ == "__main__":
    main()
