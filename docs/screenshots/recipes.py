"""Screenshots for docs/recipes.md: a session (Threshold, Morphology and islands) in the Recipe dock, its replay
on a second phantom, and the Batch dock after a small cohort — each run for real.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/recipes.py``.
Writes docs/images/recipe-dock.png and batch-dock.png (intermediate files go to demo-output/recipes/).
"""

from __future__ import annotations

import shutil

import napari
from _shots import ROOT, save, settle, wait_for_worker

from napari_medimg.io.nifti import write_nifti
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.samples import make_ct_phantom

PLUGIN = "napari-medimg"


def front(viewer, name: str):
    from qtpy.QtCore import Qt

    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
    dock.show()
    dock.raise_()
    dock.setMaximumWidth(640)  # leave the canvas most of the window
    viewer.window._qt_window.resizeDocks([dock], [640], Qt.Orientation.Horizontal)
    return widget


def main() -> None:
    out = ROOT / "demo-output" / "recipes"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample(PLUGIN, "ct_phantom")
    ct = viewer.layers["CT phantom"]
    viewer.layers["phantom lesions"].visible = False
    viewer.dims.set_point(0, ct.data_to_world((44, 0, 0))[0])

    threshold = front(viewer, "Threshold")
    threshold.image.value = ct
    threshold.method.value = "manual"
    threshold.low.value, threshold.high.value = 20.0, 400.0
    threshold.preview.value = False
    threshold.apply_to_volume()
    wait_for_worker(threshold)
    mask = viewer.layers[threshold.result_name]
    edit = front(viewer, "Morphology and islands")
    edit.labels_layer.value = mask
    for operation, values in (
        ("remove small islands", {"min_size_mm3": 500.0}),
        ("open", {"radius_mm": 1.5}),
    ):
        edit.operation.value = operation
        for name, value in values.items():
            getattr(edit, name).value = value
        edit.apply()
        wait_for_worker(edit)
    edit.operation.value = "connected components"
    edit.apply()
    wait_for_worker(edit)

    # replay the recorded recipe on a second scan
    other = make_ct_phantom(seed=3)
    second = set_or_add_layer(viewer, layer_data_tuple(other.image, "image", name="second CT"))
    second.visible = False
    recipe = front(viewer, "Recipe")
    recipe.save(out / "session.json")
    recipe.image.value = second
    recipe.replay()
    wait_for_worker(recipe)
    for layer in viewer.layers:
        layer.visible = layer.name in ("second CT",) or layer.name.endswith("connected_components")
    second.visible = True
    recipe.select(1)
    from qtpy.QtWidgets import QScrollArea

    for area in recipe.native.findChildren(QScrollArea):
        area.verticalScrollBar().setValue(0)
    viewer.reset_view()
    settle()
    save(viewer, "recipe-dock.png")

    # the batch dock on three phantoms
    paths = []
    for seed in range(3):
        path = out / f"phantom{seed}.nii.gz"
        write_nifti(make_ct_phantom(shape=(32, 128, 128), spacing=(5.0, 1.4, 1.4), seed=seed).image, path)
        paths.append(path)
    batch = front(viewer, "Batch")
    batch.recipe.value = out / "session.json"
    batch.add_inputs(paths)
    batch.out.value = out / "results"
    batch.workers.value = 2
    batch.run()
    wait_for_worker(batch)
    batch.cases.value = "phantom1"
    for layer in list(viewer.layers):
        layer.visible = False
    batch.open_case("phantom1")
    viewer.reset_view()
    settle(1.5)
    save(viewer, "batch-dock.png")
    viewer.close()


if __name__ == "__main__":
    main()
