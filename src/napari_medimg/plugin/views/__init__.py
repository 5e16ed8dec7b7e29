"""Slicer-style viewing: linked orthogonal views, cursor readout, window/level, display of oblique series."""

from .orthogonal import OrthogonalViewsWidget, plane_markers
from .readout import format_lps, readout, readout_text

__all__ = ["OrthogonalViewsWidget", "plane_markers", "format_lps", "readout", "readout_text"]
