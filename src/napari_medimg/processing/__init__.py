"""Image processing and segmentation on arrays and :class:`~napari_medimg.geometry.Volume` values.

One signature style, as scikit-image: the data first (an array, a mask or a Volume), then keyword-only
options with unit-named lengths (``radius_mm``, ``min_size_mm3``), ``spacing=`` (mm per axis) for array
functions, and options as ``Literal`` strings without spaces (``"random_walker"``, ``"z_score"``).
Everything public is importable from here: ``napari_medimg.processing.threshold_mask``; the submodules load on
first use (importing the package, e.g. for :mod:`.windows`, stays cheap).
"""

from __future__ import annotations

import importlib

#: public name → the submodule that defines it (loaded on first access)
_EXPORTS = {
    "AUTOMATIC_METHODS": "threshold",
    "CT_WINDOW_PRESETS": "windows",
    "DENOISE_METHODS": "preprocess",
    "GROW_METHODS": "region_growing",
    "LOCAL_METHODS": "threshold",
    "LOGICAL_OPERATIONS": "morphology",
    "MORPHOLOGY_OPERATIONS": "morphology",
    "NORMALIZE_METHODS": "preprocess",
    "SMOOTHING_METHODS": "morphology",
    "WINDOW_PRESETS": "windows",
    "auto_window": "windows",
    "automatic_threshold": "threshold",
    "binary_morphology": "morphology",
    "brightness_contrast": "preprocess",
    "check_spacing": "_chunks",
    "clahe": "preprocess",
    "combine": "preprocess",
    "compact_labels": "morphology",
    "confidence_connected": "region_growing",
    "connected_components": "morphology",
    "connected_threshold": "region_growing",
    "denoise": "preprocess",
    "edit_label": "morphology",
    "ellipsoid_footprint": "_chunks",
    "fill_between_slices": "interpolate",
    "fill_holes": "morphology",
    "gamma": "preprocess",
    "grow_from_seeds": "region_growing",
    "keep_largest": "morphology",
    "keep_selected": "morphology",
    "local_threshold": "threshold",
    "logical": "morphology",
    "margin": "morphology",
    "markers_from_points": "region_growing",
    "mm_to_voxels": "_chunks",
    "multi_otsu_labels": "threshold",
    "multi_otsu_thresholds": "threshold",
    "normalize": "preprocess",
    "percentile_threshold": "threshold",
    "presets_for": "windows",
    "remove_small": "morphology",
    "resample": "preprocess",
    "seed_indices": "region_growing",
    "seed_statistics": "region_growing",
    "signed_distance": "interpolate",
    "smooth": "morphology",
    "split_islands": "morphology",
    "symmetric_eigenvalues": "preprocess",
    "threshold_mask": "threshold",
    "threshold_range": "threshold",
    "tophat": "preprocess",
    "unsharp_mask": "preprocess",
    "vesselness": "preprocess",
    "watershed_split": "morphology",
    "window_for": "windows",
    "window_level": "preprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load the submodule defining ``name`` on first access (PEP 562)."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the loaded submodules."""
    return sorted(set(globals()) | set(__all__))
