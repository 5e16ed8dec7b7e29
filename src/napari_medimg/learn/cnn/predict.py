"""Applying a trained classifier to whole images, to every slice of a volume, or to patches around objects.

All functions take raw arrays in (z, y, x) / (y, x) order (RGB channels last) and return a
:class:`Prediction` whose maps have the input image's shape, so that they carry the image's geometry:

* ``mode == "image"``: one prediction for the whole image (2D model on a 2D image, 3D model on a volume);
* ``mode == "slices"``: a 2D model applied to each slice along axis 0 of a volume;
* ``mode == "objects"``: each object of a labels array classified from a patch around it (a square patch
  through the object's largest cross-section for a 2D model on a volume, a box for a 3D model), cut by
  :func:`.patches.object_patches`: of the model's fixed size in mm (``meta["patch"]["size_mm"]``, models
  trained on object patches; for a model trained on whole images of known spacing, its input size times the pitch
  of its input grid, see :func:`patch_size_mm`; either way resampled in mm to the training spacing) around the
  centroid, else (no spacing known) with a margin of ``margin`` times the object's size.

``probability`` is the probability of the target class (chosen by the caller; by default the training's
minority class, see :func:`default_target`) painted over the image, slice or object it belongs to; ``saliency`` is the Grad-CAM map of the predicted
class in [0, 1]; ``class_map`` holds predicted class + 1 over the predicted region (0 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...progress import ProgressCallback, report
from .data import normalise, resize_batch, to_channels_first
from .explain import grad_cam
from .files import LoadedModel
from .metrics import decide
from .patches import object_patches, paint_back
from .train import predict_proba, torch_threads

__all__ = [
    "Prediction",
    "predict",
    "prepare",
    "patch_size_mm",
    "predict_arrays",
    "default_target",
    "compatibility_warnings",
]


@dataclass
class Prediction:
    """What :func:`predict` returns.

    Attributes
    ----------
    mode : str
        ``image``, ``slices`` or ``objects``.
    table : pandas.DataFrame
        One row per image, slice or object.
    class_map : numpy.ndarray
        Predicted class + 1 on the image grid.
    probability : numpy.ndarray
        Probability of ``target_class`` on the image grid.
    saliency : numpy.ndarray
        Grad-CAM map in [0, 1].
    target_class : int
        The class whose probability is shown.
    """

    mode: str
    table: pd.DataFrame
    class_map: np.ndarray
    probability: np.ndarray
    saliency: np.ndarray
    target_class: int


def _channels_last(model: LoadedModel, image: np.ndarray) -> bool:
    """Whether the last axis of ``image`` holds the model's colour channels (RGB images are channels-last)."""
    channels = model.config.in_channels
    return channels > 1 and image.ndim >= 3 and image.shape[-1] == channels


