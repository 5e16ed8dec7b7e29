"""Core subpackage `napari_medimg.measure` (no napari or Qt imports): per-object feature tables in mm.

Two modes: :func:`compute_features` (pyradiomics-compatible, the default) and
:func:`~napari_medimg.measure.ibsi.compute_ibsi_features` (IBSI 1 processing chain and features, columns named
by the IBSI reference tags).  Segmentation metrics (Dice, HD95 …) are in :mod:`napari_medimg.measure.metrics`.
"""

from .features import DEFAULT_BIN_WIDTH, GROUPS, compute_features, feature_columns, parse_groups
from .ibsi import IBSI_FAMILIES, IBSISettings, compute_ibsi_features, ibsi_features
from .metrics import (
    assd,
    compare_labels,
    compare_masks,
    dice,
    hausdorff95,
    jaccard,
    surface_distances,
    volume_mm3,
)

__all__ = [
    "DEFAULT_BIN_WIDTH",
    "GROUPS",
    "IBSI_FAMILIES",
    "IBSISettings",
    "assd",
    "compare_labels",
    "compare_masks",
    "compute_features",
    "compute_ibsi_features",
    "dice",
    "feature_columns",
    "hausdorff95",
    "ibsi_features",
    "jaccard",
    "parse_groups",
    "surface_distances",
    "volume_mm3",
]
