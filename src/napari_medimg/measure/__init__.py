"""Core subpackage `napari_medimg.measure` (no napari or Qt imports): per-object feature tables in mm."""

from .features import GROUPS, compute_features, feature_columns, parse_groups

__all__ = ["GROUPS", "compute_features", "feature_columns", "parse_groups"]
