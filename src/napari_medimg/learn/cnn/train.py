"""Training: AdamW, cosine schedule with warm-up, class weighting or balanced sampling, augmentation,
early stopping on validation AUC with the best checkpoint kept, seeded, within a time budget.

Cancellation keeps the best model so far: a ``progress`` callback that raises
:class:`~napari_medimg.progress.Cancelled`, or a ``stop()`` callable returning True, ends training after the
current batch and :func:`train` returns normally with ``result.stopped == "cancelled"``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...progress import Cancelled, ProgressCallback, report
from .data import ImageSet, fit_normalisation, normalise
from .metrics import choose_threshold, classification_metrics
from .models import ModelConfig, ResNet, build_model

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "predict_proba",
    "augment_batch",
    "resolve_device",
    "torch_threads",
]


@dataclass
class TrainConfig:
    """Training hyper-parameters (stored in the model file's JSON).

    Attributes
    ----------
    epochs, batch_size : int
        Epochs at most and images per batch.
    lr, weight_decay : float
        AdamW settings.
    minutes : float or None
        Time budget of the run.
    balance : str
        ``weights``, ``sampler`` or ``none``.
    seed : int
        Seed of weights, order and augmentation.
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    patience: int = 15
    minutes: float | None = None
    seed: int = 0
    balance: str = "weights"  # "weights" (class-weighted loss), "sampler" (balanced batches) or "none"
    label_smoothing: float = 0.0
    normalisation: str = "fixed"  # "fixed" (training mean/std) or "per_image"
    flip_axes: list[int] = field(default_factory=lambda: [-1])  # spatial axes flipped at random (-1 = x)
    rotate_deg: float = 10.0
    scale: float = 0.1
    translate: float = 0.05
    intensity: float = 0.1
    tta: bool = True  # average predictions over the flips in flip_axes at evaluation time
    ema_epochs: float = 1.0  # half-life (epochs) of the weight average that is evaluated; 0 disables it
    device: str = "auto"
    threads: int = 2

    def __post_init__(self):
        if self.balance not in ("weights", "sampler", "none"):
            raise ValueError(f"balance must be 'weights', 'sampler' or 'none', got {self.balance!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")


@dataclass
class TrainResult:
    """A trained classifier with its description (see :meth:`meta`).

    Attributes
    ----------
    model : ResNet
        The best checkpoint.
    metrics : dict
        Its validation metrics.
    threshold : float or None
        Decision threshold chosen on validation data (two classes).
    history : list of dict
        One record per epoch.
    """

    model: ResNet
    model_config: ModelConfig
    train_config: TrainConfig
    normalisation: dict
    class_names: list[str]
    input_size: list[int]
    spacing: list[float] | None
    history: list[dict]
    best_epoch: int
    metrics: dict  # validation metrics of the best checkpoint
    stopped: str  # "epochs", "early_stopping", "time_budget" or "cancelled"
    seconds: float
    samples_per_second: float
    patch: dict | None = None  # how object patches were cut (see :mod:`.patches`), used again to predict
    threshold: float | None = None  # P(class 1) decision threshold chosen on the validation data (binary)
    class_counts: list[int] | None = None  # training examples per class (the minority class is the default
    # target of probability maps)

    def meta(self) -> dict:
        """The JSON-able description stored beside the weights."""
        meta = {
            "model": self.model_config.to_dict(),
            "input_size": list(self.input_size),
            "spacing": self.spacing,
            "normalisation": self.normalisation,
            "class_names": list(self.class_names),
            "training": {
                **asdict(self.train_config),
                "best_epoch": self.best_epoch,
                "stopped": self.stopped,
                "seconds": round(self.seconds, 2),
                "samples_per_second": round(self.samples_per_second, 1),
            },
            "metrics": {"val": self.metrics},
            "history": self.history,
        }
        if self.patch is not None:
            meta["patch"] = self.patch
        if self.class_counts is not None:
            meta["class_counts"] = [int(c) for c in self.class_counts]
        if self.threshold is not None:
            meta["threshold"] = float(self.threshold)
        return meta


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``: CUDA when present, else the CPU).

    Parameters
    ----------
    name : str
        ``auto``, ``cpu``, ``cuda`` …

    Returns
    -------
    torch.device
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Use ``threads`` intra-op threads inside the block, then restore the previous setting.

    Parameters
    ----------
    threads : int or None
        Intra-op threads inside the block (None: unchanged).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _spatial_axes(dims: int, axes) -> list[int]:
    """Tensor dimensions of the spatial axes in ``axes`` (negative = from the end, 0 = first spatial)."""
    return sorted({(a if a < 0 else a - dims) + 2 + dims for a in axes if -dims <= a < dims})


