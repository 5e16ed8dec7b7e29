"""Batch dock: run a recipe over a small cohort (files and DICOM folders) and open any case's result.

The same engine as ``medimg batch`` (:func:`napari_medimg.pipeline.batch.run_batch`): a local dask cluster of
worker processes, atomic per-case folders, resume, failures recorded.  The run happens in a worker thread with
a progress bar and Cancel; *Open case* adds the case's scan and its ``labels.nii.gz`` as layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import Container, FileEdit, Label, PushButton, Select, SpinBox, TextEdit

from ...pipeline.batch import case_name, read_case, run_batch
from ...pipeline.recipe import RecipeError, load_recipe
from ..layers import layer_data_tuple, set_or_add_layer
from .recipe import start_dock_job

if TYPE_CHECKING:
    import napari

__all__ = ["BatchWidget"]


class BatchWidget(Container):
    """Recipe file + inputs (one path per line) + output folder + workers → run; open any case."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)
        self.viewer = napari_viewer
        self.worker = None
        self.summary: dict | None = None
        self.recipe = FileEdit(label="recipe", mode="r", filter="*.json *.yaml *.yml")
        self.add_files = FileEdit(label="add files", mode="rm", filter="*.nii *.nii.gz *")
        self.add_folder = FileEdit(label="add DICOM folder", mode="d")
        self.inputs = TextEdit(label="inputs (one per line)")
        self.clear_button = PushButton(text="Clear inputs")
        self.out = FileEdit(label="output folder", mode="d")
        self.workers = SpinBox(label="workers", min=1, max=64, value=2)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # long messages wrap instead of widening the dock
        self.cases = Select(label="cases", choices=self._case_choices, allow_multiple=False)
        self.open_button = PushButton(text="Open case")
        self.extend(
            [
                self.recipe,
                self.add_files,
                self.add_folder,
                self.inputs,
                self.clear_button,
                self.out,
                self.workers,
                self.run_button,
                self.cancel_button,
                self.status,
                self.cases,
                self.open_button,
            ]
        )
        self.add_files.changed.connect(lambda *_: self.add_inputs(self.add_files.value))
        self.add_folder.changed.connect(lambda *_: self.add_inputs([self.add_folder.value]))
        self.clear_button.changed.connect(self.clear_inputs)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.open_button.changed.connect(lambda *_: self.open_case(self.selected_case()))

    # ---- inputs -------------------------------------------------------------------------------------------
    def input_paths(self) -> list[Path]:
        """The inputs listed, one per line."""
        return [Path(line.strip()) for line in (self.inputs.value or "").splitlines() if line.strip()]

    def add_inputs(self, paths) -> None:
        """Append files or folders to the input list (duplicates ignored)."""
        current = self.input_paths()
        for path in paths or ():
            path = Path(path)
            if str(path) not in ("", ".") and path.exists() and path not in current:
                current.append(path)
        self.inputs.value = "\n".join(map(str, current))

    def clear_inputs(self, *_) -> None:
        """Empty the input list."""
        self.inputs.value = ""

    # ---- run ---------------------------------------------------------------------------------------------
    def run(self, *_):
        """Run the batch in a worker thread (progress bar, Cancel); the summary fills the case list."""
        if self.worker is not None:
            return None
        inputs = self.input_paths()
        out = Path(self.out.value) if str(self.out.value) not in ("", ".") else None
        try:
            recipe = load_recipe(self.recipe.value)
            if not inputs:
                raise ValueError("add at least one input")
            if out is None:
                raise ValueError("choose an output folder")
        except (RecipeError, ValueError, OSError) as error:
            self.status.value = f"error: {error}"
            return None
        workers = self.workers.value
        self.status.value = f"running {len(inputs)} case(s) on {workers} worker(s)…"

        def job(progress=None):
            return run_batch(
                recipe,
                inputs,
                out,
                workers=workers,
                progress=lambda done, total, _record: progress(done, total),
            )

        def done(summary):
            self.summary = summary
            self.cases.reset_choices()
            self.status.value = (
                f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed in "
                f"{summary['seconds']:.1f} s"
            )

        return start_dock_job(
            self, job, self.run_button, description=f"Batch of {len(inputs)} case(s)", on_done=done
        )

    def cancel(self, *_):
        """Stop the batch (cases already written stay; a rerun resumes)."""
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "cancelling…"

    # ---- results -----------------------------------------------------------------------------------------
    def _case_choices(self, _widget=None) -> list:
        """(text, case) per case of the last run (a callable: napari resets choices when layers change)."""
        if self.summary is None:
            return []
        return [
            (f"{r['case']}: {r['status']}" + (f" ({r['error']})" if r["error"] else ""), r["case"])
            for r in self.summary["results"]
        ]

    def selected_case(self) -> str | None:
        """The case chosen in the list, or None."""
        value = self.cases.value
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return value

    def open_case(self, case: str | None):
        """Add a case's scan and labels as layers (the labels only when the case is done)."""
        if case is None or self.summary is None:
            return []
        record = next((r for r in self.summary["results"] if r["case"] == case), None)
        if record is None:
            return []
        from ...io.nifti import read_nifti

        layers = [
            set_or_add_layer(self.viewer, layer_data_tuple(read_case(record["input"]), "image", name=case))
        ]
        labels = Path(self.summary["out"]) / case / "labels.nii.gz"
        if labels.is_file():
            layers.append(
                set_or_add_layer(
                    self.viewer, layer_data_tuple(read_nifti(labels), "labels", name=f"{case} labels")
                )
            )
        self.status.value = (
            f"opened {case_name(record['input'])}: {', '.join(layer.name for layer in layers)}"
        )
        return layers
