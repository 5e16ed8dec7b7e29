"""Screenshot for docs/geometry.md: a denoised real MR series exported as a de-identified DICOM series.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/dicom_export.py``
(needs ../shared/data/dicom).  Writes docs/images/dicom-export.png; the export goes to a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import napari
from _shots import SHARED_DATA, close_notifications, save, settle, wait_for_worker

from napari_medimg.plugin.layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.widgets.dicom_export import DicomExportWidget
from napari_medimg.processing.preprocess import denoise

DICOM = SHARED_DATA / "dicom"


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    (source,) = viewer.open(str(DICOM / "siemens_xa30_t1w_sag_classic" / "dicom"), plugin="napari-medimg")
    smooth = denoise(layer_to_volume(source), method="gaussian", sigma_mm=1.5)
    layer = set_or_add_layer(
        viewer, layer_data_tuple(smooth, "image", name=f"{source.name} gaussian", colormap="gray")
    )
    source.visible = False
    viewer.dims.set_point(0, float(layer.data_to_world((64, 0, 0))[0]))
    widget = DicomExportWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Export image as DICOM series", area="right")
    dock.setMinimumWidth(620)
    widget.status.native.setWordWrap(True)  # the status names the whole output path
    with tempfile.TemporaryDirectory(prefix="medimg-") as folder:
        widget.image.value = layer
        widget.parent_folder.value = Path(folder) / "exports"
        widget.series_description.value = "T1w sagittal, Gaussian 1.5 mm"  # kept although de-identified
        widget.export()
        wait_for_worker(widget, seconds_after=0.0)
        viewer.reset_view()
        settle()
        close_notifications()
        save(viewer, "dicom-export.png")
    viewer.close()


if __name__ == "__main__":
    main()
