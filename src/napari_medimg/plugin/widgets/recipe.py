"""Recipe dock: the session's recorded steps as a recipe to edit, save, load and replay on a layer.

While *follow the session* is on, the list mirrors the steps the tools recorded (every Apply appends one);
deleting, moving or editing a step, or loading a file, turns it off so hand edits are kept.  *Replay* runs
the recipe on the chosen image layer in a worker (progress bar, Cancel) and adds each step's image, mask or
labels as a layer; a table goes to the last labels layer's ``features``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, Container, FileEdit, Label, PushButton, Select, TextEdit, create_widget

from ...pipeline.recipe import Recipe, RecipeError, load_recipe, recipe_from_steps, run_recipe, save_recipe
from ...pipeline.steps import session_log
from ..layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from ..workers import start_job

if TYPE_CHECKING:
    import napari

__all__ = ["RecipeWidget", "start_dock_job"]

#: how often the dock looks for newly recorded steps while following the session (ms)
POLL_MS = 500


class RecipeWidget(Container):
    """List, edit, save, load and replay a recipe; follows the session's recorded steps by default."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)
        self.viewer = napari_viewer
        self.recipe = Recipe()
        self.worker = None
        self._seen = -1
        self.follow = CheckBox(text="follow the session (every tool run adds its step)", value=True)
        # choices from a callable: napari resets every dock's choices when layers change
        self.steps = Select(label="steps", choices=self._step_choices, allow_multiple=False)
        self.up_button = PushButton(text="Move up")
        self.down_button = PushButton(text="Move down")
        self.delete_button = PushButton(text="Delete step")
        self.params = TextEdit(label="parameters (JSON)")
        self.edit_button = PushButton(text="Apply parameters")
        self.path = FileEdit(label="recipe file", mode="w", filter="*.json *.yaml *.yml")
        self.save_button = PushButton(text="Save")
        self.load_button = PushButton(text="Load")
        self.image = create_widget(annotation="napari.layers.Image", label="replay on")
        self.replay_button = PushButton(text="Replay on layer")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # long messages wrap instead of widening the dock
        self.extend(
            [
                self.follow,
                self.steps,
                Container(
                    widgets=[self.up_button, self.down_button, self.delete_button], layout="horizontal"
                ),
                self.params,
                self.edit_button,
                self.path,
                Container(widgets=[self.save_button, self.load_button], layout="horizontal"),
                self.image,
                self.replay_button,
                self.cancel_button,
                self.status,
            ]
        )
        self.steps.changed.connect(self._show_params)
        self.up_button.changed.connect(lambda *_: self.move(-1))
        self.down_button.changed.connect(lambda *_: self.move(1))
        self.delete_button.changed.connect(self.delete)
        self.edit_button.changed.connect(self.apply_params)
        self.save_button.changed.connect(lambda *_: self.save(self.path.value))
        self.load_button.changed.connect(lambda *_: self.load(self.path.value))
        self.replay_button.changed.connect(self.replay)
        self.cancel_button.changed.connect(self.cancel)
        self.follow.changed.connect(self.refresh_from_session)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.image.reset_choices)
        self.image.reset_choices()
        from qtpy.QtCore import QTimer

        self._timer = QTimer(self.native)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()
        self.refresh_from_session()

    # ---- the list ---------------------------------------------------------------------------------------
    def _poll(self):
        if self.follow.value and len(session_log()) != self._seen:
            self.refresh_from_session()

    def refresh_from_session(self, *_):
        """Rebuild the recipe from the session's recorded steps (when following the session)."""
        if not self.follow.value:
            return
        log = session_log()
        self._seen = len(log)
        try:
            self.recipe = recipe_from_steps(log.steps, name="session") if len(log) else Recipe()
        except RecipeError as error:
            self.status.value = f"error: {error}"
            return
        note = f" (not replayable, left out: {', '.join(self.recipe.skipped)})" if self.recipe.skipped else ""
        self.status.value = f"{len(self.recipe.steps)} step(s) from the session{note}"
        self._refresh_list()

    def _step_choices(self, _widget=None) -> list:
        choices = []
        for index, step in enumerate(self.recipe.steps):
            inputs = f" ← {', '.join(f'{k}: {v}' for k, v in step.inputs.items())}" if step.inputs else ""
            choices.append((f"{self.recipe.step_id(index)}  {step.op}{inputs}", index))
        return choices

    def _refresh_list(self, select: int | None = None):
        self.steps.reset_choices()
        if select is not None and 0 <= select < len(self.recipe.steps):
            self.steps.value = select
        self._show_params()

    def selected_index(self) -> int | None:
        """The selected step's index, or None."""
        value = self.steps.value
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return value

    def _show_params(self, *_):
        index = self.selected_index()
        self.params.value = "" if index is None else json.dumps(self.recipe.steps[index].params, indent=1)

    def _hand_edit(self):
        with self.follow.changed.blocked():
            self.follow.value = False

    def select(self, index: int) -> None:
        """Select step ``index`` (0-based)."""
        self.steps.value = index

    def move(self, delta: int) -> None:
        """Move the selected step up (``-1``) or down (``+1``)."""
        index = self.selected_index()
        if index is None or not 0 <= index + delta < len(self.recipe.steps):
            return
        self._hand_edit()
        self.recipe.move(index, index + delta)
        self._refresh_list(index + delta)
        self._report_validity()

    def delete(self, *_) -> None:
        """Delete the selected step."""
        index = self.selected_index()
        if index is None:
            return
        self._hand_edit()
        removed = self.recipe.remove(index)
        self._refresh_list(min(index, len(self.recipe.steps) - 1))
        self.status.value = f"deleted {removed.op}"
        self._report_validity()

    def apply_params(self, *_) -> None:
        """Replace the selected step's parameters by the JSON in the editor (validated)."""
        index = self.selected_index()
        if index is None:
            return
        try:
            params = json.loads(self.params.value or "{}")
            if not isinstance(params, dict):
                raise RecipeError("parameters are a JSON object")
            self.recipe.set_params(index, params)
        except (ValueError, RecipeError) as error:
            self.status.value = f"error: {error}"
            return
        self._hand_edit()
        self.status.value = f"{self.recipe.step_id(index)} parameters updated"
        self._refresh_list(index)

    def _report_validity(self) -> bool:
        if not self.recipe.steps:
            return False
        try:
            self.recipe.validate()
        except RecipeError as error:
            self.status.value = f"error: {error}"
            return False
        return True

    # ---- files --------------------------------------------------------------------------------------------
    def save(self, path) -> Path | None:
        """Save the recipe (JSON, or YAML by extension); replaces an existing file the user picked."""
        if not path or Path(path).is_dir():
            self.status.value = "choose a recipe file name"
            return None
        try:
            written = save_recipe(self.recipe, path, overwrite=True)
        except (RecipeError, OSError) as error:
            self.status.value = f"error: {error}"
            return None
        self.status.value = (
            f"saved {len(self.recipe.steps)} step(s) to {written} (hash {self.recipe.hash[:12]})"
        )
        return written

    def load(self, path) -> Recipe | None:
        """Load a recipe file into the dock (stops following the session)."""
        try:
            recipe = load_recipe(path)
        except (RecipeError, OSError) as error:
            self.status.value = f"error: {error}"
            return None
        self._hand_edit()
        self.recipe = recipe
        self._refresh_list(0)
        self.status.value = f"loaded {len(recipe.steps)} step(s) from {path}"
        return recipe

    # ---- replay -------------------------------------------------------------------------------------------
    def replay(self, *_):
        """Run the recipe on the chosen image layer in a worker; results are added as layers."""
        layer = self.image.value
        if layer is None or self.worker is not None:
            if layer is None:
                self.status.value = "choose an image layer to replay on"
            return None
        if not self._report_validity():
            return None
        recipe = Recipe.from_dict(self.recipe.to_dict())
        volume = layer_to_volume(layer)
        self.status.value = f"replaying {len(recipe.steps)} step(s) on {layer.name}…"

        def job(progress=None):
            return run_recipe(recipe, volume, progress=progress)

        return start_dock_job(
            self,
            job,
            self.replay_button,
            description=f"Recipe on {layer.name}",
            on_done=lambda result: self._show_results(result, layer.name),
        )

    def _show_results(self, result, source: str):
        last_labels = None
        added = []
        for index, (step_id, output) in enumerate(result.outputs.items()):
            kind = result.kinds[step_id]
            op = self.recipe.steps[index].op if index < len(self.recipe.steps) else step_id
            if kind in ("image", "mask", "labels"):
                layer_type = "image" if kind == "image" else "labels"
                name = f"{source} recipe {step_id} {op}"
                last_labels = set_or_add_layer(self.viewer, layer_data_tuple(output, layer_type, name=name))
                if layer_type == "image":
                    last_labels = None
                added.append(name)
            elif kind == "table" and last_labels is not None and "label" in getattr(output, "columns", []):
                table = output.copy()
                table.insert(0, "index", table["label"])
                last_labels.features = table
        warnings = f"; {len(result.warnings)} warning(s)" if result.warnings else ""
        self.status.value = f"replayed: {', '.join(added) or 'no layers'}{warnings}"

    def cancel(self, *_):
        """Stop the running replay."""
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "cancelled"


def start_dock_job(dock, job, run_button, *, description: str, on_done):
    """Run ``job(progress=...)`` in a worker for a dock with ``status``, ``cancel_button`` and ``worker``.

    Parameters
    ----------
    dock : Container
        The dock; its ``worker`` attribute holds the job while it runs.
    job : callable
        ``job(progress=None)``, run in the worker thread.
    run_button : PushButton
        Disabled while the job runs (Cancel is enabled).
    description : str
        The progress bar's text.
    on_done : callable
        Called with the result on the main thread.

    Returns
    -------
    FunctionWorker
    """
    run_button.enabled, dock.cancel_button.enabled = False, True

    def failed(error):
        dock.status.value = f"error: {error}"

    def finished():
        dock.worker = None
        run_button.enabled, dock.cancel_button.enabled = True, False

    dock.worker = start_job(
        job,
        description=description,
        on_done=on_done,
        on_error=failed,
        on_finished=finished,
        owner=dock.native,
    )
    return dock.worker
