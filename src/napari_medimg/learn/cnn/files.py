"""Model files: a folder with ``model.safetensors`` (weights only) and ``config.json`` (everything else).

No pickle is involved anywhere: safetensors holds raw tensors, JSON holds the architecture, input size and
spacing, normalisation, class names, training settings and metrics, and the library versions.  Loading checks
the JSON against the expected schema and every tensor's name, dtype and shape against the architecture, and
refuses anything else (a pickled ``.pt`` renamed to ``.safetensors``, truncated files, wrong shapes, NaNs) with a
:class:`ModelFileError`.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...io.atomic import atomic_path
from .models import ModelConfig, ResNet, build_model

__all__ = ["ModelFileError", "LoadedModel", "save_model", "load_model", "WEIGHTS", "CONFIG", "FORMAT"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "napari-medimg-cnn"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 20 * 1024 * 1024


class ModelFileError(ValueError):
    """A model folder is missing, malformed or does not match its own description."""


@dataclass
class LoadedModel:
    """A network in eval mode with the description it was saved with."""

    model: ResNet
    meta: dict

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def input_size(self) -> list[int]:
        return list(self.meta["input_size"])

    @property
    def normalisation(self) -> dict:
        return self.meta["normalisation"]


def _versions() -> dict:
    return {
        "napari_medimg": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_model(model: ResNet, meta: dict, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``model`` and ``meta`` (see :meth:`TrainResult.meta`) into ``directory``; return it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a folder")
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "model": model.config.to_dict(),
        "versions": _versions(),
    }
    _check_meta(description, directory)
    text = json.dumps(description, indent=2, allow_nan=False, default=_json_default)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS, overwrite=overwrite) as temporary:
        save_file(tensors, temporary, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    with atomic_path(directory / CONFIG, overwrite=overwrite) as temporary:
        Path(temporary).write_text(text + "\n")
    return directory


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_meta(meta, where) -> ModelConfig:
    def fail(message):
        raise ModelFileError(f"{where}: {message}")

    if not isinstance(meta, dict):
        fail("config.json must hold a JSON object")
    if meta.get("format") != FORMAT:
        fail(f"config.json is not a {FORMAT} description (format={meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        fail(
            f"unsupported format_version {meta.get('format_version')!r} (this version reads {FORMAT_VERSION})"
        )
    for key in ("model", "input_size", "normalisation", "class_names"):
        if key not in meta:
            fail(f"config.json lacks {key!r}")
    if not isinstance(meta["model"], dict):
        fail("'model' must be an object")
    try:
        config = ModelConfig(**meta["model"])
    except (TypeError, ValueError) as error:
        fail(f"invalid architecture: {error}")
    names = meta["class_names"]
    if (
        not isinstance(names, list)
        or len(names) != config.n_classes
        or not all(isinstance(n, str) for n in names)
    ):
        fail(f"class_names must be {config.n_classes} strings")
    size = meta["input_size"]
    if (
        not isinstance(size, list)
        or len(size) != config.dims
        or not all(isinstance(s, int) and 2 ** (len(config.depths) - 1) <= s <= 1024 for s in size)
    ):
        fail(f"input_size must be {config.dims} integers within 1..1024, got {size!r}")
    spacing = meta.get("spacing")
    if spacing is not None and (
        not isinstance(spacing, list)
        or len(spacing) != config.dims
        or not all(isinstance(s, (int, float)) and s > 0 for s in spacing)
    ):
        fail(f"spacing must be null or {config.dims} positive numbers, got {spacing!r}")
    patch = meta.get("patch")
    if patch is not None:
        size_mm = patch.get("size_mm") if isinstance(patch, dict) else None
        if (
            not isinstance(size_mm, list)
            or len(size_mm) != config.dims
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in size_mm)
        ):
            fail(
                f"patch must be null or an object with size_mm of {config.dims} positive numbers, got {patch!r}"
            )
    norm = meta["normalisation"]
    if not isinstance(norm, dict) or norm.get("mode") not in ("fixed", "per_image"):
        fail("normalisation must be an object with mode 'fixed' or 'per_image'")
    if norm["mode"] == "fixed":
        for key in ("mean", "std"):
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


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model folder written by :func:`save_model`, checking every part; raises :class:`ModelFileError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"{directory} is not a model folder (expected {CONFIG} and {WEIGHTS} inside)")
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelFileError(f"{directory}: {path.name} is missing")
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{config_path} is implausibly large")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{config_path} is not valid JSON: {error}") from error
    config = _check_meta(meta, directory)
    with open(weights_path, "rb") as handle:
        head = handle.read(8)
    size = weights_path.stat().st_size
    if len(head) < 8 or int.from_bytes(head, "little") > min(size - 8, 100 * 1024 * 1024):
        raise ModelFileError(f"{weights_path} is not a safetensors file (pickled checkpoints are refused)")
    try:
        tensors = load_file(os.fspath(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{weights_path} is not a readable safetensors file: {error}") from error
    model = build_model(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{weights_path} does not match the architecture in {CONFIG}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, reference in expected.items():
        tensor = tensors[name]
        if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
            raise ModelFileError(
                f"{weights_path}: tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}, "
                f"the architecture needs {reference.dtype} {tuple(reference.shape)}"
            )
        if tensor.dtype.is_floating_point and not torch.isfinite(tensor).all():
            raise ModelFileError(f"{weights_path}: tensor {name!r} holds NaN or infinite values")
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return LoadedModel(model.to(device), meta)
