"""Multi-scale filter features for the pixel classifier, with every scale in mm.

For each channel (grey, or each of R, G, B) and each scale σ (mm, converted to pixels per axis from the
spacing, so anisotropic voxels are filtered isotropically in the world):

* ``gaussian`` — Gaussian smoothing;
* ``gradient`` — gradient magnitude (scale-normalised, σ·|∇G|);
* ``laplacian`` — Laplacian of Gaussian (σ²·ΔG);
* ``hessian`` — the Hessian eigenvalues, ascending (σ²·λ);
* ``vesselness`` — Frangi-style tubularity from those eigenvalues, signed by polarity (positive for dark
  tubes on a bright background, negative for bright tubes);
* ``structure`` — eigenvalues of the structure tensor (gradient at σ, window 2σ);
* ``texture`` — local standard deviation in a Gaussian window of σ;
* ``tophat`` — morphological residues in a box of half-width 2σ: closing − image (dark thin structures such as
  vessels in a photograph) and image − opening (bright ones);
* ``line`` — line detector: the window mean (half-width 3σ) minus the lowest mean along a line of half-length
  3σ through the pixel over 12 in-plane orientations (13 directions in 3D), and the highest line mean minus the
  window mean (dark and bright lines);

plus the raw channel.  2D images give 2D filters; 3D volumes 3D filters.  :func:`compute_features` works
on whatever it is given (a slice, a slab with a halo, a whole image); :func:`halo_pixels` says how many
slices a slab needs on each side so that its central slices are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_SIGMAS_MM",
    "FEATURE_GROUPS",
    "FeatureSettings",
    "feature_names",
    "compute_features",
    "halo_pixels",
    "normalise",
]

#: the filter families of :class:`FeatureSettings.groups`
FEATURE_GROUPS = (
    "gaussian", "gradient", "laplacian", "hessian", "vesselness", "structure", "texture", "tophat", "line",
)  # fmt: skip

#: the default families: the Laplacian (the Hessian's trace) and the structure tensor are left out — with them the
#: leave-one-image-out Dice on DRIVE 21–24 was no better (0.775 vs 0.772) and the 512 × 512 preview twice as slow
DEFAULT_GROUPS = ("gaussian", "gradient", "hessian", "vesselness", "texture", "tophat", "line")
#: the default scales in mm
DEFAULT_SIGMAS_MM = (1.0, 2.0, 4.0)

_TRUNCATE = 3.0


@dataclass(frozen=True)
class FeatureSettings:
    """How pixel features are computed; stored in every pixel-classifier bundle.

    Parameters
    ----------
    sigmas_mm : tuple of float
        Filter scales in mm.
    groups : tuple of str
        Filter families, a subset of :data:`FEATURE_GROUPS`.
    raw : bool
        Include the unfiltered channel(s).
    normalise : {'auto', 'none', 'image'}
        ``'image'`` rescales each channel by its own robust statistics (median, 1st–99th percentile range) so
        that photographs of different exposure look alike; ``'none'`` keeps absolute values (HU); ``'auto'``
        (default) is resolved by :func:`~napari_medimg.learn.pixels.train_pixel_classifier` from the training
        images — ``'image'`` for photographs (RGB, or no physical pixel spacing), ``'none'`` otherwise — and
        the resolved value is what a bundle stores (:func:`compute_features` treats ``'auto'`` as ``'none'``).
    """

    sigmas_mm: tuple[float, ...] = DEFAULT_SIGMAS_MM
    groups: tuple[str, ...] = DEFAULT_GROUPS
    raw: bool = True
    normalise: str = "auto"

    def __post_init__(self):
        sigmas = tuple(float(s) for s in self.sigmas_mm)
        if not sigmas or any(not math.isfinite(s) or s <= 0 for s in sigmas):
            raise ValueError(f"sigmas_mm must be positive numbers, got {list(self.sigmas_mm)}")
        unknown = sorted(set(self.groups) - set(FEATURE_GROUPS))
        if unknown:
            raise ValueError(
                f"unknown feature group(s) {', '.join(unknown)}; valid: {', '.join(FEATURE_GROUPS)}"
            )
        if not self.groups and not self.raw:
            raise ValueError("no features: give at least one group or raw=True")
        if self.normalise not in ("auto", "none", "image"):
            raise ValueError(f"normalise is 'auto', 'none' or 'image', got {self.normalise!r}")
        object.__setattr__(self, "sigmas_mm", sigmas)
        object.__setattr__(self, "groups", tuple(g for g in FEATURE_GROUPS if g in self.groups))

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        data = asdict(self)
        data["sigmas_mm"], data["groups"] = list(self.sigmas_mm), list(self.groups)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        """Settings from :meth:`to_dict` output."""
        return cls(
            sigmas_mm=tuple(data["sigmas_mm"]),
            groups=tuple(data["groups"]),
            raw=bool(data["raw"]),
            normalise=str(data.get("normalise", "none")),
        )


def _per_group(ndim: int) -> dict[str, int]:
    return {
        "gaussian": 1,
        "gradient": 1,
        "laplacian": 1,
        "hessian": ndim,
        "vesselness": 1,
        "structure": ndim,
        "texture": 1,
        "tophat": 2,
        "line": 2,
    }


def feature_names(settings: FeatureSettings, *, ndim: int, channels: Sequence[str] = ("grey",)) -> list[str]:
    """Names of the feature columns, in the order :func:`compute_features` stacks them.

    Parameters
    ----------
    settings : FeatureSettings
        The feature settings.
    ndim : int
        Spatial dimensions (2 or 3).
    channels : sequence of str
        Channel names (``('grey',)`` or ``('red', 'green', 'blue')``).

    Returns
    -------
    list of str
        e.g. ``green_hessian2_sigma2mm``.
    """
    counts = _per_group(ndim)
    names = []
    for channel in channels:
        if settings.raw:
            names.append(f"{channel}_raw")
        for sigma in settings.sigmas_mm:
            for group in settings.groups:
                for k in range(counts[group]):
                    suffix = f"{k + 1}" if counts[group] > 1 else ""
                    names.append(f"{channel}_{group}{suffix}_sigma{sigma:g}mm")
    return names


def halo_pixels(settings: FeatureSettings, spacing_mm: float) -> int:
    """Slices needed on each side of a slab (axis spacing ``spacing_mm``) for exact features in its middle.

    Parameters
    ----------
    settings : FeatureSettings
        The feature settings.
    spacing_mm : float
        Spacing of the slab axis in mm.

    Returns
    -------
    int
        Halo in slices.
    """
    widest = max(settings.sigmas_mm) * (2.0 if "structure" in settings.groups else 1.0)
    halo = int(math.ceil(_TRUNCATE * widest / spacing_mm)) + 1
    if "tophat" in settings.groups:  # an opening reaches twice the box half-width
        halo = max(halo, 2 * _half_width(2.0 * max(settings.sigmas_mm), spacing_mm) + 1)
    return halo


def _half_width(length_mm: float, spacing_mm: float) -> int:
    """Half-width in pixels (at least 1) of a window of half-width ``length_mm``."""
    return max(1, int(math.ceil(length_mm / spacing_mm - 1e-6)))


def normalise(channel: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """``(channel - median) / (p99 - p1)`` with statistics from ``sample`` (default: the channel itself).

    Parameters
    ----------
    channel : numpy.ndarray
        One channel.
    sample : numpy.ndarray, optional
        Values to take the statistics from (a strided sample of a whole volume when ``channel`` is a slab).

    Returns
    -------
    numpy.ndarray
        float32 array.
    """
    values = np.asarray(channel if sample is None else sample, np.float32).ravel()
    low, median, high = np.percentile(values, (1, 50, 99)) if values.size else (0.0, 0.0, 1.0)
    scale = float(high - low) or 1.0
    return ((np.asarray(channel, np.float32) - np.float32(median)) / np.float32(scale)).astype(np.float32)


def _eigenvalues(elements: list[np.ndarray], ndim: int) -> list[np.ndarray]:
    """Ascending eigenvalues of symmetric matrices given by their upper-triangle element images."""
    if ndim == 2:
        a, b, c = elements
        mean = (a + c) * 0.5
        root = np.sqrt(((a - c) * 0.5) ** 2 + b**2)
        return [mean - root, mean + root]
    a, b, c, d, e, f = elements  # 00 01 02 11 12 22
    matrix = np.stack([np.stack([a, b, c], -1), np.stack([b, d, e], -1), np.stack([c, e, f], -1)], -2)
    values = np.linalg.eigvalsh(matrix)
    return [np.ascontiguousarray(values[..., k]) for k in range(3)]


def _vesselness(eigen: list[np.ndarray], ndim: int) -> np.ndarray:
    """Frangi-style tubularity (eigenvalue ratios times the Hessian norm), signed by the largest eigenvalue."""
    eps = np.float32(1e-10)
    if ndim == 2:  # two eigenvalues: order by magnitude without a sort
        first_smaller = np.abs(eigen[0]) <= np.abs(eigen[1])
        smallest = np.where(first_smaller, eigen[0], eigen[1])
        largest = np.where(first_smaller, eigen[1], eigen[0])
        structure = np.sqrt(smallest**2 + largest**2)  # local (no image-wide constant): slab-safe
        blob = smallest / (np.abs(largest) + eps)
        value = np.exp(-(blob**2) / (2 * 0.5**2)) * structure
        return (np.sign(largest) * value).astype(np.float32)
    stacked = np.stack(eigen, -1)
    order = np.argsort(np.abs(stacked), axis=-1)
    by_magnitude = np.take_along_axis(stacked, order, axis=-1)
    largest = by_magnitude[..., -1]
    structure = np.sqrt(np.sum(by_magnitude**2, axis=-1))
    plate = np.abs(by_magnitude[..., 1]) / (np.abs(largest) + eps)
    blob = np.abs(by_magnitude[..., 0]) / (np.sqrt(np.abs(by_magnitude[..., 1] * largest)) + eps)
    value = (1 - np.exp(-(plate**2) / 0.5)) * np.exp(-(blob**2) / 0.5) * structure
    value = np.where(np.sign(by_magnitude[..., 1]) == np.sign(largest), value, 0.0)
    return (np.sign(largest) * value).astype(np.float32)


def _tophat(data: np.ndarray, sigma_mm: float, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closing − image and image − opening in a box of half-width 2σ (flat, separable min/max filters)."""
    size = tuple(2 * _half_width(2.0 * sigma_mm, step) + 1 for step in spacing)
    closing = ndimage.grey_closing(data, size=size)
    opening = ndimage.grey_opening(data, size=size)
    return closing - data, data - opening


