"""Labelled image sets for the CNN: MedMNIST-style ``.npz`` files and folders of images with a labels CSV.

An :class:`ImageSet` holds raw (not yet normalised) float32 images channel-first, ``(N, C, H, W)`` or
``(N, C, D, H, W)``, integer labels ``(N,)`` and the class names.  Normalisation is fitted on the training
set (:func:`fit_normalisation`) and stored in the model file, so prediction applies exactly the same mapping.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ImageSet", "load_npz", "load_folder", "fit_normalisation", "normalise", "resize_batch",
           "to_channels_first", "read_image"]

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


@dataclass
class ImageSet:
    """Images ``(N, C, *spatial)`` float32, labels ``(N,)`` int64 and class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    spacing: list[float] | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if self.images.ndim not in (4, 5):
            raise ValueError(f"images must be (N, C, H, W) or (N, C, D, H, W), got shape {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in 0..{len(self.class_names) - 1}, "
                             f"got {self.labels.min()}..{self.labels.max()}")

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
    """Images ``(N, *spatial[, C])`` as float32 ``(N, C, *spatial)``; ``dims`` resolves 2D-RGB vs 3D."""
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


def load_npz(path: str | os.PathLike, dims: int | None = None,
             class_names: list[str] | None = None) -> dict[str, ImageSet]:
    """Read a MedMNIST-style ``.npz`` (``train_images``/``train_labels``/``val_*``[/``test_*``]) by split."""
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
                    raise ValueError(f"{split}_labels must be (N,) or (N, 1) (single-label classes), "
                                     f"got {labels.shape}")
                if not np.issubdtype(labels.dtype, np.integer):
                    raise ValueError(f"{split}_labels must be integers, got {labels.dtype}")
                splits[split] = (archive[f"{split}_images"], labels)
                all_labels.append(labels)
    if "train" not in splits:
        raise ValueError(f"{path} needs train_images and train_labels (found {sorted(keys)})")
    n_classes = int(max(int(labels.max()) for labels in all_labels if len(labels)) + 1)
    names = class_names or [str(i) for i in range(max(n_classes, 2))]
    return {split: ImageSet(to_channels_first(images, dims), labels, list(names), names=[])
            for split, (images, labels) in splits.items()}


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, list[float] | None]:
    """Read one image (NIfTI, DICOM or PNG/JPEG/TIFF) as an array (channels last for RGB) and its spacing."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from ...io.nifti import read_nifti

        volume = read_nifti(path)
        return np.asarray(volume.array), volume.spacing.tolist()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from skimage.io import imread

        array = np.asarray(imread(path))
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]
        return array, None
    from ...io.dicom import read_dicom_file

    volume = read_dicom_file(path)
    return np.asarray(volume.array), volume.spacing.tolist()


def resize_batch(images: np.ndarray, size) -> np.ndarray:
    """Resize channel-first images ``(N, C, *spatial)`` to ``size`` (linear, anti-aliased when shrinking)."""
    from skimage.transform import resize

    size = tuple(int(s) for s in size)
    if tuple(images.shape[2:]) == size:
        return images.astype(np.float32, copy=False)
    out = np.empty(images.shape[:2] + size, np.float32)
    for n in range(images.shape[0]):
        for c in range(images.shape[1]):
            out[n, c] = resize(images[n, c].astype(np.float32), size, order=1, preserve_range=True,
                               anti_aliasing=any(s < t for s, t in zip(size, images.shape[2:])))
    return out


def load_folder(csv_path: str | os.PathLike, size, dims: int | None = None, val_fraction: float = 0.2,
                seed: int = 0) -> dict[str, ImageSet]:
    """Images listed in a CSV (columns ``path``, ``label`` and optionally ``split``) resized to ``size``.

    Paths are relative to the CSV's folder.  Without a ``split`` column a stratified ``val_fraction`` of the
    rows is held out for validation (seeded).  Class names are the sorted distinct labels.
    """
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{csv_path} needs a header with columns 'path' and 'label'")
    size = [int(s) for s in size]
    dims = dims or len(size)
    if len(size) != dims:
        raise ValueError(f"size {size} does not match dims={dims}")
    class_names = sorted({row["label"].strip() for row in rows})
    if len(class_names) < 2:
        raise ValueError(f"{csv_path} lists a single class {class_names}; at least two are needed")
    arrays, labels, spacings, names = [], [], [], []
    channels = None
    for row in rows:
        array, spacing = read_image(csv_path.parent / row["path"].strip())
        if dims == 2 and array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
            spacing = spacing[1:] if spacing else None
        image = to_channels_first(array[None], dims)
        channels = channels or image.shape[1]
        if image.shape[1] != channels:
            raise ValueError(f"{row['path']} has {image.shape[1]} channels, earlier images {channels}")
        arrays.append(resize_batch(image, size)[0])
        labels.append(class_names.index(row["label"].strip()))
        spacings.append(spacing)
        names.append(row["path"].strip())
    images, labels = np.stack(arrays), np.asarray(labels)
    if "split" in rows[0]:
        split_of = np.asarray([row["split"].strip().lower() for row in rows])
    else:
        rng = np.random.default_rng(seed)
        split_of = np.full(len(rows), "train", dtype=object)
        for label in range(len(class_names)):
            members = rng.permutation(np.flatnonzero(labels == label))
            split_of[members[: int(round(len(members) * val_fraction))]] = "val"
    mean_spacing = None
    known = [s for s in spacings if s is not None]
    if known and len(known[0]) == dims:
        mean_spacing = np.mean(known, axis=0).tolist()
    sets = {}
    for split in SPLITS:
        keep = split_of == split
        if keep.any():
            sets[split] = ImageSet(images[keep], labels[keep], class_names, mean_spacing,
                                   [n for n, k in zip(names, keep) if k])
    if "train" not in sets:
        raise ValueError(f"{csv_path} has no training rows")
    return sets


def fit_normalisation(images: np.ndarray, mode: str = "fixed") -> dict:
    """Per-channel mean/std of the training images (``fixed``) or per-image standardisation (``per_image``)."""
    if mode == "per_image":
        return {"mode": "per_image"}
    if mode != "fixed":
        raise ValueError(f"normalisation must be 'fixed' or 'per_image', got {mode!r}")
    axes = (0,) + tuple(range(2, images.ndim))
    mean = images.mean(axis=axes, dtype=np.float64)
    std = images.std(axis=axes, dtype=np.float64)
    return {"mode": "fixed", "mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def normalise(images: np.ndarray, normalisation: dict) -> np.ndarray:
    """Apply a normalisation from :func:`fit_normalisation` to channel-first images."""
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
