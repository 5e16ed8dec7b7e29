"""Screenshots for docs/preprocessing.md and docs/segmentation.md: Preprocess, Threshold (multi-Otsu), Region
growing, Morphology and islands, Fill between slices — each run for real on the CT phantom.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/segmentation.py``.
Writes docs/images/preprocess.png, threshold-multi-otsu.png, region-growing.png, morphology.png and
fill-between-slices.png (intermediate files go to demo-output/segmentation-screenshots/).
"""

from __future__ import annotations

import napari
import numpy as np
from _shots import ROOT, save, settle, wait_for_worker, wait_until

from napari_medimg.plugin.demo import segment_and_interpolate
from napari_medimg.plugin.home import HomeWidget, command_of
from napari_medimg.samples import make_ct_phantom

PLUGIN = "napari-medimg"


def lesion_index(name: str) -> np.ndarray:
    """Voxel indices (z, y, x) of a phantom lesion's centre, from its LPS world centre in the lesion table."""
    phantom = make_ct_phantom()
    row = phantom.lesion_table.set_index("name").loc[name]
    return phantom.image.world_to_index([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm])


def look_at(viewer, layer, index, zoom: float) -> None:
    """Show the axial slice through voxel ``index`` of ``layer``, centred on it and zoomed in."""
    world = layer.data_to_world(index)
    viewer.dims.set_point(0, world[0])
    settle(0.3)
    viewer.scene.camera.center = tuple(world[1:])
    viewer.scene.camera.zoom = zoom
    settle()


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample(PLUGIN, "ct_phantom")
    ct = viewer.layers["CT phantom"]
    viewer.layers["phantom lesions"].visible = False
    home = HomeWidget(viewer)
    viewer.window.add_dock_widget(home, name="napari-medimg", area="right")
    home.setMinimumWidth(540)

    def front(name: str):
        """Show a tool in the home panel."""
        return home.show_tool(command_of(name))

    enhancing = lesion_index("enhancing lesion")
    viewer.dims.set_point(0, ct.data_to_world(enhancing)[0])  # through the enhancing lesion

    preprocess = front("Preprocess")
    preprocess.image.value = ct
    preprocess.operation.value = "denoise"
    preprocess.set_params(method="median", size_mm=1.5)
    preprocess.preview.value = True
    wait_until(lambda: not preprocess.preview_busy)
    settle()
    save(viewer, "preprocess.png")
    preprocess.preview.value = False

    threshold = front("Threshold")
    threshold.image.value = ct
    threshold.method.value = "multi-otsu"
    threshold.classes.value = 4
    wait_until(lambda: not threshold.preview_busy)
    threshold.apply_to_volume()
    wait_for_worker(threshold)
    wait_until(lambda: not threshold.preview_busy)
    save(viewer, "threshold-multi-otsu.png")
    viewer.layers[threshold.result_name].visible = False
    threshold.preview.value = False

    widgets = {
        name: front(name)
        for name in ("Preprocess", "Region growing", "Morphology and islands", "Fill between slices")
    }
    out = ROOT / "demo-output" / "segmentation-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    segment_and_interpolate(viewer, widgets, out)
    painted = viewer.layers["painted every 4th row"]
    viewer.layers["seed"].visible = True
    front("Region growing")
    settle()
    look_at(viewer, ct, enhancing, zoom=12.0)
    save(viewer, "region-growing.png")

    edit = front("Morphology and islands")
    edit.operation.value = "margin"
    edit.margin_mm.value = 3.0
    edit.apply()
    wait_for_worker(edit)
    save(viewer, "morphology.png")

    painted.visible = True
    viewer.layers[edit.labels_layer.value.name].visible = False
    nodule = lesion_index("lung nodule right upper")
    front("Fill between slices")
    settle()
    look_at(viewer, ct, nodule, zoom=10.0)  # a lung nodule, painted on every 4th row only
    save(viewer, "fill-between-slices.png")
    viewer.close()


if __name__ == "__main__":
    main()
