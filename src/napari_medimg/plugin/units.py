"""New layers get the physical units of the scan they are drawn on.

A Points, Labels or Shapes layer added from napari's buttons or the console has pixel units, while our
layers are in mm: napari then warns "Inconsistent units across layers" and stops using units (the slider
steps in 1-unit increments).  Once a napari-medimg panel is open in a viewer, a layer inserted with pixel
units next to mm layers is given mm as well (its data are not changed).  Only the layer's ``units`` are set,
inside the inserted event; no layer is added or removed there.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari

__all__ = ["keep_units_consistent"]

_HOOKED: weakref.WeakSet = weakref.WeakSet()


def _unit_names(layer) -> set[str]:
    return {str(unit) for unit in getattr(layer, "units", ()) or ()}


def keep_units_consistent(viewer: napari.viewer.Viewer) -> None:
    """Give layers inserted into ``viewer`` with pixel units the mm units of the other layers (idempotent)."""
    if viewer in _HOOKED:
        return
    _HOOKED.add(viewer)
    layers = weakref.ref(viewer.layers)

    def inserted(event) -> None:
        layer_list = layers()
        layer = event.value
        if layer_list is None or _unit_names(layer) != {"pixel"}:
            return
        if any(_unit_names(other) == {"millimeter"} for other in layer_list if other is not layer):
            layer.units = ("mm",) * layer.ndim

    viewer.layers.events.inserted.connect(inserted, position="first")  # before the canvas draws the layer
