"""The plugin's one table of display windows (window/level presets), per modality.

A window is ``(level, width)`` in the image's units (HU for CT).  Every place that offers a preset (the
Preprocess window step, the DICOM browser, the viewer's contrast presets) reads :data:`WINDOW_PRESETS`.
MR has no fixed window: :func:`auto_window` takes it from percentiles of the values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WINDOW_PRESETS", "CT_WINDOW_PRESETS", "presets_for", "window_for", "auto_window"]

#: presets per modality: name → (level, width)
WINDOW_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "CT": {
        "lung": (-600.0, 1500.0),
        "mediastinum": (50.0, 350.0),
        "soft_tissue": (50.0, 350.0),
        "abdomen": (40.0, 400.0),
        "liver": (60.0, 160.0),
        "bone": (400.0, 1800.0),
        "brain": (40.0, 80.0),
        "subdural": (75.0, 215.0),
        "stroke": (40.0, 40.0),
    },
}

#: the CT presets (the only modality with fixed windows)
CT_WINDOW_PRESETS = WINDOW_PRESETS["CT"]


def presets_for(modality: str | None) -> dict[str, tuple[float, float]]:
    """The named presets for ``modality`` (``"CT"``, ``"MR"`` …); empty when it has none.

    Parameters
    ----------
    modality : str or None
        DICOM Modality code; case is ignored.

    Returns
    -------
    dict
        Preset name → ``(level, width)``.
    """
    return dict(WINDOW_PRESETS.get((modality or "").upper(), {}))


def window_for(preset: str, modality: str = "CT") -> tuple[float, float]:
    """``(level, width)`` of a named preset.

    Parameters
    ----------
    preset : str
        A name of :func:`presets_for` ``(modality)``.
    modality : str
        DICOM Modality code.

    Returns
    -------
    tuple of float
        ``(level, width)``.

    Raises
    ------
    ValueError
        When the preset is not defined for that modality.
    """
    presets = presets_for(modality)
    if preset not in presets:
        raise ValueError(
            f"unknown {modality} window preset {preset!r}; choose from {', '.join(presets) or '(none)'}"
        )
    return presets[preset]


def auto_window(values, low_percentile: float = 0.5, high_percentile: float = 99.5) -> tuple[float, float]:
    """A window ``(level, width)`` spanning two percentiles of ``values`` (the MR default).

    Parameters
    ----------
    values : array_like
        Sample of the image values (a strided sample is enough).
    low_percentile, high_percentile : float
        Percentiles in ``[0, 100]`` that map to the window's ends.

    Returns
    -------
    tuple of float
        ``(level, width)``; the width is at least 1e-6.
    """
    sample = np.asarray(values, dtype=float).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [low_percentile, high_percentile])
    return float((low + high) / 2), float(max(high - low, 1e-6))
