"""U-Net training from sparse or dense annotations: class-balanced patches, Dice + cross-entropy over the
labelled voxels only, augmentation in mm, AdamW with warm-up and a cosine schedule fitted to a time budget.

Retraining starts from previous weights when ``initial`` is given (the active-learning loop: paint, train,
predict, correct, retrain).  Cancelling (a ``progress`` callback raising
:class:`~napari_medimg.progress.Cancelled` or ``stop()`` returning True) keeps the weights reached so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...progress import Cancelled, ProgressCallback, report
from ..cnn.train import resolve_device, torch_threads
from .data import Annotated, PatchSampler, as_channels_first, fit_normalisation, normalise
from .model import UNet, UNetConfig, build_unet, plan_pooling

__all__ = [
    "UNetTrainConfig",
    "UNetTrainResult",
    "train_unet",
    "segmentation_loss",
    "augment",
    "auto_threads",
]


@dataclass
class UNetTrainConfig:
    """Training settings (stored in the model folder).

    Parameters
    ----------
    iterations : int
        Batches to train at most (``minutes`` may end training earlier).
    minutes : float, optional
        Hard time budget for the whole run; the learning-rate schedule is fitted into it.
    patch : list of int, optional
        Patch size in voxels (``dims`` values); default 96² in 2D, 24 × 64 × 64-ish in 3D (adapted to the
        spacing and the image size).
    batch_size : int
        Patches per batch.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW weight decay.
    dice_weight : float
        Weight of the soft Dice loss added to the cross-entropy.
    rotate_deg : float
        Random in-plane rotation, ± degrees (applied in mm, so anisotropic voxels rotate correctly).
    scale : float
        Random zoom, ± fraction.
    flip : bool
        Random flips along the in-plane axes.
    intensity : float
        Random gain and offset (± fraction of the normalised range).
    normalisation : {"per_image", "fixed", "local"}
        See :func:`~napari_medimg.learn.unet.data.fit_normalisation`.
    seed : int
        Seed of weights, sampling and augmentation.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    threads : int, optional
        CPU threads for torch; default :func:`auto_threads` (one thread on a loaded machine, where torch's
        spinning worker threads make two several times slower than one).
    log_every : int
        Batches between history records (and ``on_step`` calls).
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the network's forward pass; ``auto`` uses bfloat16 autocast where the CPU computes it
        natively (AVX-512 BF16 / AMX: about 2.5× faster, weights stay float32) or on CUDA, else float32.
    """

    iterations: int = 3000
    minutes: float | None = None
    patch: list[int] | None = None
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    rotate_deg: float = 15.0
    scale: float = 0.15
    flip: bool = True
    intensity: float = 0.1
    normalisation: str = "per_image"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    precision: str = "auto"

    def __post_init__(self):
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError("iterations and batch_size must be at least 1")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {self.precision!r}")
        if self.normalisation not in ("per_image", "fixed", "local"):
            raise ValueError(
                f"normalisation must be 'per_image', 'fixed' or 'local', got {self.normalisation!r}"
            )


@dataclass
class UNetTrainResult:
    """A trained U-Net with what is needed to apply it again (see :meth:`meta`).

    Attributes
    ----------
    model : UNet
        The network (eval mode).
    normalisation : dict
        How images were normalised.
    class_names : list of str
        Names of classes 1..K.
    patch : list of int
        Training patch size.
    history : list of dict
        Loss and batch Dice every ``log_every`` steps.
    stopped : str
        ``iterations``, ``time_budget`` or ``cancelled``.
    extra : dict
        More of the description (the decision ``threshold``).
    """

    model: UNet
    train_config: UNetTrainConfig
    normalisation: dict
    class_names: list[str]
    patch: list[int]
    spacing: list[float]
    history: list[dict] = field(default_factory=list)
    stopped: str = "iterations"  # "iterations", "time_budget" or "cancelled"
    seconds: float = 0.0
    iterations: int = 0
    extra: dict = field(default_factory=dict)

    def meta(self) -> dict:
        """The JSON-able description stored beside the weights."""
        return {
            "model": self.model.config.to_dict(),
            "patch": list(self.patch),
            "spacing": list(self.spacing),
            "normalisation": self.normalisation,
            "class_names": list(self.class_names),
            "training": {
                **asdict(self.train_config),
                "stopped": self.stopped,
                "seconds": round(self.seconds, 2),
                "iterations_done": self.iterations,
            },
            "history": self.history,
            **self.extra,
        }


def auto_threads() -> int:
    """CPU threads for torch: up to 2, but 1 when the load average leaves no second core free.

    Returns
    -------
    int
    """
    import os

    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(2, cores - int(load + 0.5)))


def use_bfloat16(precision: str, device: torch.device) -> bool:
    """Whether to run the forward pass under bfloat16 autocast (see :class:`UNetTrainConfig`).

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        The setting.
    device : torch.device
        Where the network runs.

    Returns
    -------
    bool
    """
    if precision != "auto":
        return precision == "bfloat16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def memory_format(dims: int) -> torch.memory_format:
    """The channels-last layout of 2D or 3D activations (faster convolutions on CPU).

    Parameters
    ----------
    dims : int
        2 or 3.

    Returns
    -------
    torch.memory_format
    """
    return torch.channels_last if dims == 2 else torch.channels_last_3d


def _theta(dims: int, n: int, extent_mm, config: UNetTrainConfig, rng: torch.Generator) -> torch.Tensor:
    """Affine matrices for ``F.affine_grid``: in-plane rotation and zoom in mm, in normalised coordinates."""
    angle = (torch.rand(n, generator=rng) * 2 - 1) * math.radians(config.rotate_deg)
    zoom = 1 + (torch.rand(n, generator=rng) * 2 - 1) * config.scale
    c, s = torch.cos(angle), torch.sin(angle)
    matrix = torch.eye(dims).repeat(n, 1, 1)
    matrix[:, -2, -2], matrix[:, -2, -1], matrix[:, -1, -2], matrix[:, -1, -1] = c, -s, s, c
    extent = torch.tensor(extent_mm, dtype=torch.float32)
    matrix = (
        (matrix / extent.view(1, dims, 1)) * extent.view(1, 1, dims) / zoom.view(-1, 1, 1)
    )  # D⁻¹ R D / zoom
    matrix = matrix.flip(1).flip(2)  # affine_grid orders coordinates (x, y[, z])
    return torch.cat([matrix, torch.zeros(n, dims, 1)], dim=2)


def augment(
    x: torch.Tensor, y: torch.Tensor, spacing, config: UNetTrainConfig, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, in-plane rotation and zoom (in mm) and intensity jitter of a batch and its labels.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)`` normalised images.
    y : torch.Tensor
        ``(N, *spatial)`` labels (0 = unlabelled); resampled nearest-neighbour, outside → unlabelled.
    spacing : sequence of float
        Voxel size (per spatial axis) in mm.
    config : UNetTrainConfig
        Augmentation strengths.
    rng : torch.Generator
        Random source.

    Returns
    -------
    tuple of torch.Tensor
        The augmented ``x`` and ``y``.
    """
    n, dims = x.shape[0], x.ndim - 2
    if config.flip:
        for axis in range(x.ndim - 2, x.ndim):  # the in-plane axes
            flip = torch.rand(n, generator=rng) < 0.5
            x = torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(axis), x)
            y = torch.where(flip.view(-1, *([1] * (y.ndim - 1))), y.flip(axis - 1), y)
    if config.rotate_deg or config.scale:
        extent = [s * p for s, p in zip(spacing[-dims:], x.shape[2:], strict=True)]
        theta = _theta(dims, n, extent, config, rng)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        y = y[:, 0].round().long()
    if config.intensity:
        view = (-1,) + (1,) * (x.ndim - 1)
        gain = 1 + (torch.rand(n, generator=rng) * 2 - 1) * config.intensity
        offset = (torch.rand(n, generator=rng) * 2 - 1) * config.intensity
        x = x * gain.view(view) + offset.view(view)
    return x, y


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, dice_weight: float = 1.0):
    """Cross-entropy plus soft Dice over the labelled voxels only.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, K, *spatial)``.
    labels : torch.Tensor
        ``(N, *spatial)`` with 0 = unlabelled (no loss) and 1..K = classes.
    dice_weight : float
        Weight of ``1 - mean Dice`` (mean over the classes present in the batch).

    Returns
    -------
    tuple
        ``(loss, dice)``: the loss tensor and the batch's mean soft Dice (float).
    """
    target = labels - 1  # -1 = unlabelled
    labelled = target >= 0
    if not labelled.any():
        return logits.sum() * 0.0, float("nan")
    ce = F.cross_entropy(logits, target, ignore_index=-1)
    probabilities = torch.softmax(logits, dim=1)
    k = logits.shape[1]
    onehot = F.one_hot(target.clamp_min(0), k).movedim(-1, 1).float()
    mask = labelled.unsqueeze(1).float()
    axes = [0, *range(2, logits.ndim)]
    intersection = (probabilities * onehot * mask).sum(axes)
    total = (probabilities * mask).sum(axes) + (onehot * mask).sum(axes)
    present = (onehot * mask).sum(axes) > 0
    dice = (2 * intersection + 1e-5) / (total + 1e-5)
    mean_dice = dice[present].mean()
    return ce + dice_weight * (1 - mean_dice), float(mean_dice.detach())


