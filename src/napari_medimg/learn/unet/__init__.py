"""U-Net segmentation trained from the user's own annotations (PyTorch, CPU-first; no napari or Qt imports).

* :mod:`.model` — 2D/3D U-Net with configurable width, levels and per-axis pooling;
* :mod:`.data` — channel-first images, normalisation, class-balanced patch sampling;
* :mod:`.train` — Dice + cross-entropy over labelled voxels (0 = unlabelled), augmentation in mm, time budget,
  retraining from previous weights;
* :mod:`.infer` — sliding-window inference with Gaussian overlap blending, slab by slab, progress and cancel;
* :mod:`.files` — safetensors + JSON model folders, written atomically and checked on load.
"""

from .files import LoadedUNet, load_unet, loaded, save_unet
from .infer import Segmentation, segment
from .model import UNet, UNetConfig, build_unet
from .train import UNetTrainConfig, UNetTrainResult, train_unet

__all__ = [
    "LoadedUNet",
    "Segmentation",
    "UNet",
    "UNetConfig",
    "UNetTrainConfig",
    "UNetTrainResult",
    "build_unet",
    "load_unet",
    "loaded",
    "save_unet",
    "segment",
    "train_unet",
]
