"""Screenshot for docs/features.md: the Measure objects widget in IBSI mode and its table of IBSI tags.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/features_ibsi.py``.
Writes docs/images/features-ibsi-widget.png (the settings) and docs/images/features-ibsi.png (the table, scrolled
to the IBSI columns; the lesion names and other columns the sample already had are kept by the merge).
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
    widget.mode.value = "IBSI"
    widget.by_slice.value = False
    widget.reseg.value = True
    widget.reseg_low.value, widget.reseg_high.value = -500.0, 400.0
    widget.bin_width.value = 25.0
    settle()
    save(viewer, "features-ibsi-widget.png")
    widget.measure()
    wait_for_worker(widget, seconds_after=0.0)
    table = widget.tables["phantom lesions"]
    table.select_row(table.row_of_label(3))
    column = list(table.frame.columns).index("morph_volume")
    table.table.scrollTo(table.proxy.index(0, column + 6))
    table.table.scrollTo(table.proxy.index(0, column))
    settle()
    save(viewer, "features-ibsi.png")
    viewer.close()


if __name__ == "__main__":
    main()