def _default_patch(dims: int, spacing, shapes) -> list[int]:
    """A patch of about 96² pixels (2D) or 48 mm-ish cubes of ≤ 64 voxels (3D), no larger than the images."""
    largest = np.max(np.array(shapes), axis=0)  # (z, y, x)
    if dims == 2:
        return [int(min(96, _round_up(largest[1], 16))), int(min(96, _round_up(largest[2], 16)))]
    finest = min(spacing)
    wanted = [max(8, min(64, int(round(64 * finest / s)))) for s in spacing]
    return [int(min(w, _round_up(size, 8))) for w, size in zip(wanted, largest, strict=True)]


def _round_up(value, multiple) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _fit_patch(patch, divisor) -> list[int]:
    return [max(d, _round_up(p, d)) for p, d in zip(patch, divisor, strict=True)]


def train_unet(
    images: list,
    labels: list,
    spacings: list | None = None,
    *,
    dims: int | None = None,
    width: int = 16,
    levels: int = 4,
    config: UNetTrainConfig | None = None,
    initial: UNet | None = None,
    normalisation: dict | None = None,
    class_names: list[str] | None = None,
    rgb: bool | None = None,
    progress: ProgressCallback | None = None,
    on_step: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> UNetTrainResult:
    """Train a U-Net on images and their annotations (0 = unlabelled, 1..K = classes).

    Parameters
    ----------
    images : list of array-like
        2D ``(y, x[, c])`` or 3D ``(z, y, x[, c])`` images (grey or RGB).
    labels : list of array-like
        Integer annotations on the images' grids; at least two classes must be annotated overall.
    spacings : list of sequence of float, optional
        Voxel size of each image in mm (``(dy, dx)`` or ``(dz, dy, dx)``); 1 mm where unknown.
    dims : int, optional
        2 or 3; default 3 for volumes with annotations on several neighbouring slices, else 2.
    width, levels : int
        Architecture (see :class:`~napari_medimg.learn.unet.model.UNetConfig`); ignored with ``initial``.
    config : UNetTrainConfig, optional
        Training settings.
    initial : UNet, optional
        Start from these weights (retraining); its class count must match the annotations.
    normalisation : dict, optional
        The normalisation to keep (with ``initial``); default fitted from the images.
    class_names : list of str, optional
        Names of classes 1..K.
    rgb : bool, optional
        Whether a trailing axis of 3 is colour (napari's ``layer.rgb``).
    progress : callable, optional
        ``progress(done, total)``; raising :class:`~napari_medimg.progress.Cancelled` stops training.
    on_step : callable, optional
        Called with each history record (step, loss, dice, lr, seconds).
    stop : callable, optional
        Returns True to stop after the current batch.

    Returns
    -------
    UNetTrainResult

    Raises
    ------
    ValueError
        Without images, with mismatched grids, or with fewer than two annotated classes.
    """
    config = config or UNetTrainConfig()
    start = time.monotonic()
    if not images or len(images) != len(labels):
        raise ValueError("give one labels image per image (and at least one)")
    channels = None if initial is None else initial.config.in_channels
    items = []
    for index, (image, annotation) in enumerate(zip(images, labels, strict=True)):
        array = as_channels_first(image, channels, rgb)
        channels = array.shape[0]
        annotation = np.asarray(annotation)
        if annotation.dtype.kind == "f":
            annotation = np.rint(annotation)
        if annotation.size == np.prod(array.shape[1:]):
            annotation = annotation.reshape(array.shape[1:])
        spacing = [1.0, 1.0, 1.0]
        if spacings is not None and spacings[index] is not None:
            given = [float(s) for s in spacings[index]]
            spacing[-len(given) :] = given[-3:]
        items.append(Annotated(array, annotation.astype(np.int32), tuple(spacing)))
    n_classes = int(max(int(item.labels.max()) for item in items))
    if initial is not None:
        if n_classes > initial.config.n_classes:
            raise ValueError(
                f"the annotations use class {n_classes}; the previous model knows {initial.config.n_classes}"
            )
        n_classes = initial.config.n_classes
    present = sorted(set().union(*(np.unique(item.labels).tolist() for item in items)) - {0})
    if len(present) < 2:
        raise ValueError(
            "annotate at least two classes (e.g. 1 = background, 2 = structure); 0 is unlabelled"
            + (f"; found only class {present[0]}" if present else "; nothing is annotated")
        )
    if dims is None:
        dims = 2 if initial is None else initial.config.dims
        if initial is None and all(item.labels.shape[0] > 1 for item in items):
            annotated_slices = [
                np.flatnonzero(item.labels.reshape(len(item.labels), -1).any(1)) for item in items
            ]
            dims = 3 if all(len(s) > 1 and np.min(np.diff(s)) <= 2 for s in annotated_slices) else 2
    if dims == 3 and any(item.labels.shape[0] == 1 for item in items):
        raise ValueError("a 3D U-Net needs volumes; these images are 2D")
    spacing = list(np.median([item.spacing for item in items], axis=0))
    if initial is None:
        pooling = plan_pooling(spacing[-dims:], levels, dims) if dims == 3 else []
        model_config = UNetConfig(
            dims=dims, in_channels=channels, n_classes=n_classes, width=width, levels=levels, pooling=pooling
        )
    else:
        model_config = initial.config
    patch = config.patch or _default_patch(
        dims, spacing[-dims:] if dims == 3 else spacing, [i.labels.shape for i in items]
    )
    if len(patch) != dims:
        raise ValueError(f"a {dims}D U-Net needs a patch size of {dims} values, got {list(patch)}")
    patch = _fit_patch(list(patch), model_config.divisor)
    normalisation = normalisation or fit_normalisation([item.image for item in items], config.normalisation)
    items = [Annotated(normalise(item.image, normalisation), item.labels, item.spacing) for item in items]
    sampler = PatchSampler(items, [1, *patch] if dims == 2 else patch, n_classes, seed=config.seed)
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    stopped, step = "iterations", 0
    with torch_threads((config.threads or auto_threads()) if device.type == "cpu" else None):
        torch.manual_seed(config.seed)
        model = build_unet(model_config)
        if initial is not None:
            model.load_state_dict(initial.state_dict())
        layout = memory_format(dims)
        bf16 = use_bfloat16(config.precision, device)
        model = model.to(device, memory_format=layout).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        budget = config.minutes * 60 if config.minutes else None
        warmup = min(50, max(1, config.iterations // 20))
        losses, dices = [], []
        try:
            while step < config.iterations:
                elapsed = time.monotonic() - start
                fraction = step / config.iterations
                if budget is not None:
                    fraction = max(fraction, elapsed / budget)
                    if elapsed >= budget:
                        stopped = "time_budget"
                        break
                factor = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * fraction))
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * max(factor, 0.01)
                x, y = sampler.sample(config.batch_size)
                x, y = torch.from_numpy(x), torch.from_numpy(y)
                if dims == 2:
                    x, y = x[:, :, 0], y[:, 0]
                x, y = augment(x, y, spacing[-dims:], config, generator)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x.to(device).contiguous(memory_format=layout))
                loss, dice = segmentation_loss(logits.float(), y.to(device), config.dice_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(float(loss.detach()))
                dices.append(dice)
                if stop is not None and stop():
                    raise Cancelled("U-Net training")
                done = int(
                    1000 * max(step / config.iterations, (time.monotonic() - start) / budget if budget else 0)
                )
                report(progress, min(done, 1000), 1000)
                if step % config.log_every == 0 or step == config.iterations:
                    record = {
                        "step": step,
                        "loss": float(np.mean(losses)),
                        "dice": float(np.nanmean(dices)) if not np.all(np.isnan(dices)) else None,
                        "lr": optimizer.param_groups[0]["lr"],
                        "seconds": round(time.monotonic() - start, 2),
                    }
                    losses, dices = [], []
                    history.append(record)
                    if on_step is not None:
                        on_step(record)
        except Cancelled:
            stopped = "cancelled"
        model = model.cpu().to(memory_format=torch.contiguous_format).eval()
        threshold = _choose_threshold(model, sampler, dims) if n_classes == 2 and step else None
    return UNetTrainResult(
        model=model,
        train_config=config,
        normalisation=normalisation,
        class_names=list(class_names) if class_names else [f"class {k}" for k in range(1, n_classes + 1)],
        patch=patch,
        spacing=[float(s) for s in spacing],
        history=history,
        stopped=stopped,
        seconds=time.monotonic() - start,
        iterations=step,
        extra={"threshold": threshold},
    )


def _choose_threshold(model: UNet, sampler: PatchSampler, dims: int, patches: int = 48) -> float | None:
    """The P(class 2) threshold with the best Dice of class 2 on unbiased patches of the training data.

    Class-balanced sampling shows the rare class far more often than it occurs, so the network's arg-max
    over-segments it; a threshold chosen on patches drawn without balancing corrects that prior shift.
    """
    x, y = sampler.sample(patches, balanced=False)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    if dims == 2:
        x, y = x[:, :, 0], y[:, 0]
    with torch.no_grad():
        p = torch.cat([torch.softmax(model(x[i : i + 8]), 1)[:, 1] for i in range(0, len(x), 8)])
    labelled = y > 0
    p, truth = p[labelled], y[labelled] == 2
    if not truth.any() or truth.all():
        return None
    candidates = np.round(np.arange(0.1, 0.91, 0.05), 2)
    scores = [float(2 * (truth & (p >= t)).sum() / (truth.sum() + (p >= t).sum())) for t in candidates]
    return float(candidates[int(np.argmax(scores))])
