"""U-Net segmenter panel: the active-learning loop of painting, training, predicting, correcting, retraining.

Paint a few strokes or slices into a Labels layer (1 = background, 2.. = structures; 0 stays unlabelled and
carries no loss), press *Train*: :func:`~napari_medimg.learn.unet.train.train_unet` runs in a worker with a live
loss/Dice curve and a progress bar; *Cancel* keeps the weights reached so far.  *Predict* (disabled while
training runs) segments the chosen image slab by slab in a worker and shows ``<image> U-Net labels`` (Labels)
and ``<image> U-Net P(<class>)`` (probability of the class picked in *probability of*).  Correct the
annotations (or copy corrected predictions into them) and train again: with *continue from current model* the
new run starts from the previous weights.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from qtpy.QtCore import QObject, Signal

from ..layers import layer_data_tuple, set_or_add_layer, shown_volume
from ..workers import start_job
from ._common import ScrollableContainer

if TYPE_CHECKING:
    import napari

__all__ = ["UNetWidget"]


class _StepRelay(QObject):
    """Created on the main thread; ``step.emit`` from the worker is delivered there (queued)."""

    step = Signal(object)


def _spacing(volume) -> list[float]:
    spacing = [float(s) for s in volume.spacing]
    return spacing[:2] if volume.metadata.get("rgb") else spacing


class UNetWidget(ScrollableContainer):
    """Train a U-Net from a Labels layer of annotations and segment Image layers with it.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.model = None  # LoadedUNet
        self.model_folder = (
            None  # where the current model is saved (recorded in the step log when predicting)
        )
        self.result = None  # last UNetTrainResult
        self.history: list[dict] = []
        self.worker = None
        self.training = False
        self._stop = threading.Event()
        self._relay = _StepRelay()
        self._relay.step.connect(self._on_step)

        self.train_image = create_widget(annotation="napari.layers.Image", label="image")
        self.annotations = create_widget(annotation="napari.layers.Labels", label="annotations")
        self.dims = ComboBox(choices=["auto", "2", "3"], value="auto", label="U-Net")
        self.net_width = SpinBox(value=16, min=2, max=128, label="width")
        self.levels = SpinBox(value=4, min=1, max=6, label="levels")
        self.patch = SpinBox(value=96, min=16, max=512, step=16, label="patch (px in-plane)")
        self.iterations = SpinBox(value=1000, min=1, max=100000, label="iterations")
        self.minutes = FloatSpinBox(
            value=5.0, min=0.0, max=600.0, step=0.5, label="time budget (min, 0 = none)"
        )
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.resume = CheckBox(value=True, text="continue from current model")
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel (keep weights)", enabled=False)
        self.save_path = FileEdit(mode="d", label="save model to", value="")
        self.save_button = PushButton(text="Save model", enabled=False)
        self.model_path = FileEdit(mode="d", label="model folder", value="")
        self.load_button = PushButton(text="Load model")
        self.image = create_widget(annotation="napari.layers.Image", label="segment image")
        self._target_names = ["(train or load a model)"]
        self.target = ComboBox(choices=lambda *_: list(self._target_names), label="probability of")
        self.predict_button = PushButton(text="Predict", enabled=False)
        self.status = Label(value="paint 1 = background, 2.. = structures (0 = unlabelled), then Train")
        self.extend(
            [
                Label(value="<b>Train from annotations</b>"),
                self.train_image,
                self.annotations,
                self.dims,
                self.net_width,
                self.levels,
                self.patch,
                self.iterations,
                self.minutes,
                self.seed,
                self.resume,
                self.train_button,
                self.cancel_button,
                self.save_path,
                self.save_button,
                Label(value="<b>Segment</b>"),
                self.model_path,
                self.load_button,
                self.image,
                self.target,
                self.predict_button,
                self.status,
            ]
        )
        self._make_plot()
        self.train_button.changed.connect(self.start_training)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self.save)
        self.load_button.changed.connect(self.load)
        self.predict_button.changed.connect(self.start_prediction)
        combos = (self.train_image, self.annotations, self.image)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            for widget in combos:
                event.connect(widget.reset_choices)
        for widget in combos:
            widget.reset_choices()

    # ---- plot -------------------------------------------------------------------------------------------
    def _make_plot(self):
        from .cnn import add_plot

        self.figure, self.canvas, self.axes = add_plot(self, height=2.4)

    def plot_history(self):
        """Draw the loss and soft Dice of the training batches against the step."""
        axes = self.axes
        axes.clear()
        steps = [r["step"] for r in self.history]
        axes.plot(steps, [r["loss"] for r in self.history], label="loss (CE + Dice)")
        axes.plot(
            steps, [np.nan if r["dice"] is None else r["dice"] for r in self.history], label="batch Dice"
        )
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7, loc="best")
        axes.set_title("U-Net training", fontsize=9)
        self.canvas.draw_idle()

    # ---- state ------------------------------------------------------------------------------------------
    def _set_model(self, model, folder: str | None = None) -> None:
        self.model = model
        self.model_folder = folder
        self._target_names = list(model.class_names)
        self.target.reset_choices()
        self.target.value = self.model.class_names[
            -1
        ]  # the last class: usually the structure, not background
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.predict_button.enabled = self.model is not None and self.worker is None
        self.save_button.enabled = self.model is not None and self.worker is None
        self.train_button.enabled = self.worker is None
        self.cancel_button.enabled = self.training

    # ---- training ---------------------------------------------------------------------------------------
    def start_training(self, *_):
        """Train (or continue training) on the chosen image and annotations in a worker."""
        from ...learn.unet import UNetTrainConfig, train_unet

        if self.worker is not None:
            return
        image, annotations = self.train_image.value, self.annotations.value
        if image is None or annotations is None:
            self.status.value = "choose an image layer and a labels layer of annotations"
            return
        volume = shown_volume(self.viewer, image)  # a 4D layer: the volume its slider shows
        labels = np.asarray(annotations.data)
        if labels.shape != volume.shape[: labels.ndim]:
            self.status.value = (
                f"the annotations ({labels.shape}) are not on the image's grid ({volume.shape})"
            )
            return
        initial = self.model if (self.resume.value and self.model is not None) else None
        dims = None if self.dims.value == "auto" else int(self.dims.value)
        patch = None
        if dims == 2 or (
            dims is None and (labels.ndim == 2 or initial is not None and initial.config.dims == 2)
        ):
            patch = [self.patch.value] * 2
        config = UNetTrainConfig(
            iterations=self.iterations.value,
            minutes=self.minutes.value or None,
            patch=patch if initial is None else initial.patch,
            seed=self.seed.value,
            log_every=max(1, min(10, self.iterations.value // 20)),
        )
        self.history = []
        self._stop.clear()
        self.status.value = "training…"
        self.worker = start_job(
            train_unet,
            [np.asarray(volume.array)],
            [labels.copy()],
            [_spacing(volume)],
            dims=dims if initial is None else initial.config.dims,
            width=self.net_width.value,
            levels=self.levels.value,
            config=config,
            initial=None if initial is None else initial.model,
            normalisation=None if initial is None else initial.normalisation,
            class_names=None if initial is None else initial.class_names,
            rgb=bool(getattr(image, "rgb", False)),
            on_step=self._relay.step.emit,
            stop=self._stop.is_set,
            description="Training U-Net",
            on_done=self._trained,
            on_error=self._failed,
            on_finished=self._job_finished,
            owner=self.native,
        )
        self.training = True
        self._update_buttons()

    def _on_step(self, record: dict):
        self.history.append(record)
        dice = "n/a" if record["dice"] is None else f"{record['dice']:.3f}"
        self.status.value = f"step {record['step']}: loss {record['loss']:.3f}, batch Dice {dice}"
        self.plot_history()

    def cancel(self, *_):
        """Stop training after the current batch, keeping the weights reached so far."""
        if self.training:
            self._stop.set()
            self.status.value = "stopping…"

    def _trained(self, result):
        from ...learn.unet import loaded

        self.result = result
        self._set_model(loaded(result))
        threshold = result.extra.get("threshold")
        extra = "" if threshold is None else f", threshold {threshold:.2f}"
        self.status.value = (
            f"trained {result.iterations} steps ({result.stopped}) in {result.seconds:.0f} s{extra}"
        )

    def _failed(self, error: BaseException):
        self.status.value = f"error: {error}"

    def _job_finished(self):
        self.worker = None
        self.training = False
        self._update_buttons()

    def save(self, *_):
        """Write the current model to the chosen folder (refuses to replace an existing one)."""
        from ...learn.unet import save_unet

        target = str(self.save_path.value)
        if self.model is None or target in ("", "."):
            self.status.value = "choose a folder to save the model to"
            return
        try:
            save_unet(self.model.model, self.model.meta, target)
        except (FileExistsError, OSError, ValueError) as error:
            self.status.value = f"not saved: {error}"
            return
        self.model_path.value = target
        self.model_folder = target
        self.status.value = f"saved to {target}"

    def load(self, *_):
        """Load a U-Net folder (checked; see :func:`~napari_medimg.learn.unet.files.load_unet`)."""
        from ...learn.cnn.files import ModelFileError
        from ...learn.unet import load_unet

        try:
            model = load_unet(str(self.model_path.value))
        except ModelFileError as error:
            self.status.value = f"error: {error}"
            return
        self._set_model(model, str(self.model_path.value))
        self.status.value = f"loaded {model.config.dims}D U-Net, classes {', '.join(model.class_names)}"

    # ---- prediction -------------------------------------------------------------------------------------
    def result_names(self, target: str) -> dict:
        """Names of the result layers for the chosen image and class."""
        base = self.image.value.name
        return {"labels": f"{base} U-Net labels", "probability": f"{base} U-Net P({target})"}

    def start_prediction(self, *_):
        """Segment the chosen image in a worker (not while training runs)."""
        from ...learn.unet import segment

        layer = self.image.value
        if layer is None or self.worker is not None or self.model is None:
            if self.worker is not None:
                self.status.value = "wait until training has finished"
            return
        names = self.model.class_names
        target_name = self.target.value if self.target.value in names else names[-1]
        target = names.index(target_name) + 1
        volume = shown_volume(self.viewer, layer)  # a 4D layer: the volume its slider shows
        data = layer.data if volume.ndim == np.ndim(layer.data) else volume.array
        rgb = bool(getattr(layer, "rgb", False))
        if rgb:
            from ...geometry import Volume

            volume = Volume(volume.array[..., 0], volume.spacing[:2], volume.origin, volume.direction, {})
        layer_names = self.result_names(target_name)
        self.status.value = "predicting…"
        self.worker = start_job(
            segment,
            self.model,
            data,
            rgb=rgb,
            target=target,
            description=f"U-Net on {layer.name}",
            on_done=lambda result: self._show(volume, result, layer_names, (layer.name, target)),
            on_error=self._failed,
            on_finished=self._job_finished,
            owner=self.native,
        )
        self._update_buttons()

    def _show(self, volume, result, names, source):
        set_or_add_layer(
            self.viewer,
            layer_data_tuple(
                volume.with_array(result.probability),
                "image",
                name=names["probability"],
                colormap="magma",
                opacity=0.5,
                blending="additive",
                contrast_limits=(0.0, 1.0),
                metadata={"unet": {"quantity": f"P({result.target_name})"}},
            ),
        )
        set_or_add_layer(
            self.viewer,
            layer_data_tuple(volume.with_array(result.labels), "labels", name=names["labels"], opacity=0.5),
        )
        if self.model_folder:  # a saved model can be replayed by a recipe (the `unet_segment` operation)
            from ...pipeline.steps import record_step

            record_step(
                "unet_segment", {"model": self.model_folder}, inputs=[source[0]], output=names["labels"]
            )
            record_step(
                "unet_segment",
                {"model": self.model_folder, "output": "probability", "target": source[1]},
                inputs=[source[0]],
                output=names["probability"],
            )
        counts = np.bincount(result.labels.ravel(), minlength=len(result.class_names) + 1)[1:]
        self.status.value = "predicted: " + ", ".join(
            f"{name} {count}" for name, count in zip(result.class_names, counts, strict=True)
        )
