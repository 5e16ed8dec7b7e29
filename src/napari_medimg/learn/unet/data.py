"""Images and annotations for the U-Net: channel-first float volumes, normalisation, class-balanced patches.

Every image is handled as ``(C, Z, Y, X)`` (a 2D image is one slice, ``Z = 1``); annotations are integer
volumes ``(Z, Y, X)`` where 0 means *unlabelled* (no loss there) and 1..K are the classes.  A 2D model trains on
patches ``(1, Py, Px)`` cut from any slice that holds annotations, so a volume with a few painted slices trains a
2D model as well as a 3D one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Annotated",
    "as_channels_first",
    "fit_normalisation",
    "normalise",
    "PatchSampler",
]

#: neighbourhood (Gaussian standard deviation, pixels) of the ``local`` normalisation
LOCAL_SIGMA = 8.0

#: at most this many voxel positions are kept per class and image for sampling patch centres
MAX_CENTRES = 2_000_000


def as_channels_first(image, channels: int | None = None, rgb: bool | None = None) -> np.ndarray:
    """``image`` as float32 ``(C, Z, Y, X)``.

    Parameters
    ----------
    image : array-like
        ``(y, x)``, ``(y, x, c)`` (``c`` ≤ 4: RGB/RGBA, alpha dropped), ``(z, y, x)`` or ``(z, y, x, c)``.
    channels : int, optional
        Channels the model expects; decides whether a trailing axis of 3 is colour or space.
    rgb : bool, optional
        Whether the last axis holds colour (napari's ``layer.rgb``); guessed when None.

    Returns
    -------
    numpy.ndarray
        float32, 4-D.

    Raises
    ------
    ValueError
        For shapes that are not 2D or 3D images, or a channel count the model does not take.
    """
    array = np.asarray(image)
    if rgb is None:
        rgb = array.ndim in (3, 4) and array.shape[-1] in (3, 4) and (channels is None or channels > 1)
        if array.ndim == 3 and channels == 1:
            rgb = False
    if rgb:
        array = array[..., :3] if array.shape[-1] == 4 else array
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(f"expected a 2D or 3D image (optionally with colour), got shape {np.shape(image)}")
    if channels is not None and array.shape[0] != channels:
        raise ValueError(f"the model takes {channels}-channel images; this image has {array.shape[0]}")
    return np.ascontiguousarray(array, dtype=np.float32)


def fit_normalisation(images: list[np.ndarray], mode: str = "per_image") -> dict:
    """Normalisation settings from training images ``(C, Z, Y, X)``.

    Parameters
    ----------
    images : list of numpy.ndarray
        Channel-first training images.
    mode : {"per_image", "fixed", "local"}
        ``per_image``: each image is clipped to its own 0.5–99.5 percentiles and scaled to zero mean and unit
        standard deviation per channel (robust across scanners and photographs); ``fixed``: the training
        images' pooled statistics are applied to every image (keeps CT Hounsfield units comparable);
        ``local``: after ``per_image``, each pixel is centred and scaled by the mean and standard deviation of
        its in-plane neighbourhood (a Gaussian of ``LOCAL_SIGMA`` pixels), which evens out uneven illumination
        and brings out thin structures (vessels in fundus photographs, like CLAHE).

    Returns
    -------
    dict
        ``{"mode": ...}`` plus ``mean``/``std``/``low``/``high`` per channel for ``fixed``.
    """
    if mode == "per_image":
        return {"mode": "per_image"}
    if mode == "local":
        return {"mode": "local", "sigma": LOCAL_SIGMA}
    if mode != "fixed":
        raise ValueError(f"normalisation must be 'per_image', 'fixed' or 'local', got {mode!r}")
    channels = images[0].shape[0]
    samples = [
        np.concatenate([im[c].ravel()[:: max(1, im[c].size // 200_000)] for im in images])
        for c in range(channels)
    ]
    low = [float(np.percentile(s, 0.5)) for s in samples]
    high = [float(np.percentile(s, 99.5)) for s in samples]
    clipped = [np.clip(s, lo, hi) for s, lo, hi in zip(samples, low, high, strict=True)]
    return {
        "mode": "fixed",
        "low": low,
        "high": high,
        "mean": [float(c.mean()) for c in clipped],
        "std": [max(float(c.std()), 1e-6) for c in clipped],
    }


def normalise(image: np.ndarray, normalisation: dict) -> np.ndarray:
    """Apply :func:`fit_normalisation`'s settings to one ``(C, Z, Y, X)`` image (a new float32 array).

    Parameters
    ----------
    image : numpy.ndarray
        Channel-first image.
    normalisation : dict
        Settings from :func:`fit_normalisation` (as stored in the model).

    Returns
    -------
    numpy.ndarray
    """
    out = np.empty(image.shape, np.float32)
    for c in range(image.shape[0]):
        channel = image[c]
        if normalisation["mode"] == "fixed":
            low, high = normalisation["low"][c], normalisation["high"][c]
            mean, std = normalisation["mean"][c], normalisation["std"][c]
        else:
            sample = channel.ravel()[:: max(1, channel.size // 500_000)]
            low, high = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
            clipped = np.clip(sample, low, high)
            mean, std = float(clipped.mean()), max(float(clipped.std()), 1e-6)
        np.clip(channel, low, high, out=out[c])
        out[c] -= mean
        out[c] /= std
    if normalisation["mode"] == "local":
        from scipy.ndimage import gaussian_filter

        sigma = (0, 0, float(normalisation["sigma"]), float(normalisation["sigma"]))  # in-plane only
        out -= gaussian_filter(out, sigma)
        out /= np.sqrt(gaussian_filter(out * out, sigma)) + 0.1
    return out


@dataclass
class Annotated:
    """One training image with its annotations.

    Parameters
    ----------
    image : numpy.ndarray
        ``(C, Z, Y, X)`` float32 (see :func:`as_channels_first`).
    labels : numpy.ndarray
        ``(Z, Y, X)`` integers, 0 = unlabelled, 1..K = classes.
    spacing : tuple of float
        ``(dz, dy, dx)`` in mm (1 mm where unknown).
    """

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if self.image.ndim != 4 or self.labels.shape != self.image.shape[1:]:
            raise ValueError(
                f"labels of shape {self.labels.shape} do not match the image grid {self.image.shape[1:]}"
            )
        if self.labels.min() < 0:
            raise ValueError("labels must be 0 (unlabelled) or positive class numbers")
        self.spacing = tuple(float(s) for s in self.spacing)


class PatchSampler:
    """Patches whose centres are drawn class by class, so that rare classes (vessels, lesions) are seen as
    often as the background.

    Parameters
    ----------
    items : list of Annotated
        Normalised images with annotations.
    patch : sequence of int
        ``(pz, py, px)`` voxels (``pz = 1`` for a 2D model).
    n_classes : int
        K; classes 1..K.
    seed : int
        Seed of the sampler's random generator.
    """

    def __init__(self, items: list[Annotated], patch, n_classes: int, seed: int = 0):
        self.patch = np.asarray(patch, int)
        self.half = self.patch // 2
        self.n_classes = n_classes
        self.rng = np.random.default_rng(seed)
        pad = [(0, 0)] + [(int(h), int(p - h)) for h, p in zip(self.half, self.patch, strict=True)]
        self.images = [np.pad(item.image, pad) for item in items]
        self.labels = [np.pad(item.labels, pad[1:]) for item in items]
        self.centres: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n_classes)]
        for index, item in enumerate(items):
            flat = item.labels.ravel()
            for c in range(1, n_classes + 1):
                where = np.flatnonzero(flat == c)
                if len(where) > MAX_CENTRES:
                    where = np.sort(self.rng.choice(where, MAX_CENTRES, replace=False))
                if len(where):
                    self.centres[c - 1].append((index, where))
        self.present = [c for c in range(n_classes) if self.centres[c]]
        self.shapes = [item.labels.shape for item in items]

    def sample(self, n: int, balanced: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images ``(n, C, pz, py, px)`` float32 and labels ``(n, pz, py, px)`` int64.

        Parameters
        ----------
        n : int
            Number of patches.
        balanced : bool
            Centre classes drawn with equal chances (training); False draws centres uniformly among the
            labelled voxels (an unbiased sample, used to choose the decision threshold).

        Returns
        -------
        tuple of numpy.ndarray
        """
        images, labels = [], []
        counts = np.array([sum(len(w) for _, w in self.centres[c]) for c in self.present], float)
        for _ in range(n):
            if balanced:
                c = self.present[self.rng.integers(len(self.present))]
            else:
                c = self.present[self.rng.choice(len(self.present), p=counts / counts.sum())]
            choices = self.centres[c]
            weights = np.array([len(w) for _, w in choices], float)
            index, where = choices[self.rng.choice(len(choices), p=weights / weights.sum())]
            centre = np.unravel_index(where[self.rng.integers(len(where))], self.shapes[index])
            jitter = self.rng.integers(-(self.half // 2), self.half // 2 + 1)
            start = np.clip(np.asarray(centre) + jitter, 0, np.asarray(self.shapes[index]) - 1)
            window = tuple(slice(int(s), int(s + p)) for s, p in zip(start, self.patch, strict=True))
            images.append(self.images[index][(slice(None), *window)])
            labels.append(self.labels[index][window])
        return np.stack(images), np.stack(labels).astype(np.int64)
