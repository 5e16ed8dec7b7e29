"""Screenshots for docs/features.md: the Measure objects widget, its table dock linked to the lesions, a
parametric map and the feature plot.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/features.py``.
Writes docs/images/features-table.png and docs/images/features-map-plot.png.
"""

from __future__ import annotations

import napari
from _shots import save, settle, wait_for_worker


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-medimg", "ct_phantom")
    viewer.layers["phantom tissues"].visible = False
    _, widget = viewer.window.add_plugin_dock_widget("napari-medimg", "Measure objects")
    widget.labels.value = viewer.layers["phantom lesions"]
    widget.images.value = [viewer.layers["CT phantom"]]
    widget.measure()
    wait_for_worker(widget, seconds_after=0.0)
    table = widget.tables["phantom lesions"]
    table.select_row(table.row_of_label(3))
    settle()
    save(viewer, "features-table.png")

    table.add_parametric_map("firstorder_Mean")
    plot = table.open_plot()
    plot.x.setCurrentText("shape_MeshVolume")
    plot.y.setCurrentText("firstorder_Mean")
    viewer.layers.selection.active = viewer.layers["phantom lesions"]
    settle()
    save(viewer, "features-map-plot.png")
    viewer.close()


if __name__ == "__main__":
    main()
