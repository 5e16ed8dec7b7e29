"""The demo session behind ``make demo`` / ``medimg demo``.

Interactive: napari opens with the CT phantom, its ground truth and the plugin's widgets docked.
Scripted (``out`` given): the same session runs each widget's work for real, waits for the workers, writes
every result and a full-window screenshot into ``out`` and closes.  Later capabilities add a step to
``DEMO_STEPS``; each step gets the viewer, the dock widgets by name and the output folder and returns the
paths it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from ..io.nifti import write_nifti
from .layers import layer_to_volume

__all__ = ["run_demo", "DEMO_STEPS", "WIDGETS"]

PLUGIN = "napari-medimg"
#: dock widgets the demo opens, by display name (the first is shown in front)
WIDGETS = ["Threshold"]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo step did not finish in time")
        QApplication.processEvents()
        time.sleep(0.01)


def threshold_bone(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Threshold bone (300–3000 HU) in a worker and save the mask as NIfTI with the phantom's geometry."""
    widget = widgets["Threshold"]
    widget.image.value = viewer.layers["CT phantom"]
    widget.method.value = "manual"
    widget.low.value, widget.high.value = 300.0, 3000.0
    widget.apply_to_volume()
    _wait_for(lambda: widget.worker is None)
    layer = viewer.layers[widget.result_name]
    path = write_nifti(layer_to_volume(layer), out / "threshold_bone.nii.gz", overwrite=True)
    volume_ml = float(np.count_nonzero(layer.data)) * float(np.prod(layer.scale)) / 1000.0
    summary = {"layer": layer.name, "low_hu": 300.0, "high_hu": 3000.0, "volume_ml": round(volume_ml, 3),
               "status": widget.status.value}
    summary_path = out / "threshold_bone.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return [path, summary_path]


DEMO_STEPS: list[Callable[[napari.Viewer, dict, Path], list[Path]]] = [threshold_bone]


def open_session(viewer: napari.Viewer) -> dict:
    """Load the phantom and dock the plugin's widgets; return the widgets by name."""
    viewer.open_sample(PLUGIN, "ct_phantom")
    viewer.scale_bar.visible = True
    widgets = {}
    for name in WIDGETS:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
        widgets[name] = widget
    viewer.dims.set_point(0, viewer.layers["CT phantom"].data_to_world((24, 0, 0))[0])  # a lung nodule
    return widgets


def run_demo(out: Path | None = None) -> list[Path]:
    """Run the demo interactively (``out`` None) or scripted into ``out``; return the paths written."""
    viewer = napari.Viewer(title="napari-medimg demo", show=True)
    widgets = open_session(viewer)
    if out is None:
        napari.run()
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.resize(1600, 1000)
    written = []
    for step in DEMO_STEPS:
        written += step(viewer, widgets, out)
    viewer.layers.selection.active = viewer.layers["CT phantom"]
    _wait_for(lambda: True)
    screenshot = out / "napari-medimg-demo.png"
    viewer.screenshot(str(screenshot), canvas_only=False)
    written.append(screenshot)
    viewer.close()
    return written
