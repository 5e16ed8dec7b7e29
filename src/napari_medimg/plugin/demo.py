"""The demo session behind ``make demo`` / ``medimg demo``.

Interactive: napari opens with the CT phantom, its ground truth and the plugin's home panel docked, the
demo's tools opened in it (one shown at a time, picked by its button).
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
from .home import HomeWidget, command_of
from .layers import layer_to_volume

__all__ = ["run_demo", "DEMO_STEPS", "WIDGETS"]

PLUGIN = "napari-medimg"
#: key of the home panel in the demo's widgets
HOME = "home"
#: tools the demo opens in the home panel, by display name (the first is shown in front)
WIDGETS = [
    "Threshold",
    "Measure objects",
    "DICOM browser",
    "CNN classifier",
    "Preprocess",
    "Region growing",
    "Morphology and islands",
    "Fill between slices",
]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo step did not finish in time")
        QApplication.processEvents()
        time.sleep(0.01)


def _result_layer(viewer: napari.Viewer, widget, name: str):
    """The layer ``name`` a widget's finished job added, or an error naming what the widget reported."""
    _wait_for(lambda: widget.worker is None)
    _wait_for(lambda: name in viewer.layers or widget.status.value.startswith("error"), timeout_s=30.0)
    if name not in viewer.layers:
        raise RuntimeError(f"the demo's {name!r} step did not finish: {widget.status.value}")
    return viewer.layers[name]