def _directions(ndim: int) -> list[np.ndarray]:
    """Unit vectors: 12 orientations over 180° in-plane, or the 13 lattice directions in 3D."""
    if ndim == 2:
        angles = np.arange(12) * np.pi / 12
        return [np.array([math.sin(a), math.cos(a)]) for a in angles]
    vectors = []
    for vector in np.ndindex(3, 3, 3):
        v = np.array(vector) - 1
        first = v[np.flatnonzero(v)[0]] if v.any() else 0
        if first > 0:  # one of each ± pair
            vectors.append(v / np.linalg.norm(v))
    return vectors


def _shifted_mean(
    padded: np.ndarray, pad: int, data: np.ndarray, offsets: list[tuple[int, ...]]
) -> np.ndarray:
    """Mean of ``data`` shifted by integer ``offsets`` (at most ``pad``), read from ``data`` edge-padded by ``pad``."""
    total = np.zeros_like(data)
    for offset in offsets:
        total += padded[tuple(slice(pad + o, pad + o + n) for o, n in zip(offset, data.shape, strict=True))]
    return total / np.float32(len(offsets))


def _line(data: np.ndarray, sigma_mm: float, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dark and bright line responses: window mean − min line mean, max line mean − window mean."""
    reach = 3.0 * sigma_mm
    window = ndimage.uniform_filter(
        data, size=tuple(2 * _half_width(reach, step) + 1 for step in spacing), mode="nearest"
    )
    lowest = highest = None
    steps = max(2, int(math.ceil(reach / float(np.min(spacing)))))
    lines = []
    for direction in _directions(data.ndim):
        points = np.linspace(-reach, reach, 2 * steps + 1)[:, None] * direction[None] / spacing[None]
        lines.append(sorted({tuple(int(v) for v in np.rint(point)) for point in points}))
    pad = max(abs(o) for offsets in lines for offset in offsets for o in offset)
    padded = np.pad(data, pad, mode="edge")
    for offsets in lines:
        mean = _shifted_mean(padded, pad, data, offsets)
        lowest = mean if lowest is None else np.minimum(lowest, mean)
        highest = mean if highest is None else np.maximum(highest, mean)
    return window - lowest, highest - window


def compute_features(
    image: np.ndarray,
    *,
    spacing: Sequence[float],
    settings: FeatureSettings | None = None,
    keep: tuple[int, int] | None = None,
    sample: np.ndarray | None = None,
) -> np.ndarray:
    """The feature stack of one grey channel.

    Parameters
    ----------
    image : numpy.ndarray, 2D or 3D
        One channel.
    spacing : sequence of float
        Pixel/voxel spacing in mm, one value per axis.
    settings : FeatureSettings, optional
        Defaults to :class:`FeatureSettings()`.
    keep : (int, int), optional
        Keep only slices ``keep[0]:keep[1]`` along axis 0 (the middle of a slab with a halo); filters run on
        the whole input, the stack holds only the kept part.
    sample : numpy.ndarray, optional
        Statistics sample for ``normalise='image'`` (default: ``image``).

    Returns
    -------
    numpy.ndarray, float32
        ``image.shape`` (cropped by ``keep``) + ``(n_features,)``, columns as :func:`feature_names`.

    Raises
    ------
    ValueError
        When ``spacing`` does not match the image's dimensions.
    """
    planes = _feature_planes(image, spacing=spacing, settings=settings, keep=keep, sample=sample)
    return np.ascontiguousarray(np.moveaxis(planes, 0, -1))


def _feature_planes(
    image: np.ndarray,
    *,
    spacing: Sequence[float],
    settings: FeatureSettings | None = None,
    keep: tuple[int, int] | None = None,
    sample: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`compute_features` with the feature axis first, as it is computed (the parameters are its own)."""
    settings = settings or FeatureSettings()
    image = np.asarray(image)
    ndim = image.ndim
    spacing = np.asarray(spacing, float)
    if spacing.shape != (ndim,):
        raise ValueError(f"spacing needs {ndim} values for a {ndim}D image, got {spacing.tolist()}")
    data = normalise(image, sample) if settings.normalise == "image" else np.asarray(image, np.float32)
    crop = (slice(keep[0], keep[1]),) if keep is not None else (slice(None),)
    counts = _per_group(ndim)
    total = int(settings.raw) + len(settings.sigmas_mm) * sum(counts[g] for g in settings.groups)
    out_shape = data[crop].shape
    stack = np.empty((total, *out_shape), np.float32)  # feature-major: each column written contiguously
    column = 0

    def put(values: np.ndarray, cropped: bool = False) -> None:
        nonlocal column
        stack[column] = values if cropped else values[crop]
        column += 1

    if settings.raw:
        put(data)
    groups = set(settings.groups)
    for sigma_mm in settings.sigmas_mm:
        sigma = sigma_mm / spacing

        def derivative(order, sigma=sigma):
            return ndimage.gaussian_filter(data, sigma, order=order, truncate=_TRUNCATE, output=np.float32)

        smooth = derivative(0) if groups & {"gaussian", "texture"} else None
        gradient = None
        if groups & {"gradient", "structure"}:
            gradient = []
            for axis in range(ndim):
                order = [0] * ndim
                order[axis] = 1
                gradient.append(derivative(order) * np.float32(sigma_mm / spacing[axis]))
        hessian = None
        if groups & {"laplacian", "hessian", "vesselness"}:
            hessian = []
            for i in range(ndim):
                for j in range(i, ndim):
                    order = [0] * ndim
                    order[i] += 1
                    order[j] += 1
                    scale = sigma_mm**2 / (spacing[i] * spacing[j])
                    hessian.append(derivative(order)[crop] * np.float32(scale))
        eigen = _eigenvalues(hessian, ndim) if groups & {"hessian", "vesselness"} else None
        for group in settings.groups:
            if group == "gaussian":
                put(smooth)
            elif group == "gradient":
                put(np.sqrt(sum(g[crop] ** 2 for g in gradient)), cropped=True)
            elif group == "laplacian":
                diagonal = [0, 2] if ndim == 2 else [0, 3, 5]
                put(sum(hessian[k] for k in diagonal), cropped=True)
            elif group == "hessian":
                for values in eigen:
                    put(values, cropped=True)
            elif group == "vesselness":
                put(_vesselness(eigen, ndim), cropped=True)
            elif group == "structure":
                window = 2.0 * sigma
                products = [
                    ndimage.gaussian_filter(
                        gradient[i] * gradient[j], window, truncate=_TRUNCATE, output=np.float32
                    )[crop]
                    for i in range(ndim)
                    for j in range(i, ndim)
                ]
                for values in _eigenvalues(products, ndim):
                    put(values, cropped=True)
            elif group == "texture":
                mean_square = ndimage.gaussian_filter(
                    data * data, sigma, truncate=_TRUNCATE, output=np.float32
                )
                put(np.sqrt(np.maximum(mean_square[crop] - smooth[crop] ** 2, 0.0)), cropped=True)
            elif group in ("tophat", "line"):
                for values in (_tophat if group == "tophat" else _line)(data, sigma_mm, spacing):
                    put(values)
    return stack
