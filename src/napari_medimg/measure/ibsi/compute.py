"""IBSI 1 feature tables: the processing chain and every feature family for each label of a labels image."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ...geometry import Volume
from ...progress import ProgressCallback, report
from .intensity import histogram, local_intensity, statistics, volume_histogram
from .morphology import morphology
from .processing import EmptyRoiError, IBSISettings, discretise, prepare_roi, processed_image
from .texture import FAMILIES as TEXTURE_FAMILIES
from .texture import TextureInput, texture_features

__all__ = ["IBSI_FAMILIES", "ibsi_features", "compute_ibsi_features", "parse_families"]

#: IBSI feature families (tag prefixes) in table order; "diag" are the diagnostic tags of the chain
IBSI_FAMILIES = ("diag", "morph", "loc", "stat", "ih", "ivh", *TEXTURE_FAMILIES)

#: the ``groups`` names of the pyradiomics-compatible mode mapped to IBSI families
_GROUP_ALIASES = {
    "shape": ("morph",),
    "firstorder": ("stat", "ih", "ivh", "loc"),
    "glcm": ("cm",),
    "glrlm": ("rlm",),
    "glszm": ("szm", "dzm"),
    "gldm": ("ngl",),
    "ngtdm": ("ngt",),
}


def parse_families(families: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validated IBSI families in table order.

    Parameters
    ----------
    families : str, iterable of str or None
        ``"morph,stat,cm"``, a list, or None for all.  The pyradiomics group names (``shape``, ``firstorder``,
        ``glcm`` …) are accepted and mapped to the IBSI families.

    Returns
    -------
    tuple of str
        Families in :data:`IBSI_FAMILIES` order (``diag`` is always included).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if families is None:
        return IBSI_FAMILIES
    if isinstance(families, str):
        families = [f for f in families.split(",") if f.strip()]
    wanted = {"diag"}
    for name in (f.strip() for f in families):
        if name in _GROUP_ALIASES:
            wanted.update(_GROUP_ALIASES[name])
        elif name in IBSI_FAMILIES:
            wanted.add(name)
        else:
            raise ValueError(f"unknown IBSI feature family {name!r}; choose from {', '.join(IBSI_FAMILIES)}")
    return tuple(f for f in IBSI_FAMILIES if f in wanted)


def _is_integer(values: np.ndarray) -> bool:
    return bool(np.array_equal(np.rint(values), values))


def _arrays(image, mask, spacing):
    """(z, y, x) arrays and spacing from arrays or Volumes (2D gets a unit slice axis)."""
    for volume in (image, mask):
        if isinstance(volume, Volume) and spacing is None:
            spacing = volume.spacing
    image = np.asarray(image.array if isinstance(image, Volume) else image)
    mask = np.asarray(mask.array if isinstance(mask, Volume) else mask)
    if image.ndim == 2:
        image, mask = image[None], mask[None]
        spacing = None if spacing is None else (1.0, *tuple(spacing)[-2:])
    if spacing is None:
        raise ValueError("the voxel spacing in mm is required (or pass a Volume)")
    if image.ndim != 3:
        raise ValueError(f"the image must be 2D or 3D, got {image.ndim}D")
    if image.shape != mask.shape:
        raise ValueError(f"image has shape {image.shape}, the mask/labels have {mask.shape}")
    return image, mask, spacing


def ibsi_features(
    image,
    mask,
    spacing=None,
    *,
    settings: IBSISettings | None = None,
    families=None,
    processed=None,
) -> dict[str, float]:
    """IBSI 1 features of one ROI, keyed by the reference tags.

    Parameters
    ----------
    image : numpy.ndarray or Volume
        (z, y, x) intensities.
    mask : numpy.ndarray or Volume
        ROI mask of the image's shape (non-zero inside).
    spacing : sequence of float or None
        (dz, dy, dx) mm (taken from a Volume when None).
    settings : IBSISettings or None
        The processing chain; default: no interpolation, no re-segmentation, the intensities as grey levels.
    families : str, iterable of str or None
        Subset of :data:`IBSI_FAMILIES`.
    processed : tuple or None
        Precomputed :func:`~.processing.processed_image` of ``image`` (several ROIs of one image).

    Returns
    -------
    dict
        Tag → value: diagnostics (``img_dim_x_init_img`` …), ``morph_*``, ``loc_*``, ``stat_*``, ``ih_*``,
        ``ivh_*`` and the texture tags (``cm_joint_max_3D_avg``, ``szm_sze_2D`` …).

    Raises
    ------
    ValueError
        For mismatched shapes, missing spacing, an empty ROI or non-integer intensities without a bin option.

    Examples
    --------
    >>> row = ibsi_features(ct, tumour, (3.0, 0.98, 0.98),
    ...                     settings=IBSISettings(by_slice=True, reseg_range=(-500, 400), bin_width=25))
    ...  # doctest: +SKIP
    """
    settings = settings or IBSISettings()
    families = parse_families(families)
    image, mask, spacing = _arrays(image, mask, spacing)
    roi = prepare_roi(image, mask, spacing, settings, processed=processed)
    values = roi.image[roi.intensity]
    row: dict[str, float] = {}
    if "diag" in families:
        row.update({k: float(v) for k, v in roi.diagnostics.items()})
    if "morph" in families:
        row.update(morphology(roi.morph, roi.image, roi.intensity, roi.spacing))
    if "loc" in families:
        row.update(local_intensity(roi.image, roi.intensity, roi.spacing))
    if "stat" in families:
        row.update(statistics(values))
    low = settings.reseg_range[0] if settings.reseg_range is not None else None
    texture = [f for f in families if f in TEXTURE_FAMILIES]
    if "ih" in families or texture:
        levels, n_levels = discretise(
            values, bin_width=settings.bin_width, bin_count=settings.bin_count, low=low
        )
        if "ih" in families:
            row.update(histogram(levels))
        if texture:
            if settings.bin_width is None and settings.bin_count is None and levels.min() < 1:
                raise ValueError(
                    f"without a bin width or bin count the intensities are the grey levels, which must be ≥ 1 for "
                    f"texture features; this ROI reaches {levels.min()}: give a bin width or bin count"
                )
            grid = np.zeros(roi.image.shape, np.int64)
            grid[roi.intensity] = levels
            gray = TextureInput(grid, roi.intensity, roi.morph, n_levels)
            row.update(texture_features(gray, by_slice=settings.by_slice, families=texture))
    if "ivh" in families:
        row.update(_ivh(values, settings, low))
    return row


def _ivh(values: np.ndarray, settings: IBSISettings, low) -> dict[str, float]:
    if settings.ivh_bin_width is not None:  # bin centres in intensity units, as IBSI reports IVH
        width = settings.ivh_bin_width
        anchor = low if low is not None and np.isfinite(low) else float(values.min())
        levels, _ = discretise(values, bin_width=width, low=anchor)
        centres = anchor + (levels - 0.5) * width
        value_range = None
        if settings.reseg_range is not None:
            high = settings.reseg_range[1]
            top = anchor + (np.floor((high - anchor) / width) + 0.5) * width if np.isfinite(high) else np.inf
            value_range = (anchor + 0.5 * width, top)
        return volume_histogram(centres, step=width, value_range=value_range)
    if settings.ivh_bin_count is not None:
        levels, n = discretise(values, bin_count=settings.ivh_bin_count)
        return volume_histogram(levels, value_range=(1, n))
    if not _is_integer(values):  # no natural intensity step: 1000 bins (IBSI's suggestion for PET)
        levels, n = discretise(values, bin_count=1000)
        return volume_histogram(levels, value_range=(1, n))
    return volume_histogram(values, value_range=settings.reseg_range)


def compute_ibsi_features(
    labels,
    image,
    spacing=None,
    *,
    settings: IBSISettings | None = None,
    families=None,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """One row of IBSI features per label value (> 0) of ``labels``, columns named by the IBSI tags.

    Parameters
    ----------
    labels : numpy.ndarray or Volume
        Integer (z, y, x) labels, 0 background.
    image : numpy.ndarray or Volume
        Intensities of the labels' shape.
    spacing : sequence of float or None
        (dz, dy, dx) mm (taken from a Volume when None).
    settings : IBSISettings or None
        The IBSI processing chain.
    families : str, iterable of str or None
        Subset of :data:`IBSI_FAMILIES`.
    progress : callable or None
        ``progress(done, total)`` per label; raise :class:`~napari_medimg.progress.Cancelled` to stop.

    Returns
    -------
    pandas.DataFrame
        ``label`` then the tags of :func:`ibsi_features`; a label left without voxels by interpolation or
        re-segmentation gets NaN features.
    """
    settings = settings or IBSISettings()
    image, labels, spacing = _arrays(image, labels, spacing)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must hold integers, got {labels.dtype}")
    values = [int(v) for v in np.unique(labels) if v > 0]
    processed = processed_image(image, spacing, settings)
    rows = []
    report(progress, 0, len(values))
    for done, value in enumerate(values, 1):
        try:
            row = ibsi_features(
                image, labels == value, spacing, settings=settings, families=families, processed=processed
            )
        except (
            EmptyRoiError
        ):  # a label emptied by interpolation or re-segmentation: a row of NaN, not an abort
            row = {}
        rows.append({"label": value, **row})
        report(progress, done, len(values))
    if not rows:
        return pd.DataFrame({"label": pd.Series(dtype=np.int64)})
    table = pd.DataFrame(rows)
    table["label"] = table["label"].astype(np.int64)
    return table
