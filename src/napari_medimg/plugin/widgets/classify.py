"""Classical classifiers in napari: objects (SVM, tree, forest, gradient boosting) and pixels (random forest).

**Object classifier** — objects are a Labels layer measured by *Measure objects* (its ``features`` hold one row
per label).  The class of an object comes from a *class annotation* Labels layer painted onto the objects (the
most frequent non-zero class value under each object) or from a ``class`` column of the features (edited in
the feature table dock or imported from CSV).  Training (stratified k-fold cross-validation, then a fit on all
annotated objects) runs in a worker with progress; *Predict* adds ``<objects> classes``: the same objects
coloured by predicted class, ``features`` holding ``predicted_class`` and one ``probability_<class>`` column.

**Pixel classifier** — paint strokes of each class on a Labels layer over an Image (1, 2, … ; 0 = unlabelled),
train (in a worker), and see the live preview of the slice in view (``<image> preview``, refreshed when the
slice changes, in a worker).  *Segment* classifies the whole image slab-wise with progress and cancel:
``<image> pixel classes`` (Labels) and ``<image> P(<class>)`` (Image) layers.

Both save and load skops bundles (never pickle) and record their step (``classify_objects`` /
``pixel_classify`` with the model path) so a recipe can replay them.  The plots dock shows the confusion
matrix, ROC curves and feature importances of the last training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, FileEdit, Label, LineEdit, PushButton, SpinBox, create_widget
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ...learn.classify import MODELS, ObjectClassifier, load_classifier, save_classifier, train_classifier
from ...learn.pixels import (
    DEFAULT_CONTEXT,
    DEFAULT_SIGMAS_MM,
    DEFAULT_TREES,
    FeatureSettings,
    PixelClassifier,
    load_pixel_classifier,
    predict_pixels,
    predict_slice,
    save_pixel_classifier,
    train_pixel_classifier,
)
from ...pipeline.steps import record_step
from ..layers import layer_data_tuple, layer_to_volume, set_or_add_layer
from ._common import JobWidget
from .cnn import CLASS_COLOURS

if TYPE_CHECKING:
    import napari

__all__ = [
    "ObjectClassifierWidget",
    "PixelClassifierWidget",
    "ClassifierPlotsWidget",
    "object_table",
    "painted_classes",
]

CLASS_COLUMN = "(class column of the features)"


def painted_classes(objects: np.ndarray, classes: np.ndarray) -> dict[int, int]:
    """The class painted on each object: the most frequent non-zero class value under it.

    Parameters
    ----------
    objects : numpy.ndarray
        Object labels (0 = background).
    classes : numpy.ndarray
        Class annotation of the same shape (0 = not annotated).

    Returns
    -------
    dict
        Object label → class value, for annotated objects only.
    """
    objects, classes = np.asarray(objects), np.asarray(classes)
    if objects.shape != classes.shape:
        raise ValueError(f"the class layer has shape {classes.shape}, the objects {objects.shape}")
    inside = (objects > 0) & (classes > 0)
    if not inside.any():
        return {}
    pairs = np.stack([objects[inside].astype(np.int64), classes[inside].astype(np.int64)], 1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    result: dict[int, tuple[int, int]] = {}
    for (label, value), count in zip(unique.tolist(), counts.tolist(), strict=True):
        if label not in result or count > result[label][1]:
            result[label] = (value, count)
    return {label: value for label, (value, _) in result.items()}


def object_table(layer, class_layer=None) -> pd.DataFrame:
    """The objects' feature table with a ``class`` column (painted classes, else the features' own).

    Parameters
    ----------
    layer : napari.layers.Labels
        Objects measured by *Measure objects* (``features`` with a ``label`` or ``index`` column).
    class_layer : napari.layers.Labels, optional
        Class annotation painted onto the objects.

    Returns
    -------
    pandas.DataFrame
        One row per object; ``class`` is NaN for objects without a class.
    """
    features = pd.DataFrame(layer.features).copy()
    if features.empty:
        raise ValueError(f"{layer.name!r} has no features: measure it first (Measure objects)")
    if "label" not in features:
        features["label"] = features["index"] if "index" in features else np.arange(len(features))
    features = features[features["label"].astype(np.int64) > 0].reset_index(drop=True)
    if class_layer is not None:
        painted = painted_classes(np.asarray(layer.data), np.asarray(class_layer.data))
        features["class"] = [painted.get(int(label), np.nan) for label in features["label"]]
    elif "class" not in features:
        raise ValueError(
            f"{layer.name!r} has no 'class' column: paint classes on a Labels layer or add the column"
        )
    return features


class ClassifierPlotsWidget(QWidget):
    """Confusion matrix, ROC curves and feature importances of the last training (matplotlib)."""

    def __init__(self, napari_viewer=None):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.2, 7.5), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas)

    def plot(self, metrics: dict | None, importances: dict | None, roc: list | None = None, title: str = ""):
        """Draw the confusion matrix (``metrics``), ROC curves (``roc``: (name, fpr, tpr)) and importances."""
        self.figure.clear()
        panels = [
            p
            for p in ("confusion", "roc", "importance")
            if {"confusion": metrics, "roc": roc, "importance": importances}[p]
        ]
        axes = self.figure.subplots(len(panels) or 1, 1, squeeze=False)[:, 0]
        for axis, panel in zip(axes, panels, strict=False):
            if panel == "confusion":
                matrix = np.asarray(metrics["confusion_matrix"])
                names = [str(c) for c in metrics["classes"]]
                axis.imshow(matrix, cmap="Blues")
                for (i, j), value in np.ndenumerate(matrix):
                    axis.text(j, i, str(value), ha="center", va="center", color="black")
                axis.set_xticks(range(len(names)), names, fontsize=7)
                axis.set_yticks(range(len(names)), names, fontsize=7)
                axis.set_xlabel("predicted")
                axis.set_ylabel("true")
                axis.set_title(
                    f"{title} acc {metrics['acc']:.3f}, AUC {metrics['auc'] or float('nan'):.3f}", fontsize=8
                )
            elif panel == "roc":
                for name, fpr, tpr in roc:
                    axis.plot(fpr, tpr, label=str(name))
                axis.plot([0, 1], [0, 1], color="grey", lw=0.5)
                axis.set_xlabel("false positive rate")
                axis.set_ylabel("true positive rate")
                axis.legend(fontsize=7)
                axis.set_title("ROC (cross-validated)", fontsize=8)
            else:
                values = list(importances["values"].items())[:12][::-1]
                axis.barh([name[:28] for name, _ in values], [v for _, v in values])
                axis.tick_params(axis="y", labelsize=6)
                axis.set_title(f"feature importance ({importances['method']})", fontsize=8)
        self.canvas.draw_idle()


def _roc_curves(cv) -> list:
    from sklearn.metrics import roc_curve

    curves = []
    classes = cv.classes if len(cv.classes) > 2 else cv.classes[1:]
    for name in classes:
        column = cv.classes.index(name)
        fpr, tpr, _ = roc_curve(np.asarray(cv.y_true) == name, cv.probabilities[:, column])
        curves.append((name, fpr, tpr))
    return curves


def _plots_dock(viewer) -> ClassifierPlotsWidget:
    for widget in getattr(viewer.window, "dock_widgets", {}).values():
        if isinstance(widget, ClassifierPlotsWidget):
            return widget
    plots = ClassifierPlotsWidget(viewer)
    viewer.window.add_dock_widget(plots, name="Classifier plots", area="right")
    return plots


def _colour_by_class(layer, object_classes: dict[int, int]) -> None:
    from napari.utils.colormaps import DirectLabelColormap

    colours = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    for label, index in object_classes.items():
        colours[int(label)] = CLASS_COLOURS[int(index) % len(CLASS_COLOURS)]
    layer.colormap = DirectLabelColormap(color_dict=colours)


class _ModelFiles:
    """Save / Load buttons of a classifier panel: ``_save_model`` / ``_load_model`` and ``_loaded(path)``."""

    def save(self, *_):
        path = Path(str(self.model_path.value))
        if self.classifier is None or not path.name or path.is_dir():
            self.status.value = "error: train a model and choose a file name first"
            return
        try:
            self._save_model(self.classifier, path)
        except (OSError, ValueError) as error:
            self.status.value = f"error: {error}"
            return
        self.saved_path = str(path)
        self.save_button.enabled = False
        self.status.value = f"saved {path.name}"

    def load(self, *_):
        path = Path(str(self.model_path.value))
        try:
            self.classifier = self._load_model(path)
        except (OSError, ValueError) as error:
            self.status.value = f"error: {error}"
            return
        self.saved_path = str(path)
        self._loaded(path)
        self.status.value = f"loaded {path.name}"


class ObjectClassifierWidget(_ModelFiles, JobWidget):
    """Objects + class annotation + model settings → trained classifier → objects coloured by class."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Train")
        self.objects = create_widget(annotation="napari.layers.Labels", label="objects")
        self.class_source = ComboBox(label="classes from", choices=self._class_choices)
        self.model = ComboBox(label="model", choices=MODELS, value="forest")
        self.kernel = ComboBox(label="SVM kernel", choices=("rbf", "linear"), value="rbf")
        self.folds = SpinBox(label="folds", value=5, min=0, max=20, tooltip="stratified k-fold CV; 0 = none")
        self.n_estimators = SpinBox(label="trees", value=200, min=1, max=5000)
        self.predict_button = PushButton(text="Predict objects", enabled=False)
        self.model_path = FileEdit(label="model file", mode="w", filter="*.skops")
        self.save_button = PushButton(text="Save model", enabled=False)
        self.load_button = PushButton(text="Load model")
        self.summary = Label(value="")
        self.classifier: ObjectClassifier | None = None
        self.saved_path: str | None = None
        self.predict_button.changed.connect(self.predict)
        self.save_button.changed.connect(self.save)
        self.load_button.changed.connect(self.load)
        self.extend([self.objects, self.class_source, self.model, self.kernel, self.folds, self.n_estimators])
        self._finish_layout()
        self.extend([self.summary, self.predict_button, self.model_path, self.save_button, self.load_button])
        self._connect_layer_choices(self.objects, self.class_source)

    def _class_choices(self, _widget=None):
        return [CLASS_COLUMN] + [layer.name for layer in self.viewer.layers if layer._type_string == "labels"]

    def training_table(self) -> pd.DataFrame:
        """The annotated objects' table (main thread: reads the layers)."""
        layer = self.objects.value
        if layer is None:
            raise ValueError("choose the objects (a Labels layer measured by Measure objects)")
        source = self.class_source.value
        class_layer = None if source in (None, CLASS_COLUMN) else self.viewer.layers[source]
        if class_layer is layer:
            raise ValueError("the class annotation must be another Labels layer than the objects")
        table = object_table(layer, class_layer)
        return table[table["class"].notna()].reset_index(drop=True)

    def apply(self, *_):
        try:
            table = self.training_table()
        except ValueError as error:
            self.status.value = f"error: {error}"
            return
        if table.empty:
            self.status.value = "error: no object has a class yet: paint classes onto some objects"
            return
        if pd.api.types.is_float_dtype(table["class"]) and np.all(np.mod(table["class"], 1) == 0):
            table["class"] = table["class"].astype(np.int64)
        params = {
            "model": self.model.value,
            "folds": int(self.folds.value),
            "kernel": self.kernel.value,
            "n_estimators": int(self.n_estimators.value),
        }
        self.run_job(
            train_classifier,
            table,
            target="class",
            description=f"training {params['model']} on {len(table)} objects",
            on_done=self._trained,
            **params,
        )

    def _trained(self, result):
        self.classifier, cv = result
        self.saved_path = None
        metrics = self.classifier.metrics
        if cv is not None:
            self.summary.value = (
                f"{metrics['folds']}-fold CV on {metrics['n']} objects: acc {metrics['acc']:.3f}, "
                f"balanced {metrics['balanced_acc']:.3f}, F1 {metrics['f1']:.3f}, AUC {metrics['auc'] or float('nan'):.3f}"
            )
            _plots_dock(self.viewer).plot(
                metrics, self.classifier.importances, _roc_curves(cv), self.model.value
            )
        else:
            self.summary.value = f"trained on {metrics['n']} objects (no cross-validation)"
            _plots_dock(self.viewer).plot(None, self.classifier.importances)
        typos = [c["column"] for c in metrics.get("ignored_columns", []) if c["typo"]]
        self.status.value = "trained" + (f"; left out, not all numbers: {', '.join(typos)}" if typos else "")
        self.predict_button.enabled = self.save_button.enabled = True

    def predict(self, *_):
        """Add ``<objects> classes``: the objects coloured by predicted class with probabilities in features."""
        layer = self.objects.value
        if self.classifier is None or layer is None:
            return
        try:
            table = object_table(layer, None) if "class" in layer.features else self._features_only(layer)
            predictions = self.classifier.predict_table(table)
        except ValueError as error:
            self.status.value = f"error: {error}"
            return
        features = pd.DataFrame({"index": table["label"].to_numpy(), "label": table["label"].to_numpy()})
        for column in predictions.columns:
            if column != "label":
                features[column] = predictions[column].to_numpy()
        name = f"{layer.name} classes"
        volume = layer_to_volume(layer)
        result = set_or_add_layer(self.viewer, layer_data_tuple(volume, "labels", name=name, opacity=0.6))
        result.features = features
        index = {value: k for k, value in enumerate(self.classifier.classes)}
        _colour_by_class(
            result,
            {int(o): index[c] for o, c in zip(features["label"], features["predicted_class"], strict=True)},
        )
        record_step("classify_objects", {"model": self.saved_path or "(unsaved model)"}, [layer.name], name)
        tally = features["predicted_class"].value_counts().to_dict()
        self.status.value = "predicted: " + ", ".join(f"{v} × {k}" for k, v in tally.items())

    @staticmethod
    def _features_only(layer) -> pd.DataFrame:
        features = pd.DataFrame(layer.features).copy()
        if "label" not in features:
            features["label"] = features["index"]
        return features[features["label"].astype(np.int64) > 0].reset_index(drop=True)

    _save_model = staticmethod(save_classifier)
    _load_model = staticmethod(load_classifier)

    def _loaded(self, path: Path):
        self.predict_button.enabled, self.save_button.enabled = True, False
        self.summary.value = (
            f"loaded {self.classifier.settings.get('model')} ({len(self.classifier.feature_names)} features)"
        )


