"""U-Net model folders: ``model.safetensors`` (weights only) and ``config.json`` (everything else).

The same safe format as the classifiers (:mod:`napari_medimg.learn.cnn.files`): no pickle; the folder is written
atomically as one unit (a crash leaves the previous model or nothing); loading checks the JSON against the schema
and every tensor's name, dtype, shape and finiteness against the architecture, and refuses anything else with a
:class:`~napari_medimg.learn.cnn.files.ModelFileError`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..cnn.files import (
    ModelFileError,
    _versions,
    read_description,
    read_weights,
    write_model_folder,
)
from .model import UNet, UNetConfig, build_unet

__all__ = ["LoadedUNet", "save_unet", "load_unet", "loaded", "UNET_FORMAT"]

UNET_FORMAT = "napari-medimg-unet"
UNET_FORMAT_VERSION = 1


@dataclass
class LoadedUNet:
    """A U-Net in eval mode with the description it was saved with.

    Parameters
    ----------
    model : UNet
        The network.
    meta : dict
        The ``config.json`` content (patch, spacing, normalisation, class names, training, metadata).
    """

    model: UNet
    meta: dict

    @property
    def config(self) -> UNetConfig:
        """The architecture."""
        return self.model.config

    @property
    def class_names(self) -> list[str]:
        """Names of classes 1..K."""
        return list(self.meta["class_names"])

    @property
    def patch(self) -> list[int]:
        """Training patch size in voxels."""
        return list(self.meta["patch"])

    @property
    def normalisation(self) -> dict:
        """How images are normalised before the network."""
        return self.meta["normalisation"]


def save_unet(model: UNet, meta: dict, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a U-Net folder atomically.

    Parameters
    ----------
    model : UNet
        The trained network.
    meta : dict
        Its description (:meth:`~napari_medimg.learn.unet.train.UNetTrainResult.meta`).
    directory : path
        Folder to create.
    overwrite : bool
        Replace an existing folder (only once the new one is complete).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    napari_medimg.io.errors.OverwriteError
        When ``directory`` exists and ``overwrite`` is false.
    """
    directory = Path(directory)
    description = {
        "format": UNET_FORMAT,
        "format_version": UNET_FORMAT_VERSION,
        **meta,
        "model": model.config.to_dict(),
        "versions": _versions(),
    }
    _check_meta(description, directory)
    return write_model_folder(directory, model, description, overwrite=overwrite, kind="U-Net model")


def _check_meta(meta, where) -> UNetConfig:
    def fail(message):
        raise ModelFileError(f"{where}: {message}")

    if not isinstance(meta, dict):
        fail("config.json must hold a JSON object")
    if meta.get("format") != UNET_FORMAT:
        fail(f"config.json is not a {UNET_FORMAT} description (format={meta.get('format')!r})")
    if meta.get("format_version") != UNET_FORMAT_VERSION:
        fail(f"unsupported format_version {meta.get('format_version')!r}")
    for key in ("model", "patch", "normalisation", "class_names", "spacing"):
        if key not in meta:
            fail(f"config.json lacks {key!r}")
    if not isinstance(meta["model"], dict):
        fail("'model' must be an object")
    try:
        config = UNetConfig(**meta["model"])
    except (TypeError, ValueError) as error:
        fail(f"invalid architecture: {error}")
    names = meta["class_names"]
    if (
        not isinstance(names, list)
        or len(names) != config.n_classes
        or not all(isinstance(n, str) for n in names)
    ):
        fail(f"class_names must be {config.n_classes} strings")
    patch = meta["patch"]
    if (
        not isinstance(patch, list)
        or len(patch) != config.dims
        or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 1024 for p in patch)
        or any(p % d for p, d in zip(patch, config.divisor, strict=True))
    ):
        fail(f"patch must be {config.dims} integers 1..1024, multiples of {config.divisor}, got {patch!r}")
    spacing = meta["spacing"]
    if (
        not isinstance(spacing, list)
        or len(spacing) != 3
        or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in spacing)
    ):
        fail(f"spacing must be 3 positive numbers (z, y, x mm), got {spacing!r}")
    threshold = meta.get("threshold")
    if threshold is not None and (
        not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 < threshold < 1
    ):
        fail(f"threshold must be null or a number in (0, 1), got {threshold!r}")
    norm = meta["normalisation"]
    if not isinstance(norm, dict) or norm.get("mode") not in ("fixed", "per_image", "local"):
        fail("normalisation must be an object with mode 'fixed', 'per_image' or 'local'")
    sigma = norm.get("sigma")
    if norm["mode"] == "local" and not (isinstance(sigma, (int, float)) and 0.5 <= sigma <= 100):
        fail(f"local normalisation needs a sigma of 0.5..100 pixels, got {sigma!r}")
    if norm["mode"] == "fixed":
        for key in ("mean", "std", "low", "high"):
            values = norm.get(key)
            if (
                not isinstance(values, list)
                or len(values) != config.in_channels
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
            ):
                fail(f"normalisation {key} must be {config.in_channels} finite numbers")
        if any(v <= 0 for v in norm["std"]):
            fail("normalisation std must be positive")
    return config


def load_unet(directory: str | os.PathLike) -> LoadedUNet:
    """Load and check a U-Net folder written by :func:`save_unet`.

    Parameters
    ----------
    directory : path
        The model folder.

    Returns
    -------
    LoadedUNet

    Raises
    ------
    ModelFileError
        When anything is missing, malformed or inconsistent (including a classifier folder).
    """
    directory, meta = read_description(directory)
    config = _check_meta(meta, directory)
    model = build_unet(config)
    model.load_state_dict(read_weights(directory, model, meta), strict=True)
    return LoadedUNet(model.eval(), meta)


def loaded(result) -> LoadedUNet:
    """A :class:`LoadedUNet` from a training result (without writing it), for immediate prediction.

    Parameters
    ----------
    result : UNetTrainResult
        From :func:`~napari_medimg.learn.unet.train.train_unet`.

    Returns
    -------
    LoadedUNet
    """
    meta = {"format": UNET_FORMAT, "format_version": UNET_FORMAT_VERSION, **result.meta()}
    _check_meta(meta, "trained model")
    return LoadedUNet(result.model.eval(), meta)
