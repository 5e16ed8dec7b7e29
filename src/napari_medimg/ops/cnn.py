"""CNN operations: segment an image with a saved U-Net (``unet_segment``).

The model is given by the path of its folder (``model=``), so a recipe can name the model it applies; loaded
models are cached by path and modification time for batch runs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from ..geometry import Volume
from ..progress import ProgressCallback
from . import register

__all__ = ["unet_segment"]


@lru_cache(maxsize=4)
def _load_unet(path: str, _mtime: float):
    from ..learn.unet import load_unet

    return load_unet(path)


@register("unet_segment", inputs=("image",), output="labels")
def unet_segment(
    image: Volume,
    *,
    model: str,
    output: Literal["labels", "probability"] = "labels",
    target: int | None = None,
    overlap: float = 0.5,
    tta: bool = False,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Segment an image with a U-Net folder from ``medimg unet train`` or the U-Net panel.

    Parameters
    ----------
    image : Volume
        2D or 3D image, grey or RGB, as the model was trained.
    model : str
        Path of the model folder.
    output : {'labels', 'probability'}
        Class labels 1..K, or the probability of class ``target``.
    target : int, optional
        Class 1..K of the probability (default: the last class).
    overlap : float
        Overlap of the sliding windows (0 ≤ overlap < 1).
    tta : bool
        Average over in-plane flips (4× slower).
    progress : callable, optional
        ``progress(done, total)`` per batch of windows.

    Returns
    -------
    Volume
        uint8 labels or a float32 probability image on the image's grid.

    Raises
    ------
    ModelFileError
        When the folder is not a valid U-Net model.
    """
    from ..learn.unet import segment

    path = Path(os.path.expanduser(model))
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {model!r} does not exist")
    loaded = _load_unet(str(path.resolve()), (path / "model.safetensors").stat().st_mtime)
    rgb = bool(image.metadata.get("rgb"))
    result = segment(
        loaded, np.asarray(image.array), rgb=rgb, target=target, overlap=overlap, tta=tta, progress=progress
    )
    spatial = image.spacing[:-1] if rgb else image.spacing
    metadata = {k: v for k, v in image.metadata.items() if k != "rgb"}
    if output == "labels":
        array, metadata["kind"] = result.labels, "labels"
        metadata["class_names"] = {k + 1: name for k, name in enumerate(result.class_names)}
    else:
        array = result.probability
        metadata["quantity"] = f"P({result.target_name})"
    return Volume(array, spatial, image.origin, image.direction, metadata)
