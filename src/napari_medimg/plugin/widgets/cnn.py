"""CNN classifier panel: train from an .npz, a labels CSV or napari layers in a worker with live curves;
predict on layers.

Training from layers cuts examples from an Image layer with a Labels layer of objects whose class comes from a
``features`` column (or the label value): a patch of fixed size in mm around each object
(:func:`~napari_medimg.learn.cnn.data.object_dataset`), or one example per slice
(:func:`~napari_medimg.learn.cnn.data.slice_dataset`); a stratified, seeded share is held out for validation.

Training runs :func:`napari_medimg.learn.cnn.train.train` through :func:`~napari_medimg.plugin.workers.start_job`
(progress bar).  Each finished epoch is relayed from the worker to the main thread through a Qt signal and
drawn in the panel's plot (train/validation loss, validation AUC and accuracy).  Cancel asks the training loop
to stop after the current batch; it returns the best checkpoint so far, which becomes the panel's model.

Prediction on an Image layer (optionally with a Labels layer of objects) adds, with the image's geometry:
``<image> CNN probability`` and ``<image> CNN saliency`` (Grad-CAM) Image layers, and ``<image> CNN classes``,
a Labels layer coloured by predicted class whose ``features`` hold the class and the probabilities (one row
per object, or per class for slice-wise predictions, whose curve along the slice axis is plotted).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import (
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from qtpy.QtCore import QEvent, QObject, Signal

from ...learn.cnn.recipe import AUGMENTATIONS
from ...learn.cnn.recipe import DEFAULT_RECIPE as RECIPE
from ..layers import layer_data_tuple, layer_to_volume, set_or_add_layer, shown_volume
from ..workers import start_job
from ._common import ScrollableContainer

if TYPE_CHECKING:
    import napari

__all__ = ["CNNWidget", "train_job", "build_sets", "layer_classes", "CLASS_COLOURS", "add_plot"]

NPZ, CSV, LAYERS = "MedMNIST-style .npz", "folder + labels CSV", "napari layers"
OBJECTS, SLICES = "patch around each object", "class per slice"
LABEL_VALUE = "label value"
NO_MODEL = "(train or load a model)"
#: colours of predicted classes 0, 1, 2, ... (RGBA)
CLASS_COLOURS = [
    (0.12, 0.47, 0.71, 1),
    (0.89, 0.10, 0.11, 1),
    (0.20, 0.63, 0.17, 1),
    (1.0, 0.50, 0.0, 1),
    (0.42, 0.24, 0.60, 1),
    (0.65, 0.34, 0.16, 1),
    (0.97, 0.51, 0.75, 1),
    (0.6, 0.6, 0.6, 1),
]


def add_plot(container, height: float = 2.6):
    """A matplotlib canvas for training curves at the bottom of a scrollable panel.

    Parameters
    ----------
    container : ScrollableContainer
        The panel.
    height : float
        Figure height in inches (at 80 dpi).

    Returns
    -------
    tuple
        ``(figure, canvas, axes)``.
    """
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, height), dpi=80, tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 75))
    container.content_widget.layout().addWidget(canvas)
    axes = figure.add_subplot()
    axes.set_title("training curves appear here", fontsize=9)
    return figure, canvas, axes


class _BeforeOpen(QObject):
    """Qt event filter calling ``callback()`` when a combo box is about to open (mouse press or key)."""

    def __init__(self, callback):
        super().__init__()
        self.callback = callback

    def eventFilter(self, watched, event):  # noqa: N802 (Qt API)
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress):
            self.callback()
        return False


class _EpochRelay(QObject):
    """Created on the main thread; ``epoch.emit`` from the worker is delivered there (queued)."""

    epoch = Signal(object)


def layer_classes(layer, column: str) -> dict:
    """Label id -> class of each object of a Labels layer, from a ``features`` column or the label value."""
    if column == LABEL_VALUE:
        return {int(v): str(int(v)) for v in np.unique(np.asarray(layer.data)) if v != 0}
    features = layer.features
    if column not in features.columns:
        raise ValueError(f"layer {layer.name!r} has no features column {column!r}")
    ids = features["index"] if "index" in features.columns else features.index
    return {int(i): value for i, value in zip(ids, features[column], strict=False)}


def build_sets(
    source: str, data, dims: int | None, size: list[int] | None, seed: int = 0, progress=None
) -> dict:
    """Training and validation ImageSets from a file (``data`` = path) or from layers (``data`` = dict)."""
    from ...learn.cnn.data import (
        load_folder,
        load_npz,
        object_dataset,
        read_slice_classes,
        slice_classes_from_labels,
        slice_dataset,
        split_dataset,
    )

    if source == LAYERS:
        dims = dims or 2
        size = size or [64]
        size = size * dims if len(size) == 1 else size
        if data["mode"] == SLICES:
            if dims != 2:
                raise ValueError("per-slice classes train a 2D model; choose dimensions 2 or auto")
            if data["slice_csv"]:
                classes = read_slice_classes(data["slice_csv"], data["image"].shape[0])
            else:
                classes = slice_classes_from_labels(data["labels"].array, data["classes"], data["empty"])
            dataset = slice_dataset(data["image"], classes, size)
        else:
            dataset = object_dataset(
                data["image"], data["labels"], data["classes"], data["size_mm"], size, dims, progress=progress
            )
        return split_dataset(dataset, data["val_fraction"], seed)
    if source == NPZ:
        sets = load_npz(data, dims=dims)
    else:
        if not size:
            raise ValueError("images listed in a CSV need an input size, e.g. 64 64")
        sets = load_folder(data, size, dims=dims, seed=seed)
    if "val" not in sets:
        raise ValueError(f"{data} has no validation split")
    return sets


def train_job(
    source: str,
    data,
    dims: int | None,
    size: list[int] | None,
    model: dict,
    settings: dict,
    progress=None,
    on_epoch=None,
    stop=None,
):
    """Load or cut the data and train (runs in the worker); returns the TrainResult.

    ``model`` and ``settings`` change the default recipe (:func:`~napari_medimg.learn.cnn.recipe.recipe_configs`;
    ``settings["augmentation"]`` names its augmentation level).  With ``settings["folds"] = K`` ≥ 2 the train and
    validation examples are merged and K fold models trained within the time budget, returned as one
    :class:`~napari_medimg.learn.cnn.cv.EnsembleResult`.
    """
    from ...learn.cnn.cv import train_model
    from ...learn.cnn.recipe import recipe_configs
    from ...learn.cnn.train import TrainConfig
    from ...progress import Cancelled, report

    def cutting(done: int, total: int) -> None:  # cancel also works while the examples are cut
        if stop is not None and stop():
            raise Cancelled("training")
        report(progress, done, total)

    sets = build_sets(source, data, dims, size, settings.get("seed", 0), progress=cutting)
    dims = sets["train"].dims
    settings = dict(settings)
    folds = settings.pop("folds", None) or 0
    recipe = {"augmentation": settings.pop("augmentation")} if "augmentation" in settings else {}
    # the recipe's 3D stem halves the resolution twice before the first stage (3D convolutions are slow)
    model_settings, train_settings = recipe_configs(dims, recipe, **settings)
    model = {**model_settings, **{k: v for k, v in model.items() if v is not None}, "dims": dims}
    config = TrainConfig(**train_settings)
    return train_model(
        sets, model, config, folds=folds or None, progress=progress, on_epoch=on_epoch, stop=stop
    )


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError as error:
        raise ValueError(f"expected whole numbers separated by spaces, got {text!r}") from error


class CNNWidget(ScrollableContainer):
    """Train a 2D/3D CNN classifier and apply it to Image (and Labels) layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.model = None  # LoadedModel used for prediction
        self._train_modality = None  # modality of the training image layer (checked when predicting)
        self.result = None  # last TrainResult
        self.history: list[dict] = []
        self.worker = None
        self._watched = None  # Labels layer whose features columns are offered as classes
        self._stop = threading.Event()
        self._relay = _EpochRelay()
        self._relay.epoch.connect(self._on_epoch)

        self.source = ComboBox(choices=[NPZ, CSV, LAYERS], value=NPZ, label="training data")
        self.data_path = FileEdit(mode="r", filter="*.npz *.csv", label="file")
        self.train_image = create_widget(annotation="napari.layers.Image", label="training image")
        self.train_labels = create_widget(annotation="napari.layers.Labels", label="objects")
        self.class_column = ComboBox(choices=self._column_choices, label="class from")
        self.layer_mode = ComboBox(choices=[OBJECTS, SLICES], value=OBJECTS, label="examples")
        self.patch_mm = FloatSpinBox(value=32.0, min=1.0, max=1000.0, step=1.0, label="patch size (mm)")
        self.empty_class = LineEdit(value="", label="slices without objects (class, empty = skip)")
        self.slice_csv = FileEdit(mode="r", filter="*.csv", value="", label="or slice classes CSV")
        self.val_fraction = FloatSpinBox(
            value=0.25, min=0.05, max=0.8, step=0.05, label="validation fraction"
        )
        self.dims = ComboBox(choices=["auto", "2", "3"], value="auto", label="dimensions")
        self.size = LineEdit(value="64 64", label="input size (CSV, layers)")
        self.net_width = SpinBox(
            value=0,
            min=0,
            max=256,
            label=f"width (0: {RECIPE['width_2d']} in 2D, {RECIPE['width_3d']} in 3D)",
        )
        self.depths = LineEdit(value=" ".join(map(str, RECIPE["depths"])), label="blocks per stage")
        self.dropout = FloatSpinBox(value=RECIPE["dropout"], min=0.0, max=0.9, step=0.05, label="dropout")
        self.epochs = SpinBox(value=RECIPE["epochs"], min=1, max=1000, label="epochs")
        self.minutes = FloatSpinBox(
            value=5.0, min=0.0, max=600.0, step=0.5, label="time budget (min, 0 = none)"
        )
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.balance = ComboBox(
            choices=["weights", "sampler", "none"], value=RECIPE["balance"], label="class balance"
        )
        self.augmentation = ComboBox(
            choices=sorted(AUGMENTATIONS), value=RECIPE["augmentation"], label="augmentation"
        )
        self.folds = SpinBox(value=0, min=0, max=20, label="ensemble of k folds (0 = one model)")
        self.save_path = FileEdit(mode="d", label="save model to", value="")
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel (keep best)", enabled=False)

        self.model_path = FileEdit(mode="d", label="model folder", value="")
        self.load_button = PushButton(text="Load model")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.objects = create_widget(annotation="napari.layers.Labels | None", label="objects (optional)")
        self._target_names = [NO_MODEL]  # classes offered for the probability map (those of the model)
        self.target_class = ComboBox(choices=lambda *_: list(self._target_names), label="probability of")
        self.predict_button = PushButton(text="Predict", enabled=False)
        self.status = Label(value="no model")
        self.status.min_width = 300  # room for "9 objects: 6 lesion, 3 normal"
        self._layer_widgets = [
            self.train_image,
            self.train_labels,
            self.class_column,
            self.layer_mode,
            self.patch_mm,
            self.empty_class,
            self.slice_csv,
            self.val_fraction,
        ]
        self.extend(
            [
                Label(value="<b>Train</b>"),
                self.source,
                self.data_path,
                *self._layer_widgets,
                self.dims,
                self.size,
                self.net_width,
                self.depths,
                self.dropout,
                self.epochs,
                self.minutes,
                self.seed,
                self.balance,
                self.augmentation,
                self.folds,
                self.save_path,
                self.train_button,
                self.cancel_button,
                Label(value="<b>Predict</b>"),
                self.model_path,
                self.load_button,
                self.image,
                self.objects,
                self.target_class,
                self.predict_button,
                self.status,
            ]
        )
        self._make_plot()

        self.train_button.changed.connect(self.start_training)
        self.cancel_button.changed.connect(self.cancel)
        self.load_button.changed.connect(self.load)
        self.predict_button.changed.connect(self.start_prediction)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            for widget in (self.image, self.objects, self.train_image, self.train_labels):
                event.connect(widget.reset_choices)
        for widget in (self.image, self.objects, self.train_image, self.train_labels):
            widget.reset_choices()
        self.train_labels.changed.connect(self._update_columns)
        # features edited in place (layer.features["class"] = ...) emit no event: re-read the columns
        # whenever the user opens the list (mouse or keyboard)
        self._opening_filter = _BeforeOpen(self._update_columns)
        self.class_column.native.installEventFilter(self._opening_filter)
        self.source.changed.connect(self._update_visibility)
        self.layer_mode.changed.connect(self._update_visibility)
        self._update_columns()
        self._update_visibility()

    # ---- plot -------------------------------------------------------------------------------------------
    def _make_plot(self):
        self.figure, self.canvas, self.axes = add_plot(self, height=2.6)

    def plot_history(self):
        axes = self.axes
        axes.clear()
        fold = self.history[-1].get("fold") if self.history else None
        history = [r for r in self.history if r.get("fold") == fold]  # an ensemble: the fold in training
        epochs = [r["epoch"] for r in history]
        axes.plot(epochs, [r["train_loss"] for r in history], label="train loss")
        axes.plot(epochs, [r["val_loss"] for r in history], label="val loss")
        axes.plot(
            epochs, [np.nan if r["val_auc"] is None else r["val_auc"] for r in history], label="val AUC"
        )
        axes.plot(epochs, [r["val_acc"] for r in history], label="val acc")
        if history and history[-1].get("best_epoch"):
            axes.axvline(history[-1]["best_epoch"], color="0.5", linestyle=":", linewidth=1)
        axes.set_xlabel("epoch", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7, loc="best")
        axes.set_title("training" if fold is None else f"training, fold {fold + 1}", fontsize=9)
        self.canvas.draw_idle()

    def plot_slices(self, table: pd.DataFrame, names: list[str]):
        axes = self.axes
        axes.clear()
        for name in names:
            axes.plot(table["position_mm"], table[f"p_{name}"], label=f"P({name})")
        axes.set_xlabel("slice position (mm along axis 0)", fontsize=8)
        axes.set_ylim(-0.02, 1.02)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7, loc="best")
        axes.set_title("per-slice probability", fontsize=9)
        self.canvas.draw_idle()

    # ---- training ---------------------------------------------------------------------------------------
    def _update_columns(self, *_):
        """Offer the chosen Labels layer's features columns (and the label value itself) as the class."""
        layer = self.train_labels.value
        if layer is not self._watched:  # follow edits of the chosen layer's features table
            if self._watched is not None:
                self._watched.events.features.disconnect(self._update_columns)
            if layer is not None:
                layer.events.features.connect(self._update_columns)
            self._watched = layer
        previous = self.class_column.value
        self.class_column.reset_choices()
        choices = self.class_column.choices
        # a column chosen before stays chosen; the label-value fallback gives way to a new class column
        first = None if previous == LABEL_VALUE else previous
        preferred = [c for c in (first, "class", "name", previous) if c in choices]
        self.class_column.value = preferred[0] if preferred else choices[0]

    def _column_choices(self, *_) -> list[str]:
        """The chosen Labels layer's features columns (not its ``index``), then the label value itself."""
        layer = self.train_labels.value
        columns = [] if layer is None else [str(c) for c in layer.features.columns if c != "index"]
        return [*columns, LABEL_VALUE]

    def _update_visibility(self, *_):
        layers = self.source.value == LAYERS
        self.data_path.visible = not layers
        for widget in self._layer_widgets:
            widget.visible = layers
        self.patch_mm.visible = layers and self.layer_mode.value == OBJECTS
        self.empty_class.visible = self.slice_csv.visible = layers and self.layer_mode.value == SLICES

    def _layer_data(self) -> dict:
        """What the worker needs from the training layers (read on the main thread; labels copied)."""
        image, labels = self.train_image.value, self.train_labels.value
        slice_csv = str(self.slice_csv.value) if self.layer_mode.value == SLICES else ""
        slice_csv = "" if slice_csv in ("", ".") else slice_csv
        if image is None or (labels is None and not slice_csv):
            raise ValueError(
                "choose a training image layer and a labels layer"
                + (" (or a slice classes CSV)" if self.layer_mode.value == SLICES else "")
            )
        if slice_csv and not Path(slice_csv).is_file():
            raise ValueError(f"no slice classes CSV at {slice_csv}")
        data = {
            "image": shown_volume(self.viewer, image),  # a 4D layer: the volume its slider shows
            "mode": self.layer_mode.value,
            "size_mm": self.patch_mm.value,
            "empty": self.empty_class.value.strip() or None,
            "slice_csv": slice_csv,
            "val_fraction": self.val_fraction.value,
            "labels": None,
            "classes": None,
        }
        if not slice_csv:
            data["labels"] = layer_to_volume(labels).with_array(np.array(labels.data))
            data["classes"] = layer_classes(labels, self.class_column.value)
        return data

    def start_training(self, *_):
        if self.worker is not None:
            return
        try:
            if self.source.value == LAYERS:
                data = self._layer_data()
            else:
                data = str(self.data_path.value)
                if not Path(data).is_file():
                    raise ValueError("choose a training file first")
            size = _ints(self.size.value) if self.source.value != NPZ else None
            model = {
                "width": self.net_width.value or None,  # None: the recipe's width for 2D or 3D
                "depths": _ints(self.depths.value),
                "dropout": self.dropout.value,
            }
            if self.folds.value == 1:
                raise ValueError("an ensemble needs at least 2 folds (0 = one model)")
        except ValueError as error:
            self.status.value = str(error)
            return
        settings = {
            "epochs": self.epochs.value,
            "minutes": self.minutes.value or None,
            "seed": self.seed.value,
            "balance": self.balance.value,
            "augmentation": self.augmentation.value,
            "folds": self.folds.value,
        }
        dims = None if self.dims.value == "auto" else int(self.dims.value)
        self._train_modality = None
        if self.source.value == LAYERS:
            self._train_modality = data["image"].metadata.get("modality")
        self.history = []
        self._stop.clear()
        self.status.value = "training…"
        self.train_button.enabled, self.cancel_button.enabled = False, True
        self.predict_button.enabled = False  # a prediction now would wait for the worker and do nothing
        self.worker = start_job(
            train_job,
            self.source.value,
            data,
            dims,
            size,
            model,
            settings,
            description="Training CNN",
            on_done=self._trained,
            on_error=self._failed,
            on_finished=self._job_finished,
            on_epoch=self._relay.epoch.emit,
            stop=self._stop.is_set,
            owner=self.native,
        )

    def _on_epoch(self, record: dict):
        self.history.append(record)
        auc = "n/a" if record["val_auc"] is None else f"{record['val_auc']:.3f}"
        fold = f"fold {record['fold'] + 1}/{self.folds.value}, " if "fold" in record else ""
        self.status.value = f"{fold}epoch {record['epoch']}: val AUC {auc}, acc {record['val_acc']:.3f}"
        self.plot_history()

    def cancel(self, *_):
        """Stop training after the current batch, keeping the best model so far."""
        if self.worker is not None and not self.train_button.enabled:
            self._stop.set()
            self.status.value = "stopping…"

    def _trained(self, result):
        from ...learn.cnn.files import LoadedModel, save_model

        self.result = result
        meta = result.meta()
        if getattr(self, "_train_modality", None):
            meta["source"] = {"modality": str(self._train_modality)}
        self._set_model(LoadedModel(result.model, meta))
        metrics = result.metrics
        auc = "n/a" if metrics["auc"] is None else f"{metrics['auc']:.3f}"
        if isinstance(result.best_epoch, list):  # an ensemble of fold models: out-of-fold figures
            message = (
                f"ensemble of {len(result.best_epoch)} folds (best epochs {result.best_epoch}, {result.stopped}): "
                f"out-of-fold AUC {auc}, acc {metrics['acc']:.3f}, {result.seconds:.0f} s"
            )
        else:
            message = (
                f"best epoch {result.best_epoch} ({result.stopped}): val AUC {auc}, acc {metrics['acc']:.3f}, "
                f"{result.seconds:.0f} s"
            )
        target = str(self.save_path.value)
        if target not in ("", "."):
            try:
                save_model(result.model, meta, target)
                self.model_path.value = target
                message += f"; saved to {target}"
            except (FileExistsError, OSError) as error:
                message += f"; not saved: {error}"
        self.status.value = message

    def _failed(self, error: BaseException):
        self.status.value = f"error: {error}"

    def _job_finished(self):
        if self.status.value == "stopping…":  # cancelled before the first epoch: nothing to keep
            self.status.value = (
                "cancelled before every fold had a model (nothing kept)"
                if self.folds.value >= 2
                else "cancelled before any epoch finished"
            )
        self.worker = None
        self.train_button.enabled, self.cancel_button.enabled = True, False
        self.predict_button.enabled = self.model is not None

    # ---- prediction -------------------------------------------------------------------------------------
    def load(self, *_):
        from ...learn.cnn.files import ModelFileError, load_model

        try:
            model = load_model(str(self.model_path.value))
        except ModelFileError as error:
            self.status.value = f"error: {error}"
            return
        self._set_model(model)
        names = ", ".join(self.model.class_names)
        self.status.value = f"loaded {self.model.config.dims}D model, classes {names}"

    def _set_model(self, model) -> None:
        """Use ``model`` for prediction; offer its classes for the probability map (default: the minority)."""
        from ...learn.cnn.predict import default_target

        self.model = model
        self._target_names = list(model.class_names)
        self.target_class.reset_choices()
        self.target_class.value = model.class_names[default_target(model)]
        self.predict_button.enabled = self.worker is None

    def _target_index(self) -> int:
        """The class picked in "probability of" (the model's default when none of its classes is picked)."""
        from ...learn.cnn.predict import default_target

        names = self.model.class_names
        chosen = self.target_class.value
        return names.index(chosen) if chosen in names else default_target(self.model)

    @property
    def result_names(self) -> dict:
        base = self.image.value.name
        target = self.model.class_names[self._target_index()] if self.model is not None else "class"
        return {
            "probability": f"{base} CNN P({target})",
            "saliency": f"{base} CNN saliency",
            "classes": f"{base} CNN classes",
        }

    def start_prediction(self, *_):
        from ...learn.cnn.predict import predict

        layer = self.image.value
        if layer is None or self.worker is not None:
            return
        if self.model is None:
            self.status.value = "train or load a model first"
            return
        from napari.utils.notifications import show_warning

        from ...learn.cnn.predict import compatibility_warnings

        objects = self.objects.value
        volume = shown_volume(self.viewer, layer)  # a 4D layer: the volume its slider shows
        # predict() reads the array in the worker, so a lazy volume does not freeze the viewer
        image = layer.data if volume.ndim == np.ndim(layer.data) else volume.array
        labels = None if objects is None else np.asarray(objects.data)
        names = self.result_names
        model = self.model
        rgb = bool(getattr(layer, "rgb", False))
        spatial = volume.shape[:-1] if rgb else volume.shape
        spacing = volume.spacing[: len(spatial)]
        checked = spatial[1:] if (model.config.dims == 2 and len(spatial) == 3) else spatial
        warnings = compatibility_warnings(
            model,
            checked,
            spacing[-len(checked) :],
            volume.metadata.get("modality"),
            objects=objects is not None,
        )
        for warning in warnings:
            show_warning(f"CNN on {layer.name}: {warning}")
        target = self._target_index()
        self.status.value = "predicting…"
        self.predict_button.enabled = False

        def done(prediction):
            self._show_prediction(volume, prediction, labels, names, model)
            if warnings:
                self.status.value = f"{self.status.value} (check: {'; '.join(warnings)})"

        self.worker = start_job(
            predict,
            model,
            image,
            labels=labels,
            spacing=spacing,
            target=target,
            description=f"CNN prediction on {layer.name}",
            on_done=done,
            on_error=self._failed,
            on_finished=self._job_finished,
            owner=self.native,
        )

    def _show_prediction(self, volume, prediction, labels, names, model):
        from napari.utils.colormaps import DirectLabelColormap

        class_names = model.class_names
        target = class_names[prediction.target_class]
        set_or_add_layer(
            self.viewer,
            layer_data_tuple(
                volume.with_array(prediction.probability),
                "image",
                name=names["probability"],
                colormap="magma",
                opacity=0.45,
                blending="additive",
                contrast_limits=(0.0, 1.0),
                metadata={"cnn": {"quantity": f"P({target})", "mode": prediction.mode}},
            ),
        )
        set_or_add_layer(
            self.viewer,
            layer_data_tuple(
                volume.with_array(prediction.saliency),
                "image",
                name=names["saliency"],
                colormap="hot",
                opacity=0.4,
                blending="additive",
                contrast_limits=(0.0, 1.0),
                metadata={"cnn": {"quantity": "Grad-CAM of the predicted class", "mode": prediction.mode}},
            ),
        )
        table = prediction.table
        colours = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
        if prediction.mode == "objects":
            data = labels.astype(np.int32)
            features = table.rename(columns={"label": "index"}).copy()
            features.insert(1, "label", features["index"])
            for label, c in zip(features["index"], features["class"], strict=False):
                colours[int(label)] = CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]
        else:
            data = prediction.class_map
            summary = {
                "index": np.arange(1, len(class_names) + 1),
                "class": np.arange(len(class_names)),
                "class_name": class_names,
            }
            counts = np.bincount(table["class"], minlength=len(class_names))
            summary["n" if prediction.mode == "image" else "n_slices"] = counts
            for c, name in enumerate(class_names):
                summary[f"mean_p_{name}"] = [
                    float(table.loc[table["class"] == k, f"p_{name}"].mean()) if counts[k] else np.nan
                    for k in range(len(class_names))
                ]
                colours[c + 1] = CLASS_COLOURS[c % len(CLASS_COLOURS)]
            features = pd.DataFrame(summary)
        layer = set_or_add_layer(
            self.viewer,
            layer_data_tuple(
                volume.with_array(data),
                "labels",
                name=names["classes"],
                opacity=0.35 if prediction.mode != "objects" else 0.6,
            ),
        )
        layer.colormap = DirectLabelColormap(color_dict=colours)
        layer.features = features
        layer.metadata["cnn_predictions"] = table.to_dict(orient="list")
        tally = ", ".join(
            f"{n} {class_names[c]}"
            for c, n in enumerate(np.bincount(table["class"], minlength=len(class_names)))
        )
        if prediction.mode == "slices":
            self.plot_slices(table, class_names)
            shown = f"{len(table)} slices: {tally}"
        elif prediction.mode == "objects":
            shown = f"{len(table)} objects: {tally}"
        else:
            shown = f"{table['class_name'][0]} (p = {table['probability'][0]:.3f})"
        self.status.value = shown
        self.status.tooltip = f"prediction ({prediction.mode}): {shown}"