def prepare(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """Raw images ``(N, *spatial[, C])`` resized to the model's input size and normalised, channel-first.

    Returns
    -------
    numpy.ndarray
        Channel-first, resized, normalised float32 images.
    """
    batch = to_channels_first(images, model.config.dims)
    if batch.shape[1] != model.config.in_channels:
        raise ValueError(
            f"the model expects {model.config.in_channels} channel(s), the images have {batch.shape[1]}"
        )
    return normalise(resize_batch(batch, model.input_size), model.normalisation)


def predict_arrays(
    model: LoadedModel, images: np.ndarray, saliency: bool = True, tta: bool = True, threads: int | None = 2
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities ``(N, n_classes)`` and Grad-CAM maps at the input size for a stack of raw images.

    Returns
    -------
    tuple
        Probabilities ``(N, n_classes)`` and Grad-CAM maps (or None).
    """
    x = prepare(model, images)
    training = model.meta.get("training", {})
    flips = (
        training.get("flip_axes") if tta and training.get("tta") else None
    )  # the training's test-time flips
    with torch_threads(threads):
        probabilities = predict_proba(model.model, x, tta_axes=flips)
        maps = grad_cam(model.model, x, probabilities.argmax(axis=1)) if saliency else None
    return probabilities, maps


def default_target(model: LoadedModel) -> int:
    """The class whose probability maps show by default: the minority class of training (the positive
    finding, e.g. "lesion" or "malignant"), else class 1 of two classes.

    Parameters
    ----------
    model : LoadedModel
        The classifier.

    Returns
    -------
    int
        Class index.
    """
    counts = model.meta.get("class_counts")
    n = model.config.n_classes
    if isinstance(counts, list) and len(counts) == n and all(isinstance(c, int) for c in counts):
        return int(n - 1 - np.argmin(counts[::-1]))  # ties go to the later class (class 1 of two)
    return 1


def compatibility_warnings(
    model: LoadedModel, shape, spacing=None, modality: str | None = None, *, objects: bool = False
) -> list[str]:
    """What differs between an image and the images the model was trained on (modality, size, spacing).

    Whole images and slices are resized to the model's input: the pitch they get (spacing × shape / input
    size) is compared with the training pitch.  Objects are cut in mm and resampled to the training pitch
    (:func:`patch_size_mm`) when the model and the image have spacings: nothing to warn about size or spacing.

    Parameters
    ----------
    model : LoadedModel
        The classifier.
    shape : sequence of int
        Spatial shape of the image (or of one slice for a 2D model on a volume).
    spacing : sequence of float, optional
        Its pixel/voxel size in mm.
    modality : str, optional
        Its DICOM modality (``CT``, ``MR``, ``US`` …).
    objects : bool, optional
        Objects of a labels image are classified (patches around them), not the image itself.

    Returns
    -------
    list of str
        One sentence per mismatch; empty when nothing is known to differ.
    """
    warnings = []
    trained = (model.meta.get("source") or {}).get("modality")
    if trained and modality and str(trained).upper() != str(modality).upper():
        warnings.append(f"the model was trained on {trained} images; this image is {modality}")
    dims = model.config.dims
    size = list(model.input_size)
    spatial = [int(s) for s in list(shape)[-dims:]]
    if objects and spacing is not None and patch_size_mm(model) is not None:
        return warnings  # patches of a fixed size in mm, resampled to the training pitch
    if (
        model.meta.get("patch") is None
        and not objects
        and any(s > 2 * t or 2 * s < t for s, t in zip(spatial, size, strict=False))
    ):
        warnings.append(
            f"the model takes {' × '.join(map(str, size))} images; this one "
            f"({' × '.join(map(str, spatial))}) is resized to that"
        )
    trained_spacing = model.meta.get("spacing")
    if trained_spacing and spacing is not None:
        given = [float(s) for s in list(spacing)[-dims:]]
        if not objects and model.meta.get("patch") is None:  # the pitch after resizing to the input size
            given = [g * n / t for g, n, t in zip(given, spatial, size, strict=False)]
        if any(abs(g - t) > 0.25 * t for g, t in zip(given, trained_spacing, strict=False)):
            warnings.append(
                f"the model was trained at {' × '.join(f'{t:g}' for t in trained_spacing)} mm; this image has "
                f"{' × '.join(f'{g:g}' for g in given)} mm"
            )
    return warnings


def _target(model: LoadedModel, probabilities: np.ndarray, target: int) -> np.ndarray:
    return probabilities[:, target]


def _decide(model: LoadedModel, probabilities: np.ndarray) -> np.ndarray:
    """Predicted classes with the model's validation-chosen threshold (binary models), else the arg-max."""
    threshold = model.meta.get("threshold")
    return decide(probabilities, threshold if isinstance(threshold, (int, float)) else None)


def _table(model: LoadedModel, probabilities: np.ndarray, extra: dict) -> pd.DataFrame:
    predicted = _decide(model, probabilities)
    names = model.class_names
    columns = dict(extra)
    columns["class"] = predicted.astype(int)
    columns["class_name"] = [names[c] for c in predicted]
    columns["probability"] = probabilities[np.arange(len(predicted)), predicted]
    for c, name in enumerate(names):
        columns[f"p_{name}"] = probabilities[:, c]
    return pd.DataFrame(columns)


def _resize_map(array: np.ndarray, shape) -> np.ndarray:
    from skimage.transform import resize

    return resize(array, tuple(shape), order=1, preserve_range=True, anti_aliasing=False).astype(np.float32)


def predict(
    model: LoadedModel,
    image: np.ndarray,
    labels: np.ndarray | None = None,
    spacing=None,
    margin: float = 0.25,
    saliency: bool = True,
    progress: ProgressCallback | None = None,
    batch: int = 64,
    target: int | None = None,
) -> Prediction:
    """Classify ``image`` as a whole, per slice, or per object of ``labels`` (see the module docstring).

    ``target`` is the class whose probability ``Prediction.probability`` holds (default
    :func:`default_target`: the training's minority class).

    Returns
    -------
    Prediction
    """
    image = np.asarray(image)
    target = default_target(model) if target is None else int(target)
    if not 0 <= target < model.config.n_classes:
        raise ValueError(f"target must be a class 0..{model.config.n_classes - 1}, got {target}")
    dims = model.config.dims
    rgb = _channels_last(model, image)
    spatial_shape = image.shape[:-1] if rgb else image.shape
    ndim = len(spatial_shape)
    if ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D image, got shape {image.shape}")
    if dims > ndim:
        raise ValueError("a 3D model cannot classify a 2D image")
    size_mm = patch_size_mm(model) if spacing is not None else (model.meta.get("patch") or {}).get("size_mm")
    spacing = np.ones(ndim) if spacing is None else np.asarray(spacing, float)[-ndim:]
    class_map = np.zeros(spatial_shape, np.uint8)
    probability = np.zeros(spatial_shape, np.float32)
    cam = np.zeros(spatial_shape, np.float32)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != spatial_shape:
            raise ValueError(f"labels shape {labels.shape} differs from the image's {spatial_shape}")
        return _predict_objects(
            model,
            image,
            labels,
            spacing,
            size_mm,
            margin,
            saliency,
            progress,
            class_map,
            probability,
            cam,
            target,
        )
    if dims == ndim:
        report(progress, 0, 1)
        probabilities, maps = predict_arrays(model, image[None], saliency)
        class_map[...] = _decide(model, probabilities)[0] + 1
        probability[...] = _target(model, probabilities, target)[0]
        if maps is not None:
            cam[...] = _resize_map(maps[0], spatial_shape)
        report(progress, 1, 1)
        return Prediction(
            "image",
            _table(model, probabilities, {}),
            class_map,
            probability,
            cam,
            target,
        )
    rows = []
    n_slices = spatial_shape[0]
    for start in range(0, n_slices, batch):
        chunk = image[start : start + batch]
        probabilities, maps = predict_arrays(model, chunk, saliency)
        rows.append(probabilities)
        for offset, c in enumerate(_decide(model, probabilities)):
            k = start + offset
            class_map[k] = c + 1
            if maps is not None:
                cam[k] = _resize_map(maps[offset], spatial_shape[1:])
        report(progress, min(start + batch, n_slices), n_slices)
    probabilities = np.concatenate(rows)
    probability[...] = _target(model, probabilities, target)[:, None, None]
    table = _table(
        model, probabilities, {"slice": np.arange(n_slices), "position_mm": np.arange(n_slices) * spacing[0]}
    )
    return Prediction("slices", table, class_map, probability, cam, target)


def patch_size_mm(model: LoadedModel) -> list[float] | None:
    """The millimetres an object patch covers for ``model``: the patch size it was trained with, else (a model
    trained on whole images of known spacing, e.g. from files) its input size times the pitch of its input
    grid, so that objects in an image of any spacing are resampled to the training spacing; None when unknown.

    Parameters
    ----------
    model : LoadedModel
        The classifier.

    Returns
    -------
    list of float or None
        One size per model axis.
    """
    size_mm = (model.meta.get("patch") or {}).get("size_mm")
    if size_mm is not None:
        return [float(s) for s in size_mm]
    spacing = model.meta.get("spacing")
    if spacing is None:
        return None
    return [float(s) * int(n) for s, n in zip(spacing, model.input_size, strict=True)]


def _predict_objects(
    model, image, labels, spacing, size_mm, margin, saliency, progress, class_map, probability, cam, target
):
    items = object_patches(
        image,
        labels,
        spacing,
        model.config.dims,
        size_mm=size_mm,
        out_size=model.input_size,
        margin=margin,
        progress=lambda done, total: report(progress, done, 2 * total),
    )
    probabilities = []
    for index, item in enumerate(items):
        p, m = predict_arrays(model, item.patch[None], saliency)
        probabilities.append(p[0])
        if m is not None:
            paint_back(cam, m[0], item)
        report(progress, len(items) + index + 1, 2 * len(items))
    probabilities = np.stack(probabilities)
    decided = _decide(model, probabilities)
    for item, c, t in zip(items, decided, _target(model, probabilities, target), strict=False):
        inside = labels == item.label
        class_map[inside] = c + 1
        probability[inside] = t
    table = _table(model, probabilities, pd.DataFrame([item.row for item in items]).to_dict(orient="list"))
    return Prediction("objects", table, class_map, probability, cam, target)