def _rotation(dims: int, angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, dims, dims) from angles (N,) in 2D or (N, 3) in 3D (radians)."""
    if dims == 2:
        c, s = torch.cos(angles), torch.sin(angles)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    result = torch.eye(3).expand(len(angles), 3, 3)
    for axis in range(3):
        c, s = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
        i, j = [a for a in range(3) if a != axis]
        matrix = torch.eye(3).repeat(len(angles), 1, 1)
        matrix[:, i, i], matrix[:, i, j], matrix[:, j, i], matrix[:, j, j] = c, -s, s, c
        result = matrix @ result
    return result


def augment_batch(x: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random flips, rotation/scaling/translation (one affine resampling) and intensity jitter, 2D or 3D.

    Returns
    -------
    torch.Tensor
        The augmented batch.
    """
    n, dims = x.shape[0], x.ndim - 2
    for axis in _spatial_axes(dims, config.flip_axes):
        flip = torch.rand(n, generator=generator) < 0.5
        if flip.any():
            x = torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(axis), x)
    if config.rotate_deg or config.scale or config.translate:
        shape = (n,) if dims == 2 else (n, 3)
        angles = (torch.rand(shape, generator=generator) * 2 - 1) * math.radians(config.rotate_deg)
        zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * config.scale
        shift = (torch.rand(n, dims, generator=generator) * 2 - 1) * 2 * config.translate
        theta = torch.cat([_rotation(dims, angles) / zoom.view(-1, 1, 1), shift.unsqueeze(-1)], dim=2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if config.intensity:
        gain = 1 + (torch.rand(n, generator=generator) * 2 - 1) * config.intensity
        offset = (torch.rand(n, generator=generator) * 2 - 1) * config.intensity
        view = (-1,) + (1,) * (x.ndim - 1)
        x = x * gain.view(view) + offset.view(view)
    return x


def predict_proba(
    model: ResNet,
    images: np.ndarray,
    batch_size: int = 256,
    device: torch.device | None = None,
    tta_axes: list[int] | None = None,
) -> np.ndarray:
    """Class probabilities ``(N, n_classes)`` of normalised channel-first images (eval mode, no gradients).

    Returns
    -------
    numpy.ndarray
        ``(N, n_classes)`` probabilities.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    dims = images.ndim - 2
    flips = [[]] + [[a] for a in _spatial_axes(dims, tta_axes or [])]
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            p = sum(torch.softmax(model(x.flip(f) if f else x), dim=1) for f in flips) / len(flips)
            out.append(p.cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, model.config.n_classes), np.float32)
    return np.concatenate(out)


def _update_average(average: ResNet, model: ResNet, decay: float) -> None:
    """Exponential moving average of parameters and batch-norm statistics (integer buffers copied)."""
    with torch.no_grad():
        for mine, theirs in zip(average.state_dict().values(), model.state_dict().values(), strict=False):
            if mine.dtype.is_floating_point:
                mine.mul_(decay).add_(theirs, alpha=1 - decay)
            else:
                mine.copy_(theirs)


def _schedule(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def train(
    train_set: ImageSet,
    val_set: ImageSet,
    model_config: ModelConfig | dict | None = None,
    config: TrainConfig | None = None,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a classifier on ``train_set``; select the epoch with the best validation AUC.

    ``progress(done, total)`` is called after every batch (total = planned batches); ``on_epoch(record)``
    after every epoch with the history record (epoch, train loss, val loss and metrics, lr, seconds).

    Returns
    -------
    TrainResult
        The best checkpoint with its description.
    """
    config = config or TrainConfig()
    if train_set.dims != val_set.dims or train_set.channels != val_set.channels:
        raise ValueError("training and validation images differ in dimensionality or channels")
    if len(val_set) == 0 or len(train_set) == 0:
        raise ValueError("training and validation sets must not be empty")
    n_classes = len(train_set.class_names)
    if isinstance(model_config, dict):
        model_config = ModelConfig(**model_config)
    model_config = model_config or ModelConfig()
    model_config = ModelConfig(
        **{
            **model_config.to_dict(),
            "dims": train_set.dims,
            "in_channels": train_set.channels,
            "n_classes": n_classes,
        }
    )
    device = resolve_device(config.device)
    start_time = time.monotonic()
    normalisation = fit_normalisation(train_set.images, config.normalisation)
    x_train = torch.from_numpy(normalise(train_set.images, normalisation))
    y_train = torch.from_numpy(train_set.labels)
    x_val = normalise(val_set.images, normalisation)
    counts = np.bincount(train_set.labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"class(es) {np.flatnonzero(counts == 0).tolist()} have no training images")
    class_weights = None
    if config.balance == "weights":
        class_weights = torch.tensor(counts.sum() / (n_classes * counts), dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(config.seed)
    with torch_threads(config.threads if device.type == "cpu" else None):
        torch.manual_seed(config.seed)
        model = build_model(model_config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
        plan = {"epochs": config.epochs}
        warmup = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _schedule(step, warmup, plan["epochs"] * steps_per_epoch)
        )
        budget = config.minutes * 60 if config.minutes else None
        history, best = [], {"score": -math.inf, "state": None, "epoch": 0, "metrics": None}
        stopped, seen, step, since_best = "epochs", 0, 0, 0
        sample_weights = torch.tensor((1.0 / counts)[train_set.labels], dtype=torch.float64)
        evaluated = model
        if config.ema_epochs > 0:
            evaluated = copy.deepcopy(model)
            decay = 0.5 ** (1.0 / (config.ema_epochs * steps_per_epoch))

        def check_stop() -> None:
            if stop is not None and stop():
                raise Cancelled("training")

        try:
            for epoch in range(1, config.epochs + 1):
                if epoch > plan["epochs"]:
                    stopped = "time_budget"
                    break
                model.train()
                if config.balance == "sampler":
                    order = torch.multinomial(
                        sample_weights, len(train_set), replacement=True, generator=generator
                    )
                else:
                    order = torch.randperm(len(train_set), generator=generator)
                losses = []
                for first in range(0, len(order), config.batch_size):
                    index = order[first : first + config.batch_size]
                    if len(index) < 2:  # batch norm needs two samples
                        continue
                    x = augment_batch(x_train[index], config, generator).to(device)
                    y = y_train[index].to(device)
                    loss = F.cross_entropy(
                        model(x), y, weight=class_weights, label_smoothing=config.label_smoothing
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    if evaluated is not model:
                        _update_average(evaluated, model, decay)
                    step += 1
                    seen += len(index)
                    losses.append(float(loss.detach()))
                    check_stop()
                    report(
                        progress,
                        min(step, plan["epochs"] * steps_per_epoch),
                        plan["epochs"] * steps_per_epoch,
                    )
                    if budget is not None and time.monotonic() - start_time > budget:
                        stopped = "time_budget"
                        break
                probabilities = predict_proba(
                    evaluated, x_val, device=device, tta_axes=config.flip_axes if config.tta else None
                )
                metrics = classification_metrics(val_set.labels, probabilities, train_set.class_names)
                val_loss = float(
                    F.nll_loss(
                        torch.log(torch.from_numpy(probabilities).clamp_min(1e-7)),
                        torch.from_numpy(val_set.labels),
                    )
                )
                score = metrics["auc"] if metrics["auc"] is not None else -val_loss
                record = {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)) if losses else float("nan"),
                    "val_loss": val_loss,
                    "val_auc": metrics["auc"],
                    "val_acc": metrics["acc"],
                    "val_balanced_acc": metrics["balanced_acc"],
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": round(time.monotonic() - start_time, 2),
                }
                history.append(record)
                better = score > best["score"] + 1e-6 or (
                    score > best["score"] - 1e-6 and val_loss < best["loss"]
                )
                if better or best["state"] is None:  # ties in AUC go to the lower validation loss
                    best = {
                        "score": max(score, best["score"]),
                        "state": copy.deepcopy(evaluated.state_dict()),
                        "epoch": epoch,
                        "metrics": metrics,
                        "loss": val_loss,
                    }
                    since_best = 0
                else:
                    since_best += 1
                if on_epoch is not None:
                    on_epoch(dict(record, best_epoch=best["epoch"]))
                if stopped == "time_budget":
                    break
                if budget is not None:
                    # fit the cosine schedule into what is left of the budget at the mean cost of an epoch
                    elapsed = time.monotonic() - start_time
                    affordable = int((budget - elapsed) // max(elapsed / epoch, 1e-3))
                    plan["epochs"] = max(epoch, min(config.epochs, epoch + affordable))
                if since_best >= config.patience:
                    stopped = "early_stopping"
                    break
        except Cancelled:
            stopped = "cancelled"
            if best["state"] is None:
                raise
        model.load_state_dict(best["state"])
        model.eval()
        threshold = choose_threshold(
            val_set.labels,
            predict_proba(model, x_val, device=device, tta_axes=config.flip_axes if config.tta else None),
        )
    seconds = time.monotonic() - start_time
    return TrainResult(
        model=model.cpu(),
        model_config=model_config,
        train_config=config,
        normalisation=normalisation,
        class_names=list(train_set.class_names),
        input_size=train_set.input_size,
        spacing=train_set.spacing,
        history=history,
        best_epoch=best["epoch"],
        metrics=best["metrics"],
        stopped=stopped,
        seconds=seconds,
        samples_per_second=seen / max(seconds, 1e-9),
        patch=train_set.patch,
        class_counts=counts.astype(int).tolist(),
        threshold=threshold,
    )
