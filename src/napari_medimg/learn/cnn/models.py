"""Small ResNet-style classifiers for 2D and 3D images, written for CPU training on small medical images.

The network is a stem convolution followed by ``len(depths)`` stages of basic residual blocks (two 3x3 or
3x3x3 convolutions with batch norm and a projection shortcut when the shape changes); every stage after the
first halves the spatial size and doubles the width (``stem_stride=2`` and ``stem_pool`` each halve it once
more up front, for cheap 3D models).  Global average pooling, dropout and one linear layer
give the class logits, so the network accepts any input size at least ``2 ** (len(depths) - 1)`` pixels wide.
The last stage's activations are kept for Grad-CAM (:mod:`.explain`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

__all__ = ["ModelConfig", "ResNet", "build_model"]


@dataclass
class ModelConfig:
    """Architecture of a :class:`ResNet`; stored in the model file's JSON.

    Attributes
    ----------
    dims, in_channels, n_classes, width : int
        Dimensionality, input channels, classes and first-stage channels.
    depths : list of int
        Residual blocks per stage.
    dropout : float
        Dropout before the classifier.
    stem_stride : int
        Stride of the first convolution (1 or 2).
    stem_pool : bool
        Max-pool after the stem.
    """

    dims: int = 2
    in_channels: int = 1
    n_classes: int = 2
    width: int = 32
    depths: list[int] = field(default_factory=lambda: [1, 1, 1])
    dropout: float = 0.2
    stem_stride: int = 1  # 2 halves the resolution before the first stage (4x/8x cheaper in 2D/3D)
    stem_pool: bool = False  # a 3x3(x3) max-pool of stride 2 after the stem halves it once more
    architecture: str = "resnet"

    def __post_init__(self):
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims!r}")
        if self.architecture != "resnet":
            raise ValueError(f"unknown architecture {self.architecture!r}")
        if not (1 <= int(self.in_channels) <= 16):
            raise ValueError(f"in_channels must be 1..16, got {self.in_channels!r}")
        if not (2 <= int(self.n_classes) <= 1000):
            raise ValueError(f"n_classes must be 2..1000, got {self.n_classes!r}")
        if not (4 <= int(self.width) <= 512):
            raise ValueError(f"width must be 4..512, got {self.width!r}")
        self.depths = [int(d) for d in self.depths]
        if not self.depths or len(self.depths) > 6 or any(d < 1 or d > 8 for d in self.depths):
            raise ValueError(f"depths must be 1..6 stages of 1..8 blocks, got {self.depths!r}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        if not (0.0 <= float(self.dropout) < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _layers(dims: int):
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d
    return nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d


def _max_pool(dims: int) -> nn.Module:
    return (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(3, stride=2, padding=1)


class _Block(nn.Module):
    def __init__(self, dims: int, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        conv, norm, _ = _layers(dims)
        self.conv1 = conv(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(channels_out)
        self.conv2 = conv(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = norm(channels_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                conv(channels_in, channels_out, 1, stride=stride, bias=False), norm(channels_out)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-style 2D or 3D classifier returning logits ``(N, n_classes)``.

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        conv, norm, pool = _layers(config.dims)
        width = config.width
        stem = [
            conv(config.in_channels, width, 3, stride=config.stem_stride, padding=1, bias=False),
            norm(width),
            nn.ReLU(inplace=True),
        ]
        if config.stem_pool:
            stem.append(_max_pool(config.dims))
        self.stem = nn.Sequential(*stem)
        stages = []
        channels = width
        for index, depth in enumerate(config.depths):
            out = width * 2**index
            blocks = []
            for block in range(depth):
                blocks.append(_Block(config.dims, channels, out, 2 if (index > 0 and block == 0) else 1))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = pool(1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(channels, config.n_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last stage (the Grad-CAM target layer)."""
        return self.stages(self.stem(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(torch.flatten(self.pool(features), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def build_model(config: ModelConfig | dict) -> ResNet:
    """A freshly initialised network for ``config`` (use the caller's torch seed for reproducibility).

    Returns
    -------
    ResNet
        A freshly initialised network.
    """
    if isinstance(config, dict):
        config = ModelConfig(**config)
    return ResNet(config)
