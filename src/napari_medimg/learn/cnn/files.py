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
from ...io.atomic import atomic_directory
from .models import MAX_MEMBERS, Ensemble, ModelConfig, ResNet, build_model

__all__ = [
    "ModelFileError",
    "LoadedModel",
    "save_model",
    "load_model",
    "WEIGHTS",
    "CONFIG",
    "FORMAT",
    "check_model_size",
    "ensemble_members",
    "check_regular_file",
    "check_weight_values",
    "read_description",
    "read_weights",
    "write_model_folder",
    "model_size",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "napari-medimg-cnn"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 20 * 1024 * 1024


class ModelFileError(ValueError):
    """A model folder is missing, malformed or does not match its own description."""


@dataclass
class LoadedModel:
    """A network in eval mode with the description it was saved with.

    Attributes
    ----------
    model : ResNet
        The network in eval mode.
    meta : dict
        The ``config.json`` description.
    """

    model: ResNet | Ensemble
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


def save_model(
    model: ResNet | Ensemble,
    meta: dict,
    directory: str | os.PathLike,
    overwrite: bool = False,
    *,
    extras: dict | None = None,
) -> Path:
    """Write ``model`` and ``meta`` (see :meth:`TrainResult.meta`) into ``directory`` as one unit; return it.

    The folder is written with :func:`napari_medimg.io.atomic.atomic_directory`: weights, ``config.json``
    (which records the SHA-256 of the weights, checked on load) and ``extras`` appear together or not at
    all, and an existing folder is replaced only with ``overwrite`` and only when napari-medimg wrote it.

    Parameters
    ----------
    model : ResNet or Ensemble
        The trained network (or an ensemble, whose ``meta`` then holds ``"ensemble": {"members": K}``).
    meta : dict
        Its description.
    directory : path-like
        The model folder.
    overwrite : bool, optional
        Replace an earlier model folder.
    extras : dict, optional
        File name → ``writer(path)`` for further files of the same unit (e.g. ``roc_val.png``).

    Returns
    -------
    Path
        ``directory``.
    """
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
    if isinstance(model, Ensemble):
        description["ensemble"] = {**(meta.get("ensemble") or {}), "members": len(model.members)}
    elif "ensemble" in meta:
        raise ValueError("meta describes an ensemble but the model is a single network")
    _check_meta(description, directory)
    return write_model_folder(
        directory, model, description, overwrite=overwrite, kind="CNN model", extras=extras
    )


def write_model_folder(
    directory: Path,
    model: torch.nn.Module,
    description: dict,
    *,
    overwrite: bool,
    kind: str,
    extras: dict | None = None,
) -> Path:
    """Write weights (safetensors), ``config.json`` (with the weights' SHA-256) and extras as one atomic unit.

    Parameters
    ----------
    directory : pathlib.Path
        The model folder.
    model : torch.nn.Module
        The network whose ``state_dict`` is saved.
    description : dict
        The checked description (``format`` and ``format_version`` included).
    overwrite : bool
        Replace an earlier folder napari-medimg wrote.
    kind : str
        What the folder holds, for messages ("CNN model", "U-Net model").
    extras : dict, optional
        File name → ``writer(path)`` for further files of the same unit.

    Returns
    -------
    Path
        ``directory``.
    """
    import hashlib

    from safetensors.torch import save_file

    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {"format": description["format"], "format_version": str(description["format_version"])}
    with atomic_directory(directory, overwrite=overwrite, kind=kind) as temporary:
        save_file(tensors, temporary / WEIGHTS, metadata=metadata)
        description = {
            **description,
            "weights_sha256": hashlib.sha256((temporary / WEIGHTS).read_bytes()).hexdigest(),
        }
        text = json.dumps(description, indent=2, allow_nan=False, default=_json_default)
        (temporary / CONFIG).write_text(text + "\n")
        for name, writer in (extras or {}).items():
            writer(temporary / name)
    return directory


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: the largest network and per-sample activation memory a model file may ask for (refused beyond)
MAX_PARAMETERS = 50_000_000
MAX_ACTIVATION_BYTES = 4 * 1024**3
#: the largest weight magnitude and smallest normalisation std accepted in a model file
MAX_WEIGHT = 1e6
MIN_STD = 1e-6

_ARCHITECTURE_TYPES = {
    "dims": "int",
    "in_channels": "int",
    "n_classes": "int",
    "width": "int",
    "depths": "int list",
    "dropout": "number",
    "stem_stride": "int",
    "stem_pool": "bool",
    "architecture": "str",
}
_TYPE_WORDS = {
    "int": "an integer",
    "int list": "a list of integers",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
}


def _is_type(value, wanted: str) -> bool:
    if wanted == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted == "int list":
        return isinstance(value, list) and all(_is_type(v, "int") for v in value)
    if wanted == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if wanted == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def check_regular_file(path: Path, directory) -> None:
    """Refuse a model file that is missing or not a regular file (a FIFO, ``/dev/zero``, a folder).

    Parameters
    ----------
    path : Path
        ``config.json`` or ``model.safetensors`` of a model folder.
    directory : path-like
        The folder, named in the message.

    Raises
    ------
    ModelFileError
    """
    import stat

    try:
        mode = os.stat(path).st_mode  # follows a symbolic link to what it names
    except FileNotFoundError:
        raise ModelFileError(f"{directory}: {path.name} is missing") from None
    except OSError as error:
        raise ModelFileError(f"{directory}: {path.name} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ModelFileError(f"{directory}: {path.name} is not a regular file (a pipe, device or folder)")


def model_size(config: ModelConfig, input_size) -> tuple[int, int]:
    """(parameter count, activation bytes for one float32 sample) of a :class:`ResNet`, without building it.

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    input_size : sequence of int
        The input's spatial size.

    Returns
    -------
    tuple of int
        Parameters, and bytes of the input plus every layer's output for one sample in float32.
    """
    kernel = 3**config.dims
    width = config.width
    parameters = config.in_channels * width * kernel + 2 * width
    size = [max(1, -(-int(s) // config.stem_stride)) for s in input_size]
    elements = config.in_channels * math.prod(int(s) for s in input_size) + 3 * width * math.prod(size)
    if config.stem_pool:
        size = [max(1, -(-s // 2)) for s in size]
        elements += width * math.prod(size)
    channels = width
    for index, depth in enumerate(config.depths):
        out = width * 2**index
        for block in range(depth):
            stride = 2 if (index > 0 and block == 0) else 1
            size = [max(1, -(-s // stride)) for s in size]
            parameters += channels * out * kernel + out * out * kernel + 4 * out
            if stride != 1 or channels != out:
                parameters += channels * out + 2 * out
            elements += 6 * out * math.prod(size)
            channels = out
    parameters += channels * config.n_classes + config.n_classes
    return parameters, 4 * elements


def ensemble_members(meta: dict, where="the model") -> int:
    """Number of member networks a model description declares (1 for a single network).

    Parameters
    ----------
    meta : dict
        A model folder's description; an ensemble has ``"ensemble": {"members": K, ...}``.
    where : path-like or str, optional
        Named in the message.

    Returns
    -------
    int
        ``K`` for an ensemble, else 1.

    Raises
    ------
    ModelFileError
        When ``ensemble`` is not an object with an integer ``members`` in 2..:data:`MAX_MEMBERS`.
    """
    ensemble = meta.get("ensemble")
    if ensemble is None:
        return 1
    members = ensemble.get("members") if isinstance(ensemble, dict) else None
    if not _is_type(members, "int") or not 2 <= members <= MAX_MEMBERS:
        raise ModelFileError(
            f"{where}: ensemble must be an object with members = 2..{MAX_MEMBERS}, got {ensemble!r:.200}"
        )
    return members


def check_model_size(config: ModelConfig, input_size, where="the model", members: int = 1) -> None:
    """Refuse an architecture whose size or activation memory is beyond the limits, with the numbers.

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    input_size : sequence of int
        The input's spatial size.
    where : path-like or str, optional
        Named in the message.
    members : int, optional
        Networks of this architecture in the file (an ensemble); parameters and activations add up.

    Raises
    ------
    ModelFileError
        Beyond :data:`MAX_PARAMETERS` parameters or :data:`MAX_ACTIVATION_BYTES` per sample.
    """
    parameters, activation = model_size(config, input_size)
    parameters, activation = parameters * members, activation * members
    if parameters > MAX_PARAMETERS:
        raise ModelFileError(
            f"{where}: the architecture has {parameters:,} parameters ({parameters * 4 / 2**30:.1f} GiB); "
            f"the limit is {MAX_PARAMETERS:,}"
        )
    if activation > MAX_ACTIVATION_BYTES:
        raise ModelFileError(
            f"{where}: one {'x'.join(map(str, input_size))} input needs {activation / 2**30:.1f} GiB of "
            f"activations; the limit is {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB"
        )


def check_weight_values(tensors: dict, where) -> None:
    """Refuse finite but broken weights: magnitudes beyond :data:`MAX_WEIGHT`, BatchNorm variance ≤ 0.

    Parameters
    ----------
    tensors : dict
        Name → tensor (a state dict).
    where : path-like or str
        Named in the message.

    Raises
    ------
    ModelFileError
    """
    for name, tensor in tensors.items():
        if not tensor.dtype.is_floating_point or tensor.numel() == 0:
            continue
        largest = float(tensor.detach().abs().max())
        if not math.isfinite(largest) or largest > MAX_WEIGHT:
            raise ModelFileError(
                f"{where}: tensor {name!r} reaches {largest:g}; weights beyond ±{MAX_WEIGHT:g} are refused"
            )
        if name == "input_scale" and float(tensor.min()) <= 0:
            raise ModelFileError(f"{where}: an ensemble member's input scale must be positive")
        if name.endswith("running_var"):
            smallest = float(tensor.min())
            if smallest <= 0:
                raise ModelFileError(
                    f"{where}: BatchNorm {name!r} has a variance of {smallest:g}; a variance must be positive"
                )


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
    for key, value in meta["model"].items():
        wanted = _ARCHITECTURE_TYPES.get(key)
        if wanted is not None and not _is_type(value, wanted):
            fail(f"model {key!r} must be {_TYPE_WORDS[wanted]}, got {value!r}")
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
    members = ensemble_members(meta, where)
    check_model_size(config, size, where, members=members)
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
        if any(v < MIN_STD for v in norm["std"]):
            fail(
                f"normalisation std must be at least {MIN_STD:g} (got {norm['std']}): the images would be scaled out of range"
            )
        if any(abs(v) > MAX_WEIGHT for v in norm["mean"]):
            fail(f"normalisation mean beyond ±{MAX_WEIGHT:g} (got {norm['mean']})")
    return config


def read_description(directory: str | os.PathLike) -> tuple[Path, dict]:
    """The parsed ``config.json`` of a model folder, after checking the folder's files exist and are sane.

    Parameters
    ----------
    directory : path
        The model folder.

    Returns
    -------
    tuple
        ``(folder, description)``; the description is not yet checked against a schema.

    Raises
    ------
    ModelFileError
        For a missing folder or file, an implausibly large, too deeply nested or invalid JSON file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"{directory} is not a model folder (expected {CONFIG} and {WEIGHTS} inside)")
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    for path in (config_path, weights_path):
        check_regular_file(path, directory)
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{config_path} is implausibly large")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{config_path} is not valid JSON: {error}") from error
    except RecursionError as error:
        raise ModelFileError(f"{config_path} is nested too deeply to be a model description") from error
    return directory, meta


def read_weights(directory: Path, model: torch.nn.Module, meta: dict) -> dict:
    """Read ``model.safetensors`` and check it holds exactly ``model``'s tensors, unbroken.

    Checks the SHA-256 recorded in ``meta`` (when present), refuses pickles and truncated files, and compares
    every tensor's name, dtype and shape with the architecture; finite values and :func:`check_weight_values` last.

    Parameters
    ----------
    directory : pathlib.Path
        The model folder.
    model : torch.nn.Module
        A freshly built network of the described architecture.
    meta : dict
        The folder's checked description.

    Returns
    -------
    dict
        The tensors, ready for ``model.load_state_dict``.

    Raises
    ------
    ModelFileError
        For any mismatch.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = directory / WEIGHTS
    expected_hash = meta.get("weights_sha256")
    if expected_hash is not None:
        import hashlib

        if hashlib.sha256(weights_path.read_bytes()).hexdigest() != expected_hash:
            raise ModelFileError(
                f"{weights_path} is not the weights {CONFIG} was saved with (SHA-256 differs): "
                "the folder mixes two models"
            )
    with open(weights_path, "rb") as handle:
        head = handle.read(8)
    size = weights_path.stat().st_size
    if len(head) < 8 or int.from_bytes(head, "little") > min(size - 8, 100 * 1024 * 1024):
        raise ModelFileError(f"{weights_path} is not a safetensors file (pickled checkpoints are refused)")
    try:
        tensors = load_file(os.fspath(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{weights_path} is not a readable safetensors file: {error}") from error
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
    check_weight_values(tensors, weights_path)
    return tensors


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model folder written by :func:`save_model`, checking every part; raises :class:`ModelFileError`.

    An ensemble folder (``"ensemble"`` in ``config.json``) loads as an :class:`~.models.Ensemble`: every
    member's tensors are checked like a single network's, and it predicts like one (mean probabilities).

    Returns
    -------
    LoadedModel
        The checked model.
    """
    directory, meta = read_description(directory)
    config = _check_meta(meta, directory)
    members = ensemble_members(meta, directory)
    model = build_model(config) if members == 1 else Ensemble(config, members)
    model.load_state_dict(read_weights(directory, model, meta), strict=True)
    model.eval()
    return LoadedModel(model.to(device), meta)
