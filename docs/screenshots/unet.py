"""Screenshots for docs/cnn-tutorial.md § 7 (U-Net): the active-learning loop on the CT phantom, and the
DRIVE model of ``benchmarks/bench_unet.py`` applied in the panel.

    .venv/bin/python benchmarks/bench_unet.py --minutes 10 --tta --keep demo-output/unet-drive \\
        --extra --normalisation local --patch 64 64 --batch-size 16
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/unet.py

Writes docs/images/unet-phantom.png and docs/images/unet-drive.png (the second only when the DRIVE data and
the benchmark's model exist).
"""

from __future__ import annotations

import napari
import numpy as np
from _shots import ROOT, save, settle, wait_until

from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.samples import make_ct_phantom

DRIVE = ROOT.parent / "shared" / "data" / "segmentation" / "drive" / "training"
DRIVE_MODEL = ROOT / "demo-output" / "unet-drive" / "model"


def _show_class_2(labels, colour):
    """Show only class 2 (the structure) of a U-Net labels layer, in ``colour``."""
    from napari.utils.colormaps import DirectLabelColormap

    labels.colormap = DirectLabelColormap(color_dict={None: (0, 0, 0, 0), 1: (0, 0, 0, 0), 2: colour})
    labels.opacity = 0.8


def phantom_loop():
    """Paint every 4th slice (1 = background, 2 = lesion), train in the panel, predict the other slices."""
    phantom = make_ct_phantom()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    image = set_or_add_layer(
        viewer, layer_data_tuple(phantom.image, "image", name="CT phantom", contrast_limits=(-300, 300))
    )
    lesions = np.asarray(phantom.lesions.array) > 0
    painted = np.zeros(lesions.shape, np.uint8)
    painted[::4] = np.where(lesions[::4], 2, 1)
    annotations = set_or_add_layer(
        viewer, layer_data_tuple(phantom.image.with_array(painted), "labels", name="annotations")
    )
    annotations.visible = False
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "U-Net segmenter")
    widget.train_image.value, widget.annotations.value = image, annotations
    widget.dims.value, widget.patch.value = "2", 64
    widget.iterations.value, widget.minutes.value = 100000, 3.0
    widget.start_training()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    widget.image.value = image
    widget.start_prediction()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    viewer.layers["CT phantom U-Net P(class 2)"].visible = False
    _show_class_2(viewer.layers["CT phantom U-Net labels"], (0.2, 0.9, 1.0, 1))
    viewer.dims.set_point(0, image.data_to_world((38, 0, 0))[0])  # a slice that was not painted
    settle(0.5)
    save(viewer, "unet-phantom.png")
    viewer.close()


def drive():
    """The DRIVE model of the benchmark on held-out image 33 (vessels in red over the photograph)."""
    from napari_medimg.io.raster import read_image

    if not (DRIVE.is_dir() and DRIVE_MODEL.is_dir()):
        print("DRIVE data or model missing: unet-drive.png not made")
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    photo = read_image(DRIVE / "images" / "33_training.tif")
    layer = viewer.add_image(np.asarray(photo.array), name="DRIVE 33", rgb=True, units=("mm", "mm"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "U-Net segmenter")
    widget.model_path.value = DRIVE_MODEL
    widget.load()
    widget.image.value = layer
    widget.start_prediction()
    wait_until(lambda: widget.worker is None)
    print(widget.status.value)
    viewer.layers["DRIVE 33 U-Net P(class 2)"].visible = False
    _show_class_2(viewer.layers["DRIVE 33 U-Net labels"], (1, 0.1, 0.1, 1))
    settle(0.5)
    save(viewer, "unet-drive.png")
    viewer.close()


if __name__ == "__main__":
    drive()
    phantom_loop()
