"""Grad-CAM saliency (Selvaraju et al. 2017) on the last residual stage of a :class:`ResNet`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .models import Ensemble, ResNet

__all__ = ["grad_cam"]


def grad_cam(
    model: ResNet | Ensemble, images: np.ndarray, target: int | np.ndarray | None = None, batch_size: int = 64
) -> np.ndarray:
    """Grad-CAM maps in [0, 1] at the input size, ``(N, *spatial)``, for normalised channel-first images.

    ``target`` is the class explained: one class for all images, one per image, or None for each image's
    predicted class.  Each map is the ReLU of the gradient-weighted sum of the last stage's channels,
    upsampled linearly and divided by its maximum (an all-zero map stays zero).  For an :class:`Ensemble`, the
    mean of its members' maps (of the ensemble's class), divided by its maximum.

    Returns
    -------
    numpy.ndarray
        ``(N, *spatial)`` maps in [0, 1] at the input size.
    """
    if isinstance(model, Ensemble):  # the mean of the members' maps, each on its own normalisation
        x = torch.from_numpy(np.ascontiguousarray(images)).to(next(model.parameters()).device)
        with torch.no_grad():
            if target is None:
                target = model.eval()(x).argmax(dim=1).cpu().numpy()
            inputs = [model.member_input(i, x).cpu().numpy() for i in range(len(model.members))]
        total = sum(grad_cam(member, inputs[i], target, batch_size) for i, member in enumerate(model.members))
        peak = total.reshape(len(total), -1).max(axis=1, initial=0.0).reshape(-1, *([1] * (total.ndim - 1)))
        return (total / np.where(peak > 0, peak, 1.0)).astype(np.float32)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dims = images.ndim - 2
    mode = "bilinear" if dims == 2 else "trilinear"
    maps = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        with torch.enable_grad():
            features = model.features(x).detach().requires_grad_(True)
            logits = model.classify(features)
            if target is None:
                classes = logits.argmax(dim=1)
            else:
                chosen = np.broadcast_to(np.asarray(target), (len(images),))[start : start + len(x)]
                classes = torch.tensor(np.array(chosen, dtype=np.int64), device=device)
            score = logits.gather(1, classes.view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(score, features)
        weights = gradient.mean(dim=tuple(range(2, gradient.ndim)), keepdim=True)
        cam = torch.relu((weights * features).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode=mode, align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).view(-1, *([1] * dims))
        maps.append((cam / torch.where(peak > 0, peak, torch.ones_like(peak))).detach().cpu().numpy())
    model.train(was_training)
    return np.concatenate(maps).astype(np.float32) if maps else np.zeros((0, *images.shape[2:]), np.float32)
