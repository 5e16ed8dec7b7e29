"""Labelled image sets for the CNN: MedMNIST-style ``.npz`` files and folders of images with a labels CSV.

Training sets can also be cut from volumes (napari layers): :func:`object_dataset` (one patch of fixed size
in mm around each labelled object, class from a per-object mapping) and :func:`slice_dataset` (each slice
with a class); :func:`split_dataset` holds out a stratified, seeded validation set.

An :class:`ImageSet` holds raw (not yet normalised) float32 images channel-first, ``(N, C, H, W)`` or
``(N, C, D, H, W)``, integer labels ``(N,)`` and the class names.  Normalisation is fitted on the training
set (:func:`fit_normalisation`) and stored in the model file, so prediction applies exactly the same mapping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ImageSet",
    "load_npz",
    "load_folder",
    "load_images",
    "fit_normalisation",
    "normalise",
    "resize_batch",
    "to_channels_first",
    "read_image",
    "object_dataset",
    "slice_dataset",
    "slice_classes_from_labels",
    "read_slice_classes",
    "split_dataset",
]

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


@dataclass
class ImageSet:
    """Images ``(N, C, *spatial)`` float32, labels ``(N,)`` int64 and class names.

    Attributes
    ----------
    images : numpy.ndarray
        ``(N, C, *spatial)`` float32, channel-first.
    labels : numpy.ndarray
        ``(N,)`` int class indices.
    class_names : list of str
        Name of each class index.
    spacing : list of float or None
        Voxel size in mm when known.
    patch : dict or None
        How object patches were cut (``size_mm``), for prediction.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    spacing: list[float] | None = None
    names: list[str] = field(default_factory=list)
    patch: dict | None = None  # {"size_mm": [...]} for patches cut around objects (see :mod:`.patches`)

    def __post_init__(self):
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if self.images.ndim not in (4, 5):
            raise ValueError(f"images must be (N, C, H, W) or (N, C, D, H, W), got shape {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in 0..{len(self.class_names) - 1}, "
                f"got {self.labels.min()}..{self.labels.max()}"
            )

    @property
    def dims(self) -> int:
        return self.images.ndim - 2

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def input_size(self) -> list[int]:
        return list(self.images.shape[2:])

    def __len__(self) -> int:
        return len(self.labels)


