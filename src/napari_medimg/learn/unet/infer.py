"""Sliding-window inference with overlap blending, slab by slab along z with progress and cancel.

Windows overlap by ``overlap`` of their size; each window's softmax is weighted by a Gaussian centred on the
window (edges of a window count less than its centre) and the weighted sums are divided by the summed weights.
Windows are processed in rows of equal z start; once a row is done every slice in front of the next row's start
is final and written out, so only one slab of class probabilities is held in memory, however long the volume.
A 2D model runs slice by slice on a volume.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ...progress import ProgressCallback, report
from ..cnn.train import torch_threads
from .data import as_channels_first, normalise
from .files import LoadedUNet
from .train import auto_threads, memory_format, use_bfloat16

__all__ = ["Segmentation", "segment", "window_starts", "gaussian_weights"]


@dataclass
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 (or uint16 for > 255 classes), values 1..K, on the image grid (2D in → 2D out).
    probability : numpy.ndarray
        float32 probability of class ``target`` (1..K), or of every class ``(K, …)`` when asked for.
    target : int or None
        The class (1..K) whose probability ``probability`` holds; None for all classes.
    class_names : list of str
        Names of classes 1..K.
    """

    labels: np.ndarray
    probability: np.ndarray
    target: int | None
    class_names: list[str]

    @property
    def target_name(self) -> str:
        """Name of the class whose probability is held (``"all classes"`` for all)."""
        return "all classes" if self.target is None else self.class_names[self.target - 1]


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start positions of windows of ``window`` covering ``size`` with at least ``overlap`` overlap.

    Parameters
    ----------
    size, window : int
        Axis length and window length (a window longer than the axis gives one start, 0).
    overlap : float
        Fraction in [0, 1).

    Returns
    -------
    list of int
    """
    if size <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    count = math.ceil((size - window) / step) + 1
    return sorted({int(round(v)) for v in np.linspace(0, size - window, count)})


def gaussian_weights(shape, sigma_fraction: float = 0.125) -> np.ndarray:
    """Separable Gaussian importance map over a window (maximum 1, floor 1e-3).

    Parameters
    ----------
    shape : sequence of int
        Window size per axis.
    sigma_fraction : float
        Standard deviation as a fraction of the window size.

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``.
    """
    weights = np.ones((), np.float32)
    for size in shape:
        if size == 1:
            axis = np.ones(1, np.float32)
        else:
            x = np.arange(size) - (size - 1) / 2
            axis = np.exp(-0.5 * (x / (sigma_fraction * size)) ** 2).astype(np.float32)
        weights = np.multiply.outer(weights, axis)
    return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def _window(model: LoadedUNet, shape_zyx, window) -> list[int]:
    config = model.config
    divisor = config.divisor
    if window is None:  # inference windows twice the training patch in-plane (fewer seams, same memory scale)
        window = [p * (2 if i >= len(model.patch) - 2 else 1) for i, p in enumerate(model.patch)]
    window = list(window)[-config.dims :]
    spatial = list(shape_zyx[-config.dims :])
    return [
        int(max(d, min(math.ceil(w / d) * d, math.ceil(s / d) * d)))
        for w, s, d in zip(window, spatial, divisor, strict=True)
    ]


def segment(
    model: LoadedUNet,
    image,
    *,
    rgb: bool | None = None,
    target: int | Literal["all"] | None = None,
    overlap: float = 0.5,
    window: list[int] | None = None,
    batch_size: int = 4,
    threads: int | None = None,
    precision: Literal["auto", "float32", "bfloat16"] = "auto",
    tta: bool = False,
    progress: ProgressCallback | None = None,
    stop: Callable[[], bool] | None = None,
) -> Segmentation:
    """Segment ``image`` with a trained U-Net.

    Parameters
    ----------
    model : LoadedUNet
        From :func:`~napari_medimg.learn.unet.files.load_unet` or a training result.
    image : array-like
        2D ``(y, x[, c])`` or 3D ``(z, y, x[, c])``, grey or RGB as the model was trained.
    rgb : bool, optional
        Whether a trailing axis of 3 is colour.
    target : int or "all", optional
        Class (1..K) whose probability to return; default the last class (usually the structure, not the
        background); ``"all"`` returns every class's probability ``(K, …)``.
    overlap : float
        Overlap of neighbouring windows (0.5 = half a window).
    window : list of int, optional
        Window size in voxels; default twice the training patch in-plane.
    batch_size : int
        Windows per forward pass.
    threads : int, optional
        CPU threads for torch (default :func:`~napari_medimg.learn.unet.train.auto_threads`).
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the forward pass (``auto``: bfloat16 where the CPU computes it natively).
    tta : bool
        Average the predictions of the image and its three in-plane flips (4× the time, slightly better).
    progress : callable, optional
        ``progress(done, total)`` per batch of windows; raising :class:`~napari_medimg.progress.Cancelled`
        stops (nothing is returned).
    stop : callable, optional
        Returns True to cancel (raises :class:`~napari_medimg.progress.Cancelled`).

    Returns
    -------
    Segmentation

    Raises
    ------
    ValueError
        For images whose dimensionality or channels the model does not take, or a bad ``target``.
    """
    from ...progress import Cancelled

    config = model.config
    k = config.n_classes
    every = target == "all"
    if not every:
        target = k if target is None else int(target)
        if not 1 <= target <= k:
            raise ValueError(f"target must be a class 1..{k} or 'all', got {target!r}")
    two_d_input = np.ndim(image) == 2 or (
        np.ndim(image) == 3 and (rgb or (rgb is None and config.in_channels > 1))
    )
    array = normalise(as_channels_first(image, config.in_channels, rgb), model.normalisation)
    if config.dims == 3 and array.shape[1] == 1:
        raise ValueError("this is a 3D U-Net; the image is 2D")
    _, depth, height, width = array.shape
    win = _window(model, array.shape[1:], window)
    win3 = [1, *win] if config.dims == 2 else win
    padded_shape = [max(s, w) for s, w in zip((depth, height, width), win3, strict=True)]
    pad = [(0, 0)] + [(0, p - s) for p, s in zip(padded_shape, (depth, height, width), strict=True)]
    array = np.pad(array, pad)
    starts = [window_starts(s, w, overlap if w > 1 else 0.0) for s, w in zip(padded_shape, win3, strict=True)]
    weights = torch.from_numpy(gaussian_weights(win3))
    total = len(starts[0]) * len(starts[1]) * len(starts[2])
    labels_out = np.zeros((depth, height, width), np.uint8 if k < 256 else np.uint16)
    probability_out = np.zeros(((k,) if every else ()) + (depth, height, width), np.float32)
    slab = torch.zeros((k, win3[0], *padded_shape[1:]))
    slab_weight = torch.zeros((win3[0], *padded_shape[1:]))
    slab_start = 0
    done = 0

    def flush(until: int) -> None:
        """Write slices [slab_start, until) of the slab out and shift the slab."""
        nonlocal slab, slab_weight, slab_start
        count = until - slab_start
        if count <= 0:
            return
        p = slab[:, :count] / slab_weight[:count].clamp_min(1e-6)
        z0, z1 = slab_start, min(until, depth)
        if z1 > z0:
            p = p[:, : z1 - z0, :height, :width]
            if threshold is not None and k == 2:
                labels_out[z0:z1] = (p[1] >= threshold).numpy() + 1
            else:
                labels_out[z0:z1] = (p.argmax(0) + 1).numpy()
            probability_out[(slice(None),) * every + (slice(z0, z1),)] = (
                p.numpy() if every else p[target - 1].numpy()
            )
        slab = torch.cat([slab[:, count:], torch.zeros((k, count, *padded_shape[1:]))], dim=1)
        slab_weight = torch.cat([slab_weight[count:], torch.zeros((count, *padded_shape[1:]))], dim=0)
        slab_start = until

    threshold = model.meta.get("threshold")
    net = model.model.eval()
    bf16 = use_bfloat16(precision, torch.device("cpu"))
    flips = [[]] + ([[-1], [-2], [-2, -1]] if tta else [])  # test-time flips of the in-plane axes
    layout = memory_format(config.dims)
    with torch_threads(threads or auto_threads()), torch.no_grad():
        for z in starts[0]:
            flush(z)
            boxes = [(z, y, x) for y in starts[1] for x in starts[2]]
            for first in range(0, len(boxes), batch_size):
                if stop is not None and stop():
                    raise Cancelled("U-Net prediction")
                chunk = boxes[first : first + batch_size]
                batch = np.stack(
                    [array[:, z : z + win3[0], y : y + win3[1], x : x + win3[2]] for z, y, x in chunk]
                )
                x_in = torch.from_numpy(batch)
                if config.dims == 2:
                    x_in = x_in[:, :, 0]
                p = 0
                for axes in flips:
                    flipped = x_in.flip(axes) if axes else x_in
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        logits = net(flipped.contiguous(memory_format=layout)).float()
                    p = p + torch.softmax(logits.flip(axes) if axes else logits, dim=1)
                p = p / len(flips)
                if config.dims == 2:
                    p = p[:, :, None]
                p = p * weights
                for (zz, y, x), pw in zip(chunk, p, strict=True):
                    local = zz - slab_start
                    slab[:, local : local + win3[0], y : y + win3[1], x : x + win3[2]] += pw
                    slab_weight[local : local + win3[0], y : y + win3[1], x : x + win3[2]] += weights
                done += len(chunk)
                report(progress, done, total)
        flush(slab_start + win3[0])
    if two_d_input:
        labels_out, probability_out = labels_out[0], probability_out[..., 0, :, :]
    return Segmentation(labels_out, probability_out, None if every else target, list(model.class_names))