def threshold_bone(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Threshold bone (300–3000 HU) in a worker and save the mask as NIfTI with the phantom's geometry."""
    widget = widgets["Threshold"]
    widget.image.value = viewer.layers["CT phantom"]
    widget.method.value = "manual"
    widget.low.value, widget.high.value = 300.0, 3000.0
    widget.apply_to_volume()
    layer = _result_layer(viewer, widget, widget.result_name)
    path = write_nifti(layer_to_volume(layer), out / "threshold_bone.nii.gz", overwrite=True)
    volume_ml = float(np.count_nonzero(layer.data)) * float(np.prod(layer.scale)) / 1000.0
    summary = {
        "layer": layer.name,
        "low_hu": 300.0,
        "high_hu": 3000.0,
        "volume_ml": round(volume_ml, 3),
        "status": widget.status.value,
    }
    summary_path = out / "threshold_bone.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return [path, summary_path]


def measure_lesions(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Measure the phantom lesions on the CT (all feature groups), open the table, select a lesion, save CSV."""
    widget = widgets["Measure objects"]
    widget.labels.value = viewer.layers["phantom lesions"]
    widget.images.value = [viewer.layers["CT phantom"]]
    widget.measure()
    _wait_for(lambda: widget.worker is None)
    table = widget.tables["phantom lesions"]
    table.select_row(table.row_of_label(1))
    return [table.export_csv(out / "lesion_features.csv", overwrite=True)]


def dicom_round_trip(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Export the phantom as a DICOM series, scan it in the DICOM browser, open it, save its geometry summary."""
    from ..io.dicom_write import write_dicom_series

    folder = out / "phantom_dicom"
    phantom = layer_to_volume(viewer.layers["CT phantom"])
    write_dicom_series(phantom, folder, series_description="CT phantom (DICOM)", overwrite=True)
    widget = widgets["DICOM browser"]
    widget.folder.value = folder
    widget.scan_folder()
    _wait_for(lambda: widget.worker is None)
    widget.open_selected()
    _wait_for(lambda: widget.worker is None)
    layer = viewer.layers["CT phantom (DICOM)"]
    layer.visible = False
    summary_path = out / "phantom_dicom.json"
    summary_path.write_text(json.dumps(layer.metadata["napari_medimg"], indent=2))
    return [folder, summary_path]


def classify_lesions(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Train a small 2D CNN on lesion/normal phantom patches (under a minute) and classify each phantom lesion."""
    from ..learn.cnn.examples import make_patch_folder
    from ..learn.cnn.files import save_model

    widget = widgets["CNN classifier"]
    widget.source.value = "folder + labels CSV"
    widget.data_path.value = make_patch_folder(out / "cnn-patches", overwrite=True)
    widget.size.value, widget.net_width.value, widget.depths.value = "32 32", 16, "1 1 1"
    widget.epochs.value, widget.minutes.value = 30, 1.0
    widget.start_training()
    _wait_for(lambda: widget.worker is None)
    model_dir = save_model(widget.result.model, widget.result.meta(), out / "cnn-model", overwrite=True)
    widget.image.value = viewer.layers["CT phantom"]
    widget.objects.value = viewer.layers["phantom lesions"]
    widget.start_prediction()
    _wait_for(lambda: widget.worker is None)
    classes = viewer.layers[widget.result_names["classes"]]
    table = out / "cnn_lesion_predictions.csv"
    classes.features.to_csv(table, index=False)
    return [model_dir / "model.safetensors", model_dir / "config.json", table]


def segment_and_interpolate(viewer: napari.Viewer, widgets: dict, out: Path) -> list[Path]:
    """Denoise, grow the enhancing lesion from a seed point, fill its holes; paint every 4th row of the lesions
    and fill between slices; save both as NIfTI with their Dice and the recorded steps as JSON."""
    from ..measure.metrics import dice
    from ..pipeline.steps import session_log

    ct, truth = viewer.layers["CT phantom"], viewer.layers["phantom lesions"]
    preprocess, grow = widgets["Preprocess"], widgets["Region growing"]
    preprocess.image.value, preprocess.operation.value = ct, "denoise"
    preprocess.set_params(method="gaussian", size_mm=0.7)
    preprocess.apply()
    _wait_for(lambda: preprocess.worker is None)
    denoised = viewer.layers[preprocess.result_name]
    denoised.visible = False
    centre = np.argwhere(np.asarray(truth.data) == 6).mean(axis=0)  # the enhancing lesion (label 6)
    # the seed layer shares the CT's scale/translate, so napari's slider keeps the CT's 2.5 mm steps
    seeds = viewer.add_points(
        [centre],
        name="seed",
        size=4,
        face_color="yellow",
        scale=ct.scale,
        translate=ct.translate,
        units=ct.units,
    )
    grow.image.value, grow.points.value, grow.method.value = denoised, seeds, "connected threshold"
    grow.auto_range.value, grow.value.value = False, 6
    grow.low.value, grow.high.value = 100.0, 400.0
    grow.apply()
    _wait_for(lambda: grow.worker is None)
    region = viewer.layers[grow.result_name]
    edit = widgets["Morphology and islands"]
    edit.labels_layer.value, edit.value.value, edit.operation.value = region, 6, "fill holes (3D)"
    edit.apply()
    _wait_for(lambda: edit.worker is None)
    painted = np.zeros_like(truth.data)
    painted[:, ::4] = np.asarray(truth.data)[:, ::4]
    painted_layer = viewer.add_labels(
        painted,
        name="painted every 4th row",
        scale=truth.scale,
        units=truth.units,
        translate=truth.translate,
        metadata=dict(truth.metadata),
        opacity=0.6,
    )
    fill = widgets["Fill between slices"]
    fill.labels_layer.value, fill.axis.value = painted_layer, "1 (rows, y)"
    fill.apply()
    _wait_for(lambda: fill.worker is None)
    reference = np.asarray(truth.data)
    summary = {
        "grown_lesion_dice": dice(region.data == 6, reference == 6),
        "fill_between_slices_dice": {
            str(v): dice(painted_layer.data == v, reference == v) for v in range(1, 7)
        },
    }
    paths = [
        write_nifti(layer_to_volume(region), out / "grown_lesion.nii.gz", overwrite=True),
        write_nifti(layer_to_volume(painted_layer), out / "filled_between_slices.nii.gz", overwrite=True),
    ]
    (out / "segmentation_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "segmentation_steps.json").write_text(session_log().to_json())
    painted_layer.visible = seeds.visible = False  # keep the final screenshot about the CT and its lesions
    return [*paths, out / "segmentation_summary.json", out / "segmentation_steps.json"]


DEMO_STEPS: list[Callable[[napari.Viewer, dict, Path], list[Path]]] = [
    threshold_bone,
    measure_lesions,
    dicom_round_trip,
    classify_lesions,
    segment_and_interpolate,
]


def open_session(viewer: napari.Viewer) -> dict:
    """Load the phantom, dock the home panel and open the demo's tools in it; return the tools by name."""
    viewer.open_sample(PLUGIN, "ct_phantom")
    viewer.scale_bar.visible = True
    home = HomeWidget(viewer)
    viewer.window.add_dock_widget(home, name="napari-medimg", area="right")
    widgets = {name: home.show_tool(command_of(name)) for name in WIDGETS}
    widgets[HOME] = home
    home.show_tool(command_of(WIDGETS[0]))
    viewer.dims.set_point(0, viewer.layers["CT phantom"].data_to_world((24, 0, 0))[0])  # a lung nodule
    return widgets


def run_demo(out: Path | None = None) -> list[Path]:
    """Run the demo interactively (``out`` None) or scripted into ``out``; return the paths written."""
    if out is not None:
        from ..io.atomic import check_folder_replaceable

        check_folder_replaceable(out, True)  # refuse a folder of other files before opening napari
    viewer = napari.Viewer(title="napari-medimg demo", show=True)
    widgets = open_session(viewer)
    if out is None:
        napari.run()
        return []
    from ..io.atomic import atomic_directory

    out = Path(out)
    viewer.window._qt_window.resize(1600, 1000)
    written = []
    # the results are one unit: written into a private temporary folder and swapped in complete; an existing
    # DIR is replaced only when it is an earlier demo's output (napari-medimg's marker file), never other files
    with atomic_directory(out, overwrite=True, kind="demo results") as folder:
        for step in DEMO_STEPS:
            written += step(viewer, widgets, folder)
        widgets[HOME].show_tool(command_of("Measure objects"))  # the panel shows the lesions' measurement
        widgets[HOME].parentWidget().raise_()  # its dock in front of the feature table tabified with it
        viewer.layers.selection.active = viewer.layers["CT phantom"]
        viewer.reset_view()
        _wait_for(lambda: True)
        screenshot = folder / "napari-medimg-demo.png"
        viewer.screenshot(str(screenshot), canvas_only=False)
        written.append(screenshot)
        viewer.close()
    return [out / Path(path).relative_to(folder) for path in written]