def to_channels_first(images: np.ndarray, dims: int | None = None) -> np.ndarray:
    """Images ``(N, *spatial[, C])`` as float32 ``(N, C, *spatial)``; ``dims`` resolves 2D-RGB vs 3D.

    Returns
    -------
    numpy.ndarray
        ``(N, C, *spatial)`` float32.
    """
    images = np.asarray(images)
    if dims is None:
        if images.ndim == 3:
            dims = 2
        elif images.ndim == 4:
            dims = 2 if images.shape[-1] in (1, 3, 4) and images.shape[1] > 4 else 3
        elif images.ndim == 5:
            dims = 3
        else:
            raise ValueError(f"cannot interpret images of shape {images.shape}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    if images.ndim == dims + 1:
        images = images[:, None]
    elif images.ndim == dims + 2:
        images = np.moveaxis(images, -1, 1)
    else:
        raise ValueError(f"images of shape {images.shape} are not a stack of {dims}D images")
    return np.ascontiguousarray(images, dtype=np.float32)


def load_npz(
    path: str | os.PathLike, dims: int | None = None, class_names: list[str] | None = None
) -> dict[str, ImageSet]:
    """Read a MedMNIST-style ``.npz`` (``train_images``/``train_labels``/``val_*``[/``test_*``]) by split.

    Returns
    -------
    dict
        Split name (``train``, ``val``, ``test``) → :class:`ImageSet`.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz file: {error}") from error
    with archive:
        keys = set(archive.files)
        splits = {}
        all_labels = []
        for split in SPLITS:
            if f"{split}_images" in keys:
                if f"{split}_labels" not in keys:
                    raise ValueError(f"{path} has {split}_images but no {split}_labels")
                labels = np.asarray(archive[f"{split}_labels"])
                if labels.ndim == 2 and labels.shape[1] == 1:
                    labels = labels[:, 0]
                if labels.ndim != 1:
                    raise ValueError(
                        f"{split}_labels must be (N,) or (N, 1) (single-label classes), got {labels.shape}"
                    )
                if not np.issubdtype(labels.dtype, np.integer):
                    raise ValueError(f"{split}_labels must be integers, got {labels.dtype}")
                splits[split] = (archive[f"{split}_images"], labels)
                all_labels.append(labels)
    if "train" not in splits:
        raise ValueError(f"{path} needs train_images and train_labels (found {sorted(keys)})")
    n_classes = int(max(int(labels.max()) for labels in all_labels if len(labels)) + 1)
    names = class_names or [str(i) for i in range(max(n_classes, 2))]
    return {
        split: ImageSet(to_channels_first(images, dims), labels, list(names), names=[])
        for split, (images, labels) in splits.items()
    }


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, list[float] | None]:
    """Read one image (NIfTI, DICOM or PNG/JPEG/TIFF) as an array (channels last for RGB) and its spacing.

    Returns
    -------
    tuple
        The pixel array and the spacing in mm (None when the file has none).
    """
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from skimage.io import imread

        array = np.asarray(imread(path))
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]
        return array, None
    from ...io import read_volume, select_volume

    volume = select_volume(read_volume(path, lazy=False), None)  # NIfTI or DICOM; a 4D image is refused
    return np.asarray(volume.array), volume.spacing.tolist()


def resize_batch(images: np.ndarray, size) -> np.ndarray:
    """Resize channel-first images ``(N, C, *spatial)`` to ``size`` (linear, anti-aliased when shrinking).

    Returns
    -------
    numpy.ndarray
        ``(N, C, *size)`` float32.
    """
    from skimage.transform import resize

    size = tuple(int(s) for s in size)
    if tuple(images.shape[2:]) == size:
        return images.astype(np.float32, copy=False)
    out = np.empty(images.shape[:2] + size, np.float32)
    for n in range(images.shape[0]):
        for c in range(images.shape[1]):
            out[n, c] = resize(
                images[n, c].astype(np.float32),
                size,
                order=1,
                preserve_range=True,
                anti_aliasing=any(s < t for s, t in zip(size, images.shape[2:], strict=False)),
            )
    return out


def load_folder(
    csv_path: str | os.PathLike, size, dims: int | None = None, val_fraction: float = 0.2, seed: int = 0
) -> dict[str, ImageSet]:
    """Images listed in a CSV (columns ``path``, ``label`` and optionally ``split``) resized to ``size``.

    Paths are relative to the CSV's folder.  Without a ``split`` column a stratified ``val_fraction`` of the
    rows is held out for validation (seeded).  Class names are the sorted distinct labels.

    Returns
    -------
    dict
        ``train`` and ``val`` :class:`ImageSet`.
    """
    from ...io.tables import read_csv_rows

    csv_path = Path(csv_path)
    header, lines = read_csv_rows(csv_path, required=("path", "label"))  # BOM accepted, short rows refused
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    if not rows:
        raise ValueError(f"{csv_path} lists no images")
    for number, row in enumerate(rows, 2):
        if not row["path"].strip() or not row["label"].strip():
            raise ValueError(
                f"{csv_path}, row {number}: empty {'path' if not row['path'].strip() else 'label'}"
            )
    paths = [csv_path.parent / row["path"].strip() for row in rows]
    images, labels, class_names, mean_spacing = _read_listed(
        paths, [row["label"].strip() for row in rows], size, dims, csv_path
    )
    names = [row["path"].strip() for row in rows]
    if "split" not in rows[0]:  # the one stratified split of the package
        return split_dataset(ImageSet(images, labels, class_names, mean_spacing, names), val_fraction, seed)
    split_of = np.asarray([row["split"].strip().lower() for row in rows])
    sets = {}
    for split in SPLITS:
        keep = split_of == split
        if keep.any():
            sets[split] = ImageSet(
                images[keep],
                labels[keep],
                class_names,
                mean_spacing,
                [n for n, k in zip(names, keep, strict=False) if k],
            )
    if "train" not in sets:
        raise ValueError(f"{csv_path} has no training rows")
    return sets


def _read_listed(paths, classes, size, dims, where):
    """Images read from ``paths`` and resized to ``size``, their class numbers, the sorted class names and the
    mean spacing of the resized images, i.e. of the network's input grid (None when unknown)."""
    size = [int(s) for s in size]
    dims = dims or len(size)
    if len(size) != dims:
        raise ValueError(f"size {size} does not match dims={dims}")
    class_names = sorted(set(classes))
    if len(class_names) < 2:
        raise ValueError(f"{where} lists a single class {class_names}; at least two are needed")
    arrays, labels, spacings = [], [], []
    channels = None
    for path, label in zip(paths, classes, strict=True):
        array, spacing = read_image(path)
        if dims == 2 and array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
            spacing = spacing[1:] if spacing else None
        image = to_channels_first(array[None], dims)
        channels = channels or image.shape[1]
        if image.shape[1] != channels:
            raise ValueError(f"{path} has {image.shape[1]} channels, earlier images {channels}")
        arrays.append(resize_batch(image, size)[0])
        labels.append(class_names.index(label))
        if spacing is not None and len(spacing) == dims:  # the pitch of the resized grid the network sees
            spacing = (np.asarray(spacing, float) * image.shape[2:] / np.asarray(size)).tolist()
        spacings.append(spacing)
    mean_spacing = None
    known = [s for s in spacings if s is not None]
    if known and len(known[0]) == dims:
        mean_spacing = np.mean(known, axis=0).tolist()
    return np.stack(arrays), np.asarray(labels), class_names, mean_spacing


def load_images(
    paths,
    classes,
    size,
    dims: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, ImageSet]:
    """Image files with one class each, resized to ``size``, split into ``train`` and ``val`` (stratified).

    Parameters
    ----------
    paths : sequence of path-like
        Images in any format :func:`read_image` reads (PNG/TIFF/JPEG, NIfTI, DICOM; grey or RGB; 2D or 3D).
    classes : sequence of str
        The class of each image.
    size : sequence of int
        Input size of the network, e.g. ``[64, 64]`` or ``[32, 32, 32]``.
    dims : int, optional
        2 or 3 (default: the length of ``size``).
    val_fraction : float
        Share of each class held out for validation.
    seed : int
        Seed of the split.

    Returns
    -------
    dict
        ``train`` and ``val`` :class:`ImageSet`.

    Raises
    ------
    ValueError
        For unequal numbers of paths and classes, a single class, or images with different channels.

    Example
    -------
    >>> sets = load_images(["a.png", "b.png", ...], ["benign", "malignant", ...], [64, 64])  # doctest: +SKIP
    """
    paths = [Path(p) for p in paths]
    classes = [str(c).strip() for c in classes]
    if len(paths) != len(classes) or not paths:
        raise ValueError(f"{len(paths)} images and {len(classes)} classes: one class per image is needed")
    images, labels, class_names, spacing = _read_listed(paths, classes, size, dims, "the images")
    names = [str(p) for p in paths]
    return split_dataset(ImageSet(images, labels, class_names, spacing, names), val_fraction, seed)


def fit_normalisation(images: np.ndarray, mode: str = "fixed") -> dict:
    """Per-channel mean/std of the training images (``fixed``) or per-image standardisation (``per_image``).

    Returns
    -------
    dict
        ``{"mode": ...}`` with per-channel ``mean`` and ``std`` for ``fixed``.
    """
    if mode == "per_image":
        return {"mode": "per_image"}
    if mode != "fixed":
        raise ValueError(f"normalisation must be 'fixed' or 'per_image', got {mode!r}")
    axes = (0,) + tuple(range(2, images.ndim))
    mean = images.mean(axis=axes, dtype=np.float64)
    std = images.std(axis=axes, dtype=np.float64)
    return {"mode": "fixed", "mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def normalise(images: np.ndarray, normalisation: dict) -> np.ndarray:
    """Apply a normalisation from :func:`fit_normalisation` to channel-first images.

    Returns
    -------
    numpy.ndarray
        The normalised float32 images.
    """
    images = images.astype(np.float32, copy=False)
    shape = (1, -1) + (1,) * (images.ndim - 2)
    if normalisation["mode"] == "per_image":
        axes = tuple(range(1, images.ndim))
        mean = images.mean(axis=axes, keepdims=True)
        std = images.std(axis=axes, keepdims=True)
        return ((images - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    mean = np.asarray(normalisation["mean"], np.float32).reshape(shape)
    std = np.asarray(normalisation["std"], np.float32).reshape(shape)
    if mean.size != images.shape[1]:
        raise ValueError(f"normalisation has {mean.size} channels, images have {images.shape[1]}")
    return ((images - mean) / std).astype(np.float32)


def _same_grid(image, labels) -> None:
    if image.shape[: labels.ndim] != labels.shape:
        raise ValueError(f"labels shape {labels.shape} differs from the image's {image.shape}")
    from ...geometry import check_same_grid

    check_same_grid(image, labels, names=("the image", "the labels"))


def _class_name(value) -> str | None:
    """A class name from a table cell, or None for a missing one (None, NaN, pandas NA, empty text)."""
    import pandas as pd

    if value is None or (np.isscalar(value) and pd.isna(value)) or value is pd.NA:
        return None
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _ordered_names(values, class_names) -> list[str]:
    """``class_names`` (checked to cover ``values``), else the distinct values: whole numbers first, in
    numeric order, then text in alphabetical order."""

    def key(name: str):
        number = name.lstrip("-").isdigit()
        return (not number, int(name) if number else 0, name)

    present = sorted({v for v in values if v is not None}, key=key)
    if class_names is None:
        return present
    unknown = sorted(set(present) - set(class_names))
    if unknown:
        raise ValueError(f"classes {unknown} are not among {list(class_names)}")
    return list(class_names)


def object_dataset(
    image, labels, classes, size_mm, size, dims: int = 2, class_names=None, progress=None
) -> ImageSet:
    """Patches of ``size_mm`` around each object of ``labels`` whose class ``classes`` gives, at ``size`` pixels.

    ``image`` and ``labels`` are :class:`~napari_medimg.geometry.Volume` values on the same grid;
    ``classes`` maps label id -> class (objects without a class — missing id, None, NaN, empty — are left
    out).  The patches are cut exactly as :func:`~.predict.predict` cuts them for a model trained on this set
    (:func:`.patches.object_patches`), so training and prediction see the same millimetres.

    Returns
    -------
    ImageSet
        One patch per labelled object of a known class.
    """
    from .patches import object_patches

    array, label_array = np.asarray(image.array), np.asarray(labels.array)
    rgb = array.ndim == label_array.ndim + 1 and array.shape[-1] in (3, 4)  # colour image layer (y, x, 3)
    spacing = image.spacing[: label_array.ndim]
    if rgb:
        from ...geometry import Volume

        array = array[..., :3]
        image = Volume(array[..., 0], spacing, image.origin, image.direction, dict(image.metadata))
    _same_grid(image, labels)
    dims = int(dims)
    size = [int(s) for s in size]
    if len(size) != dims:
        raise ValueError(f"input size {size} does not match a {dims}D model")
    if dims > label_array.ndim:
        raise ValueError(f"a {dims}D model needs {dims}D objects")
    named = {int(k): _class_name(v) for k, v in dict(classes).items()}
    wanted = [k for k, v in named.items() if v is not None and k != 0]
    present = set(np.unique(label_array).tolist())
    wanted = sorted(k for k in wanted if k in present)
    if not wanted:
        raise ValueError("no object of the labels has a class")
    channels = [array[..., c] for c in range(3)] if rgb else [array]
    cut = [
        object_patches(
            channel,
            label_array,
            spacing,
            dims,
            size_mm=size_mm,
            out_size=size,
            only=wanted,
            progress=progress,
        )
        for channel in channels
    ]  # colour channels are cut one by one, exactly alike
    items = cut[0]
    names = _ordered_names([named[item.label] for item in items], class_names)
    size_mm = np.broadcast_to(np.asarray(size_mm, float), (dims,))
    patches = np.stack([np.stack([c[i].patch for c in cut], axis=0) for i in range(len(items))])
    images = np.ascontiguousarray(patches, dtype=np.float32)  # (N, C, *size)
    return ImageSet(
        images,
        [names.index(named[item.label]) for item in items],
        names,
        spacing=(size_mm / np.asarray(size)).tolist(),
        names=[f"label {item.label}" for item in items],
        patch={"size_mm": size_mm.tolist()},
    )


def slice_classes_from_labels(labels: np.ndarray, classes, empty: str | None = None) -> list[str | None]:
    """Each slice's class: that of the object (``classes``: label id -> class) with most voxels in the slice.

    Slices without a classified object get ``empty`` (None: left out of training).

    Returns
    -------
    list
        The class of each slice (None = left out).
    """
    labels = np.asarray(labels)
    named = {int(k): _class_name(v) for k, v in dict(classes).items()}
    result = []
    for plane in labels:
        ids, counts = np.unique(plane[plane != 0], return_counts=True)
        keep = [
            (c, i) for i, c in zip(ids.tolist(), counts.tolist(), strict=False) if named.get(i) is not None
        ]
        result.append(named[max(keep)[1]] if keep else _class_name(empty))
    return result


def read_slice_classes(csv_path: str | os.PathLike, n_slices: int) -> list[str | None]:
    """Slice classes from a CSV with columns ``slice`` (0-based index along axis 0) and ``label``.

    Slices the CSV does not list get None (left out of training).

    Returns
    -------
    list
        The class of each slice (None = not listed).
    """
    from ...io.tables import read_csv_rows

    csv_path = Path(csv_path)
    header, lines = read_csv_rows(csv_path, required=("slice", "label"))  # BOM accepted, short rows refused
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    classes: list[str | None] = [None] * n_slices
    for line, row in enumerate(rows, start=2):
        try:
            k = int(row["slice"])
        except ValueError as error:
            raise ValueError(
                f"{csv_path} line {line}: slice {row['slice']!r} is not a whole number"
            ) from error
        if not 0 <= k < n_slices:
            raise ValueError(f"{csv_path} line {line}: slice {k} outside 0..{n_slices - 1}")
        label = _class_name(row["label"])
        if classes[k] is not None and label != classes[k]:
            raise ValueError(f"{csv_path} line {line}: slice {k} listed as {classes[k]!r} and {label!r}")
        classes[k] = label
    return classes


def slice_dataset(image, classes, size, class_names=None) -> ImageSet:
    """Slices (axis 0) of ``image`` (a Volume) with a class each (None: left out), resized to ``size``.

    Returns
    -------
    ImageSet
        One resized example per slice with a class.
    """
    array = np.asarray(image.array)
    if array.ndim != 3:
        raise ValueError(f"per-slice classes need a 3D image, got shape {array.shape}")
    values = [_class_name(v) for v in classes]
    if len(values) != array.shape[0]:
        raise ValueError(f"{len(values)} slice classes for {array.shape[0]} slices")
    keep = [k for k, v in enumerate(values) if v is not None]
    if not keep:
        raise ValueError("no slice has a class")
    size = [int(s) for s in size]
    if len(size) != 2:
        raise ValueError(f"slices need a 2D input size, got {size}")
    names = _ordered_names([values[k] for k in keep], class_names)
    images = resize_batch(to_channels_first(array[keep], 2), size)
    pixel = np.asarray(image.spacing[1:]) * np.asarray(array.shape[1:]) / np.asarray(size)
    return ImageSet(
        images,
        [names.index(values[k]) for k in keep],
        names,
        spacing=pixel.tolist(),
        names=[f"slice {k}" for k in keep],
    )


def split_dataset(data: ImageSet, val_fraction: float = 0.25, seed: int = 0) -> dict[str, ImageSet]:
    """Stratified, seeded train/val split: ``round(n * val_fraction)`` (at least one) of each class held out.

    Refuses a set with fewer than two classes or a class with fewer than two examples (one for training, one
    for validation), naming the class.

    Returns
    -------
    dict
        ``train`` and ``val`` :class:`ImageSet` (stratified, seeded).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"the validation fraction must lie between 0 and 1, got {val_fraction}")
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    present = [c for c in range(len(counts)) if counts[c]]
    if len(present) < 2:
        raise ValueError(
            f"training needs at least two classes, found {[data.class_names[c] for c in present]}"
        )
    few = {data.class_names[c]: int(counts[c]) for c in range(len(counts)) if counts[c] < 2}
    if few:
        raise ValueError(
            "too few examples to train and validate: "
            + ", ".join(f"class {name!r} has {n}" for name, n in few.items())
            + " (at least 2 per class are needed, one "
            "for training and one for validation; more make a useful model)"
        )
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(data), bool)
    for c in present:
        members = rng.permutation(np.flatnonzero(data.labels == c))
        n_val = min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        is_val[members[:n_val]] = True

    def subset(keep):
        return ImageSet(
            data.images[keep],
            data.labels[keep],
            list(data.class_names),
            data.spacing,
            [n for n, k in zip(data.names, keep, strict=False) if k] if data.names else [],
            data.patch,
        )

    return {"train": subset(~is_val), "val": subset(is_val)}
