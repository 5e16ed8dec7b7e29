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

__all__ = ["ModelConfig", "ResNet", "Ensemble", "MAX_MEMBERS", "build_model"]


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


#: the most member networks an ensemble model file may hold
MAX_MEMBERS = 20


class Ensemble(nn.Module):
    """Several :class:`ResNet` of one architecture whose class probabilities are averaged.

    The ensemble takes images normalised with its own normalisation (the mean of its members'); each member
    re-maps them to its own (``x * input_scale[i] + input_shift[i]`` per channel) before its forward pass.
    :meth:`forward` returns the logarithm of the mean probabilities, so that ``softmax(forward(x))`` is the mean
    of the members' softmax outputs and the ensemble stands in for one network anywhere.

    Parameters
    ----------
    config : ModelConfig
        The members' architecture.
    n_members : int
        Number of members (2..:data:`MAX_MEMBERS`).

    Raises
    ------
    ValueError
        For a number of members out of range.
    """

    def __init__(self, config: ModelConfig, n_members: int):
        super().__init__()
        if not 2 <= int(n_members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble has 2..{MAX_MEMBERS} members, got {n_members}")
        self.config = config
        self.members = nn.ModuleList(build_model(config) for _ in range(int(n_members)))
        self.register_buffer("input_scale", torch.ones(int(n_members), config.in_channels))
        self.register_buffer("input_shift", torch.zeros(int(n_members), config.in_channels))

    def member_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """``x`` (ensemble-normalised) as member ``index`` was trained to see it."""
        view = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.input_scale[index].view(view) + self.input_shift[index].view(view)

    def member_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax outputs of every member, ``(n_members, N, n_classes)``."""
        return torch.stack(
            [torch.softmax(m(self.member_input(i, x)), dim=1) for i, m in enumerate(self.members)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.member_probabilities(x).mean(dim=0).clamp_min(1e-30))

    @classmethod
    def from_members(cls, members: list[ResNet], normalisations: list[dict]) -> tuple[Ensemble, dict]:
        """An ensemble of trained networks, each with the normalisation it was trained with.

        Parameters
        ----------
        members : list of ResNet
            Networks of one architecture.
        normalisations : list of dict
            Their normalisations (see :func:`~napari_medimg.learn.cnn.data.fit_normalisation`), one mode.

        Returns
        -------
        tuple
            The ensemble and its own normalisation (apply it to the images it is given).

        Raises
        ------
        ValueError
            When the members differ in architecture or normalisation mode.
        """
        config = members[0].config
        if any(m.config != config for m in members):
            raise ValueError("ensemble members must share one architecture")
        modes = {n["mode"] for n in normalisations}
        if len(modes) != 1:
            raise ValueError(f"ensemble members use different normalisation modes {sorted(modes)}")
        ensemble = cls(config, len(members))
        for mine, theirs in zip(ensemble.members, members, strict=True):
            mine.load_state_dict(theirs.state_dict())
        if modes == {"per_image"}:
            return ensemble.eval(), {"mode": "per_image"}
        means = torch.tensor([n["mean"] for n in normalisations], dtype=torch.float64)
        stds = torch.tensor([n["std"] for n in normalisations], dtype=torch.float64)
        mean, std = means.mean(dim=0), stds.mean(dim=0)
        # member i wants (raw - m_i) / s_i = x * s / s_i + (m - m_i) / s_i with x = (raw - m) / s
        ensemble.input_scale.copy_((std / stds).float())
        ensemble.input_shift.copy_(((mean - means) / stds).float())
        return ensemble.eval(), {"mode": "fixed", "mean": mean.tolist(), "std": std.tolist()}
