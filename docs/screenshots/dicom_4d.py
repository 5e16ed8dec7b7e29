"""Screenshot for docs/dicom.md: the Siemens H>>F mosaic fMRI (6 volumes x 36 slices) as one 4D layer.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/dicom_4d.py``
(needs ../shared/data/dicom).  Writes docs/images/dicom-4d-mosaic.png: volume 4, slice 18, with the volume
slider below the canvas.
"""

from __future__ import annotations

import napari
from _shots import SHARED_DATA, save, settle


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    (layer,) = viewer.open(
        str(SHARED_DATA / "dicom" / "siemens_mosaic_fmri_hf_oblique" / "dicom"), plugin="napari-medimg"
    )
    viewer.dims.set_point(0, 4)  # volume 4
    viewer.dims.set_point(1, viewer.dims.range[1].start + 18 * viewer.dims.range[1].step)
    viewer.reset_view()
    settle(2.0)
    print(layer.name, layer.data.shape, type(layer.data).__name__)
    save(viewer, "dicom-4d-mosaic.png")
    viewer.close()


if __name__ == "__main__":
    main()
