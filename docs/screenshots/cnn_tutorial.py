"""Screenshots for docs/cnn-tutorial.md: train from a labelled folder in the CNN panel, predict per object.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/cnn_tutorial.py

Writes the labelled folder and the model under demo-output/cnn-tutorial/ and the PNGs into docs/images/.
"""

from __future__ import annotations

import shutil

import napari
from _shots import ROOT, save, settle, wait_until

from napari_medimg.learn.cnn.examples import (
    PHANTOM_SHAPE,
    PHANTOM_SPACING,
    make_patch_folder,
    normal_tissue_objects,
)
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.samples import make_ct_phantom

WORK = ROOT / "demo-output" / "cnn-tutorial"


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    csv_path = make_patch_folder(WORK / "patches")
    phantom = make_ct_phantom(shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, seed=0)
    objects = normal_tissue_objects(phantom.lesions, phantom.tissues)

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    image = set_or_add_layer(
        viewer, layer_data_tuple(phantom.image, "image", name="CT phantom", contrast_limits=(-300, 300))
    )
    set_or_add_layer(viewer, layer_data_tuple(phantom.image.with_array(objects), "labels", name="objects"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "CNN classifier")
    widget.source.value = "folder + labels CSV"
    widget.data_path.value = csv_path
    widget.size.value = "32 32"
    widget.net_width.value, widget.depths.value = 16, "1 1 1"
    widget.epochs.value, widget.minutes.value = 30, 1.5
    widget.folds.value = 3  # an ensemble of three fold models within the 1.5 minutes
    widget.save_path.value = WORK / "model"
    widget.start_training()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    widget.image.value = image
    widget.objects.value = viewer.layers["objects"]
    widget.start_prediction()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    print(viewer.layers["CT phantom CNN classes"].features.to_string())
    viewer.layers["objects"].visible = False
    viewer.layers[widget.result_names["probability"]].visible = False
    viewer.layers["CT phantom CNN saliency"].visible = False
    viewer.dims.set_point(0, image.data_to_world((28, 0, 0))[0])
    settle(0.5)
    save(viewer, "cnn-panel-objects.png")
    viewer.layers["CT phantom CNN classes"].visible = False
    viewer.layers["CT phantom CNN saliency"].visible = True
    viewer.dims.set_point(0, image.data_to_world((19, 0, 0))[0])  # the slice of lesion 1's patch
    settle(0.5)
    save(viewer, "cnn-saliency.png")
    viewer.close()


if __name__ == "__main__":
    main()
