"""A small labelled folder made from the CT phantom, for the tutorial, the demo and quick trials.

:func:`make_patch_folder` writes 2D NIfTI patches (HU) cut from phantoms of several noise seeds: patches
centred on the lesions (class ``lesion``, one per slice through each lesion, centre jittered by a few pixels)
and patches of the same sizes centred on lesion-free soft tissue, lung and liver (class ``normal``), plus a
``labels.csv`` (columns ``path``, ``label``).  :func:`normal_tissue_objects` adds lesion-free spheres to a
lesion labels array so that a per-object prediction has both classes to find.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ...geometry import Volume
from ...io.atomic import atomic_directory
from ...io.nifti import write_nifti
from ...samples import make_ct_phantom

__all__ = ["make_patch_folder", "normal_tissue_objects", "PHANTOM_SHAPE", "PHANTOM_SPACING"]

PHANTOM_SHAPE = (32, 128, 128)
PHANTOM_SPACING = (5.0, 1.4, 1.4)


def _crop(image: np.ndarray, centre, half: int) -> np.ndarray:
    y, x = (int(round(c)) for c in centre)
    padded = np.pad(image, half, mode="edge")
    return padded[y : y + 2 * half + 1, x : x + 2 * half + 1]


def make_patch_folder(
    folder: str | os.PathLike, seeds=(1, 2, 3), margin: float = 0.25, overwrite: bool = False
) -> Path:
    """Write lesion / normal 2D patches and ``labels.csv`` into ``folder``; return the CSV path.

    The folder is one unit (:func:`napari_medimg.io.atomic.atomic_directory`): patches and CSV appear together;
    an existing folder is replaced only with ``overwrite`` and only when napari-medimg wrote it.

    Parameters
    ----------
    folder : path-like
        Output folder.
    seeds : tuple of int, optional
        Phantom seeds (one phantom each).
    margin : float, optional
        Context around each lesion, as a fraction of its extent.
    overwrite : bool, optional
        Replace an earlier patch folder.

    Returns
    -------
    Path
        ``folder / "labels.csv"``.
    """
    target = Path(folder)
    with atomic_directory(target, overwrite=overwrite, kind="CNN patch folder") as folder:
        _write_patches(folder, seeds, margin)
    return target / "labels.csv"


def _write_patches(folder: Path, seeds, margin: float) -> None:
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        phantom = make_ct_phantom(shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, seed=seed)
        image, lesions, tissues = phantom.image.array, phantom.lesions.array, phantom.tissues.array
        dy = phantom.image.spacing[1]
        halves = []
        for label in np.unique(lesions)[1:]:
            for k in np.flatnonzero((lesions == label).any(axis=(1, 2))):
                ys, xs = np.nonzero(lesions[k] == label)
                extent = max(np.ptp(ys), np.ptp(xs)) + 1
                half = int(round(extent * (1 + 2 * margin) / 2))
                centre = (ys.mean() + rng.integers(-2, 3), xs.mean() + rng.integers(-2, 3))
                rows.append((f"s{seed}_lesion{label}_z{k}.nii.gz", "lesion", image[k], centre, half))
                halves.append(half)
        far = np.ones(image.shape, bool)
        if lesions.any():
            from scipy import ndimage

            far = ndimage.distance_transform_edt(lesions == 0, sampling=phantom.image.spacing) > 25.0
        candidates = np.argwhere(far & np.isin(tissues, (1, 2, 4)))
        for n, index in enumerate(rng.choice(len(candidates), size=len(halves), replace=False)):
            k, y, x = candidates[index]
            rows.append((f"s{seed}_normal{n}_z{k}.nii.gz", "normal", image[k], (y, x), halves[n]))
        for name, _, plane, centre, half in rows[-2 * len(halves) :]:
            patch = _crop(plane, centre, half)[None]
            write_nifti(Volume(patch, (PHANTOM_SPACING[0], dy, dy)), folder / name)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows((name, label) for name, label, *_ in rows)


def normal_tissue_objects(
    lesions: Volume, tissues: Volume, radius_mm: float = 8.0, seed: int = 0
) -> np.ndarray:
    """The lesion labels plus three lesion-free spheres (soft tissue, lung, liver) labelled after them.

    Returns
    -------
    numpy.ndarray
        Labels with the lesions and the added normal-tissue objects.
    """
    from scipy import ndimage

    labels = np.asarray(lesions.array).astype(np.int32)
    spacing = lesions.spacing
    far = ndimage.distance_transform_edt(labels == 0, sampling=spacing) > 3 * radius_mm
    grid = np.indices(labels.shape, sparse=True)
    rng = np.random.default_rng(seed)
    next_label = int(labels.max()) + 1
    for tissue in (1, 2, 4):
        inside = ndimage.distance_transform_edt(tissues.array == tissue, sampling=spacing) > radius_mm
        candidates = np.argwhere(inside & far)
        if len(candidates) == 0:
            continue
        centre = candidates[rng.integers(len(candidates))]
        distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=False))
        sphere = (distance <= radius_mm**2) & (labels == 0)
        labels[sphere] = next_label
        far &= ~sphere
        next_label += 1
    return labels
