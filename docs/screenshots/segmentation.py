"""Screenshots for docs/preprocessing.md and docs/segmentation.md: Preprocess, Threshold (multi-Otsu), Region
growing, Morphology and islands, Fill between slices — each run for real on the CT phantom.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/segmentation.py``.
Writes docs/images/preprocess.png, threshold-multi-otsu.png, region-growing.png, morphology.png and
fill-between-slices.png (intermediate files go to demo-output/segmentation-screenshots/).
"""

from __future__ import annotations

import napari
import numpy as np
from _shots import ROOT, save, settle, wait_for_worker

from napari_medimg.plugin.demo import segment_and_interpolate

PLUGIN = "napari-medimg"


def front(viewer, name: str):
    """Dock (or show) a widget and bring its tab to the front."""
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
    dock.show()
    dock.raise_()
    return widget


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample(PLUGIN, "ct_phantom")
    ct = viewer.layers["CT phantom"]
    viewer.layers["phantom lesions"].visible = False
    viewer.dims.set_point(0, ct.data_to_world((44, 0, 0))[0])  # through the enhancing lesion

    preprocess = front(viewer, "Preprocess")
    preprocess.image.value = ct
    preprocess.operation.value = "denoise"
    preprocess.set_params(method="median", size_mm=1.5)
    preprocess.preview.value = True
    settle()
    save(viewer, "preprocess.png")
    preprocess.preview.value = False

    threshold = front(viewer, "Threshold")
    threshold.image.value = ct
    threshold.method.value = "multi-otsu"
    threshold.classes.value = 4
    threshold.apply_to_volume()
    wait_for_worker(threshold)
    save(viewer, "threshold-multi-otsu.png")
    viewer.layers[threshold.result_name].visible = False
    threshold.preview.value = False

    widgets = {
        name: front(viewer, name)
        for name in ("Preprocess", "Region growing", "Morphology and islands", "Fill between slices")
    }
    out = ROOT / "demo-output" / "segmentation-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    segment_and_interpolate(viewer, widgets, out)
    painted = viewer.layers["painted every 4th row"]
    viewer.layers["seed"].visible = True
    centre = np.argwhere(np.asarray(viewer.layers["phantom lesions"].data) == 6).mean(axis=0)
    viewer.dims.set_point(0, ct.data_to_world(centre)[0])
    viewer.scene.camera.center = tuple(ct.data_to_world(centre)[1:])
    viewer.scene.camera.zoom = 4.0
    front(viewer, "Region growing")
    settle()
    save(viewer, "region-growing.png")

    edit = front(viewer, "Morphology and islands")
    edit.operation.value = "margin"
    edit.margin_mm.value = 3.0
    edit.apply()
    wait_for_worker(edit)
    save(viewer, "morphology.png")

    painted.visible = True
    viewer.layers[edit.labels_layer.value.name].visible = False
    nodule = np.argwhere(np.asarray(viewer.layers["phantom lesions"].data) == 1).mean(axis=0)
    viewer.dims.set_point(0, ct.data_to_world(nodule)[0])  # a lung nodule, painted on every 4th row only
    viewer.scene.camera.center = tuple(ct.data_to_world(nodule)[1:])
    viewer.scene.camera.zoom = 5.0
    front(viewer, "Fill between slices")
    settle()
    save(viewer, "fill-between-slices.png")
    viewer.close()


if __name__ == "__main__":
    main()