class PixelClassifierWidget(_ModelFiles, JobWidget):
    """Image + stroke Labels → random forest on filter features → live slice preview → whole-image segmentation."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Train")
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.strokes = create_widget(annotation="napari.layers.Labels", label="strokes")
        self.sigmas = LineEdit(label="scales (mm)", value=",".join(f"{s:g}" for s in DEFAULT_SIGMAS_MM))
        self.normalise = ComboBox(label="normalise", choices=("auto", "none", "image"), value="auto",
                                  tooltip="'image' for photographs; 'none' keeps HU; 'auto' picks by image")  # fmt: skip
        self.dimensions = ComboBox(label="features", choices=("2d", "3d"), value="2d")
        self.trees = SpinBox(label="trees", value=DEFAULT_TREES, min=1, max=1000)
        self.auto_context = CheckBox(text="auto-context (second stage)", value=True,
                                     tooltip="a second forest on the features plus filters of the first one's "
                                     "probabilities; the preview shows the same two stages")  # fmt: skip
        self.live = CheckBox(text="live preview of the slice in view", value=True)
        self.segment_button = PushButton(text="Segment whole image", enabled=False)
        self.model_path = FileEdit(label="model file", mode="w", filter="*.skops")
        self.save_button = PushButton(text="Save model", enabled=False)
        self.load_button = PushButton(text="Load model")
        self.summary = Label(value="")
        self.classifier: PixelClassifier | None = None
        self.saved_path: str | None = None
        self._preview_worker = None
        self._preview_again = False
        self._preview_key = None
        self.segment_button.changed.connect(self.segment)
        self.save_button.changed.connect(self.save)
        self.load_button.changed.connect(self.load)
        self.live.changed.connect(self.preview)
        self.viewer.dims.events.current_step.connect(self.preview)
        self.extend([self.image, self.strokes, self.sigmas, self.normalise, self.dimensions, self.trees,
                     self.auto_context])  # fmt: skip
        self._finish_layout()
        self.extend(
            [
                self.summary,
                self.live,
                self.segment_button,
                self.model_path,
                self.save_button,
                self.load_button,
            ]
        )
        self._connect_layer_choices(self.image, self.strokes)

    def settings(self) -> FeatureSettings:
        try:
            sigmas = tuple(float(v) for v in str(self.sigmas.value).split(",") if v.strip())
        except ValueError:
            raise ValueError(f"scales {self.sigmas.value!r}: comma-separated numbers in mm") from None
        return FeatureSettings(sigmas_mm=sigmas, normalise=self.normalise.value)

    def apply(self, *_):
        image, strokes = self.image.value, self.strokes.value
        if image is None or strokes is None:
            self.status.value = "error: choose an image and a Labels layer with strokes"
            return
        try:
            settings = self.settings()
            volume = layer_to_volume(image)
            labels = np.asarray(strokes.data)
        except ValueError as error:
            self.status.value = f"error: {error}"
            return
        self.run_job(
            train_pixel_classifier,
            [volume],
            [labels],
            settings=settings,
            dimensions=self.dimensions.value,
            n_estimators=int(self.trees.value),
            context=DEFAULT_CONTEXT if self.auto_context.value else None,
            description=f"training the pixel classifier on {image.name}",
            on_done=self._trained,
        )

    def _trained(self, classifier: PixelClassifier):
        self.classifier = classifier
        self.saved_path = None
        metrics = classifier.metrics
        estimate = metrics.get("oob_acc", metrics.get("holdout_acc"))
        kind = "out-of-bag" if "oob_acc" in metrics else "held-out"
        self._after_model(f"{kind} accuracy {estimate:.3f} on {metrics['training_samples']} labelled pixels")
        self.status.value = "trained"
        _plots_dock(self.viewer).plot(
            None, {"method": "impurity", "values": classifier.metrics["importances"]}
        )

    def _after_model(self, summary: str):
        self.summary.value = summary
        self.segment_button.enabled = True
        self.save_button.enabled = self.saved_path is None
        self.preview()

    # ---- live preview ----------------------------------------------------------------------------------
    def preview(self, *_):
        """Classify the slice in view in a worker (one at a time; a newer request runs when it ends)."""
        image = self.image.value
        if self.classifier is None or image is None or not self.live.value:
            return
        if self._preview_worker is not None:
            self._preview_again = True
            return
        from napari.qt.threading import thread_worker

        volume = layer_to_volume(image)
        index = self.slice_index(image) if len(volume.spatial_shape) == 3 else 0
        classifier = self.classifier
        key = (id(image), index, id(classifier))
        if key == self._preview_key:
            return  # that slice is shown already (other dims events, layers added)
        self._preview_key = key

        @thread_worker
        def work():
            return predict_slice(classifier, volume, index)

        def show(prediction):
            if image in self.viewer.layers:  # not removed (or the viewer closed) meanwhile
                self._show_preview(image, volume, index, prediction)

        def finished():
            self._preview_worker = None
            if self._preview_again:
                self._preview_again = False
                self.preview()

        def failed(error):
            self.status.value = f"preview error: {error}"

        worker = work()
        worker.returned.connect(show)
        worker.errored.connect(failed)
        worker.finished.connect(finished)
        self._preview_worker = worker
        worker.start()

    def _show_preview(self, image, volume, index, prediction):
        name = f"{image.name} preview"
        shape = volume.spatial_shape
        if len(shape) == 2:
            data = prediction.labels
        else:
            existing = self.viewer.layers[name].data if name in self.viewer.layers else None
            data = (
                existing
                if existing is not None and existing.shape == tuple(shape)
                else np.zeros(shape, np.uint8)
            )
            data = np.zeros_like(data)
            data[index] = prediction.labels
        spatial = volume.spatial_spacing
        preview = type(volume)(data, spatial, volume.origin, volume.direction, {})
        layer = set_or_add_layer(self.viewer, layer_data_tuple(preview, "labels", name=name, opacity=0.5))
        layer.metadata["preview_slice"] = int(index)

    # ---- whole image -----------------------------------------------------------------------------------
    def segment(self, *_):
        image = self.image.value
        if self.classifier is None or image is None:
            return
        volume = layer_to_volume(image)
        self.run_job(
            predict_pixels,
            self.classifier,
            volume,
            description=f"segmenting {image.name}",
            on_done=lambda prediction: self._show_segmentation(image, volume, prediction),
        )

    def _show_segmentation(self, image, volume, prediction):
        spatial = volume.spatial_spacing
        geometry = (spatial, volume.origin, volume.direction)
        name = f"{image.name} pixel classes"
        labels = type(volume)(prediction.labels, *geometry, {})
        layer = set_or_add_layer(self.viewer, layer_data_tuple(labels, "labels", name=name, opacity=0.5))
        layer.features = pd.DataFrame({
            "index": self.classifier.classes, "class_name": self.classifier.class_names,
            "pixels": [int((prediction.labels == v).sum()) for v in self.classifier.classes],
        })  # fmt: skip
        for column, (_value, class_name) in enumerate(
            zip(self.classifier.classes, self.classifier.class_names, strict=True)
        ):
            if column == 0 and len(self.classifier.classes) == 2:
                continue  # with two classes the second's probability says it all
            probability = type(volume)(
                np.ascontiguousarray(prediction.probabilities[..., column]), *geometry, {}
            )
            set_or_add_layer(
                self.viewer,
                layer_data_tuple(probability, "image", name=f"{image.name} P({class_name})", colormap="magma",
                                 contrast_limits=(0.0, 1.0), blending="additive", opacity=0.5),
            )  # fmt: skip
        record_step(
            "pixel_classify",
            {"model": self.saved_path or "(unsaved model)", "output": "labels"},
            [image.name],
            name,
        )
        self.status.value = f"segmented {image.name}"

    _save_model = staticmethod(save_pixel_classifier)
    _load_model = staticmethod(load_pixel_classifier)

    def _loaded(self, path: Path):
        self._after_model(f"loaded {path.name}: classes {', '.join(self.classifier.class_names)}")
