"""Screenshots for docs/geometry.md: the real sagittal MR and the gantry-tilt CT in napari, DICOM browser docked.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/geometry.py``
(needs ../shared/data/dicom).  Writes docs/images/geometry-sagittal.png and docs/images/dicom-browser.png.
"""

from __future__ import annotations

import napari
from _shots import SHARED_DATA, close_notifications, save, settle, wait_for_worker

DICOM = SHARED_DATA / "dicom"


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open(str(DICOM / "siemens_xa30_t1w_sag_classic" / "dicom"), plugin="napari-medimg")
    viewer.dims.axis_labels = ("S", "P", "L")
    viewer.dims.order = (2, 0, 1)  # look at a sagittal plane: rows S, columns P
    viewer.dims.set_point(2, 0.0)
    viewer.scene.camera.orientation2d = (
        "up",
        "right",
    )  # S grows upwards: head at the top, anterior at the left
    viewer.reset_view()
    settle()
    close_notifications()
    save(viewer, "geometry-sagittal.png")
    viewer.layers.clear()
    viewer.dims.order = (0, 1, 2)
    viewer.scene.camera.orientation2d = ("down", "right")
    from napari_medimg.plugin.widgets.dicom_browser import DicomBrowserWidget

    widget = DicomBrowserWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DICOM browser", area="right")
    widget.native.setMinimumWidth(760)
    widget.folder.value = DICOM
    widget.scan_folder()
    wait_for_worker(widget, seconds_after=0.0)
    print(f"{len(widget.scan.series)} series in {DICOM}")
    names = list(widget.choice.choices)
    tilted = next(i for i, name in enumerate(names) if name.startswith("CT series 4"))
    widget.choice.value = [names[tilted]]
    table, listed = widget.table.native, widget.choice.native
    table.selectRow(tilted)  # its row and its list entry in view, as a user would pick it
    table.scrollToItem(table.item(tilted, 0), table.ScrollHint.PositionAtCenter)
    listed.scrollToItem(listed.item(tilted), listed.ScrollHint.PositionAtCenter)
    widget.open_selected()
    wait_for_worker(widget, seconds_after=0.0)
    viewer.reset_view()
    settle()
    close_notifications()
    save(viewer, "dicom-browser.png")
    viewer.close()


if __name__ == "__main__":
    main()
