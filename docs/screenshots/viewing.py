"""Screenshot for docs/viewing.md: the whole window with the Orthogonal views dock, on the real sagittal T1w MR.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/viewing.py``
(needs ../shared/data/dicom).  Writes docs/images/viewing-orthogonal.png (the sagittal T1w series) and
docs/images/viewing-gantry-tilt.png (the 14° gantry-tilt CT, resampled onto the patient axes).
"""

from __future__ import annotations

import napari
import numpy as np
from _shots import SHARED_DATA, save, settle

from napari_medimg.geometry import lps_to_world
from napari_medimg.plugin.layers import layer_to_volume
from napari_medimg.plugin.views.orthogonal import OrthogonalViewsWidget
from napari_medimg.plugin.views.readout import readout, readout_text

DICOM = SHARED_DATA / "dicom"


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    (layer,) = viewer.open(str(DICOM / "siemens_xa30_t1w_sag_classic" / "dicom"), plugin="napari-medimg")
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views", area="right")
    widget.setMinimumWidth(520)
    widget.crosshair_box.setChecked(True)
    volume = layer_to_volume(layer)
    centre = volume.index_to_world((np.asarray(volume.shape) - 1) / 2 + (0, 8, 4))
    widget.move_to(lps_to_world(centre))
    widget.apply_preset("auto (0.5–99.5 percentiles)")
    viewer.layers.selection.active = layer
    info_world = lps_to_world(centre)
    widget.readout_label.setText(readout_text(readout(viewer, info_world)))
    viewer.reset_view()
    for view in widget.views:
        view.model.reset_view()
    settle(2.0)
    save(viewer, "viewing-orthogonal.png")
    viewer.layers.clear()
    (ct,) = viewer.open(str(DICOM / "siemens_ct_gantry_tilt"), plugin="napari-medimg")
    viewer.layers.selection.active = ct
    widget._on_active()
    widget.apply_preset("lung")
    volume = layer_to_volume(ct)
    centre = lps_to_world(volume.index_to_world((np.asarray(volume.shape) - 1) / 2 + (0, 60, 0)))
    widget.move_to(centre)
    widget.crosshair_box.setChecked(False)
    widget.crosshair_box.setChecked(True)
    widget.readout_label.setText(readout_text(readout(viewer, centre)))
    viewer.reset_view()
    for view in widget.views:
        view.model.reset_view()
    settle(2.0)
    save(viewer, "viewing-gantry-tilt.png")
    viewer.close()


if __name__ == "__main__":
    main()
