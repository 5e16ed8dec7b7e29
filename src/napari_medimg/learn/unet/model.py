"""A 2D or 3D U-Net with configurable width and depth, small by default so that it trains on a CPU.

Each level is two 3×3(×3) convolutions with batch norm and ReLU; the encoder halves the grid between levels
(per axis: the pooling of each level is stored in the configuration, so thick-slice volumes are pooled in-plane
only until their voxels are about isotropic), the decoder doubles it back with transposed convolutions and
concatenates the encoder's features (skip connections).  A 1×1 convolution gives one logit per class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

__all__ = ["UNetConfig", "UNet", "build_unet", "plan_pooling"]


def plan_pooling(spacing, levels: int, dims: int) -> list[list[int]]:
    """Pooling factors (1 or 2 per axis) of each of the ``levels - 1`` downsamplings.

    An axis is pooled when its current spacing is at most twice the finest current spacing (the nnU-Net rule),
    so a 2.5 × 0.7 × 0.7 mm CT is pooled in-plane first and along z once the in-plane voxels have grown.

    Parameters
    ----------
    spacing : sequence of float or None
        Voxel size of the training images in mm (``dims`` values); None means isotropic.
    levels : int
        Levels of the U-Net (1 + the number of downsamplings).
    dims : int
        2 or 3.

    Returns
    -------
    list of list of int
        ``levels - 1`` lists of ``dims`` factors.
    """
    current = [1.0] * dims if spacing is None else [float(s) for s in spacing][-dims:]
    plan = []
    for _ in range(levels - 1):
        finest = min(current)
        factors = [2 if s <= 2 * finest + 1e-9 else 1 for s in current]
        current = [s * f for s, f in zip(current, factors, strict=True)]
        plan.append(factors)
    return plan


@dataclass
class UNetConfig:
    """Architecture of a :class:`UNet`; stored in the model folder's ``config.json``.

    Parameters
    ----------
    dims : int
        2 (slices or 2D images) or 3 (volumes).
    in_channels : int
        Image channels (1 grey, 3 RGB).
    n_classes : int
        Output classes (the labels 1..K of the annotations).
    width : int
        Channels of the first level; each level doubles them.
    levels : int
        Resolution levels (1 + the number of downsamplings).
    pooling : list of list of int
        Pooling factors per downsampling and axis (see :func:`plan_pooling`); empty = 2 on every axis.
    dropout : float
        Dropout before the last convolution.
    """

    dims: int = 2
    in_channels: int = 1
    n_classes: int = 2
    width: int = 16
    levels: int = 4
    pooling: list[list[int]] = field(default_factory=list)
    dropout: float = 0.0
    architecture: str = "unet"

    def __post_init__(self):
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims!r}")
        if self.architecture != "unet":
            raise ValueError(f"unknown architecture {self.architecture!r}")
        if not (1 <= int(self.in_channels) <= 16):
            raise ValueError(f"in_channels must be 1..16, got {self.in_channels!r}")
        if not (2 <= int(self.n_classes) <= 255):
            raise ValueError(f"n_classes must be 2..255, got {self.n_classes!r}")
        if not (2 <= int(self.width) <= 256):
            raise ValueError(f"width must be 2..256, got {self.width!r}")
        if not (1 <= int(self.levels) <= 7):
            raise ValueError(f"levels must be 1..7, got {self.levels!r}")
        if not self.pooling:
            self.pooling = [[2] * self.dims for _ in range(self.levels - 1)]
        if (
            not isinstance(self.pooling, list)
            or len(self.pooling) != self.levels - 1
            or not all(
                isinstance(p, list) and len(p) == self.dims and all(f in (1, 2) for f in p)
                for p in self.pooling
            )
        ):
            raise ValueError(f"pooling must be {self.levels - 1} lists of {self.dims} factors 1 or 2")
        if not (0.0 <= float(self.dropout) < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def divisor(self) -> list[int]:
        """Input sizes must be multiples of these (per axis) for the skip connections to line up."""
        divisor = [1] * self.dims
        for factors in self.pooling:
            divisor = [d * f for d, f in zip(divisor, factors, strict=True)]
        return divisor

    def to_dict(self) -> dict:
        """The configuration as a JSON-able dict."""
        return asdict(self)


def _double_conv(dims: int, channels_in: int, channels_out: int) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return nn.Sequential(
        conv(channels_in, channels_out, 3, padding=1, bias=False),
        norm(channels_out),
        nn.ReLU(inplace=True),
        conv(channels_out, channels_out, 3, padding=1, bias=False),
        norm(channels_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net returning class logits ``(N, n_classes, *spatial)`` for inputs ``(N, in_channels, *spatial)``.

    Parameters
    ----------
    config : UNetConfig
        The architecture.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        dims, width = config.dims, config.width
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        channels = [width * 2**level for level in range(config.levels)]
        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        previous = config.in_channels
        for level, out in enumerate(channels):
            self.encoders.append(_double_conv(dims, previous, out))
            if level < config.levels - 1:
                factors = tuple(config.pooling[level])
                self.pools.append(pool(factors, stride=factors))
            previous = out
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(config.levels - 1)):
            factors = tuple(config.pooling[level])
            self.ups.append(up(channels[level + 1], channels[level], factors, stride=factors))
            self.decoders.append(_double_conv(dims, 2 * channels[level], channels[level]))
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.head = conv(channels[0], config.n_classes, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` (spatial sizes multiples of ``config.divisor``)."""
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for up, decoder in zip(self.ups, self.decoders, strict=True):
            x = decoder(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(self.dropout(x))


def build_unet(config: UNetConfig | dict) -> UNet:
    """A freshly initialised :class:`UNet` (seed torch first for reproducibility).

    Parameters
    ----------
    config : UNetConfig or dict
        The architecture.

    Returns
    -------
    UNet
    """
    if isinstance(config, dict):
        config = UNetConfig(**config)
    return UNet(config)
