"""Screenshots for docs/geometry.md: the real sagittal MR and the gantry-tilt CT in napari, DICOM browser docked.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/geometry.py``
(needs ../shared/data/dicom).  Writes docs/images/geometry-sagittal.png and docs/images/dicom-browser.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]
DICOM = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "dicom"
IMAGES = ROOT / "docs" / "images"


def settle(seconds: float = 1.0) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def save(viewer, name: str) -> None:
    path = IMAGES / name
    viewer.screenshot(str(path), canvas_only=False)
    with Image.open(path) as picture:  # keep the PNGs small
        picture.convert("RGB").resize((picture.width * 3 // 4, picture.height * 3 // 4)).quantize(128).save(path)
    print(path)


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open(str(DICOM / "siemens_xa30_t1w_sag_classic" / "dicom"), plugin="napari-medimg")
    viewer.dims.axis_labels = ("S", "P", "L")
    viewer.dims.order = (2, 0, 1)  # look at a sagittal plane: rows S, columns P
    viewer.dims.set_point(2, 0.0)
    viewer.scene.camera.orientation2d = ("up", "right")  # S grows upwards: head at the top, anterior at the left
    viewer.reset_view()
    settle()
    save(viewer, "geometry-sagittal.png")
    viewer.layers.clear()
    viewer.dims.order = (0, 1, 2)
    viewer.scene.camera.orientation2d = ("down", "right")
    from napari_medimg.plugin.widgets.dicom_browser import DicomBrowserWidget

    widget = DicomBrowserWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DICOM browser", area="right")
    widget.native.setMinimumWidth(640)
    widget.folder.value = DICOM
    widget.scan_folder()
    while widget.worker is not None:
        settle(0.2)
    widget.choice.value = [name for name in widget.choice.choices if name.startswith("CT series 4")]
    widget.open_selected()
    while widget.worker is not None:
        settle(0.2)
    viewer.reset_view()
    settle()
    save(viewer, "dicom-browser.png")
    viewer.close()


if __name__ == "__main__":
    main()
