"""Display defaults of a series: the initial window from the files, the preset table, or the values."""

from __future__ import annotations

import numpy as np

from ...processing.windows import auto_window, presets_for

__all__ = ["display_defaults", "check_window"]


def display_defaults(modality: str, windows: list[tuple[float, float]]) -> dict:
    """Window keys of a series summary: the files' first window, else the modality's default preset.

    Parameters
    ----------
    modality : str
        DICOM Modality.
    windows : list of tuple
        ``(centre, width)`` windows stored in the files (may be empty).

    Returns
    -------
    dict
        ``window_center``/``window_width`` when known and ``window_presets`` for modalities that have them.
    """
    summary: dict = {}
    presets = presets_for(modality)
    if windows:
        summary["window_center"], summary["window_width"] = windows[0]
        summary["window_source"] = "stored"
    elif "abdomen" in presets:
        summary["window_center"], summary["window_width"] = presets["abdomen"]
        summary["window_source"] = "default"  # the plugin's, not the file's
    if presets:
        summary["window_presets"] = {name: list(value) for name, value in presets.items()}
    return summary


def check_window(metadata: dict, array: np.ndarray) -> None:
    """Replace a stored display window that shows almost no voxel by the 0.5-99.5 percentile range.

    Parameters
    ----------
    metadata : dict
        A series summary; updated in place (window keys, and a warning saying so).
    array : numpy.ndarray
        A sample of the values (a whole volume or a few slices).
    """
    centre, width = metadata.get("window_center"), metadata.get("window_width")
    if centre is None or width is None or array.size == 0:
        return
    sample = array[:: max(1, array.shape[0] // 16)]
    low, high = centre - width / 2, centre + width / 2
    level, span = auto_window(sample)
    p_low, p_high = level - span / 2, level + span / 2
    if span <= 1e-6:
        return
    inside = np.mean((sample > low) & (sample < high))
    # CT windows are meaningful in HU even when narrow (brain); MR values are arbitrary, so a window far
    # narrower than the values' range is a leftover, not a choice
    narrow = metadata.get("modality") != "CT" and width < 0.05 * (p_high - p_low)
    if inside >= 0.01 and not narrow:
        return
    metadata["window_center"], metadata["window_width"] = (p_low + p_high) / 2, p_high - p_low
    metadata["warnings"] = [
        *metadata["warnings"],
        (
            f"The {'stored' if metadata.get('window_source', 'stored') == 'stored' else 'default (abdomen)'} "
            f"display window (centre {centre:g}, width {width:g}) shows almost none of the image "
            "(under 1% of voxels inside it, or under 5% of the value range); the initial contrast uses the "
            f"0.5-99.5 percentile range ({p_low:g} to {p_high:g}) instead."
        ),
    ]
