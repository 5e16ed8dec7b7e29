"""Fusion: resample one image onto another's grid (from world geometry, or after registration) as an overlay."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, FloatSlider, create_widget

from ... import ops
from ._common import JobWidget

if TYPE_CHECKING:
    import napari

__all__ = ["FusionWidget"]

TRANSFORMS = {
    "none (same frame of reference)": "none",
    "rigid registration": "rigid",
    "affine registration": "affine",
}


class FusionWidget(JobWidget):
    """Show a moving image on a fixed image's grid: resampled from world geometry, or registered first
    (SimpleITK, Mattes mutual information, multi-resolution), as a coloured overlay.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Fuse")
        self.fixed = create_widget(annotation="napari.layers.Image", label="fixed (reference grid)")
        self.moving = create_widget(annotation="napari.layers.Image", label="moving")
        self.transform = ComboBox(choices=list(TRANSFORMS), value="rigid registration", label="transform")
        self.colormap = ComboBox(
            choices=["magenta", "green", "hot", "cyan", "viridis"], label="overlay colormap"
        )
        self.opacity = FloatSlider(min=0.0, max=1.0, step=0.05, value=0.5, label="overlay opacity")
        self.blending = ComboBox(choices=["additive", "translucent", "minimum"], label="blending")
        self.extend([self.fixed, self.moving, self.transform, self.colormap, self.opacity, self.blending])
        self._finish_layout()
        self._connect_layer_choices(self.fixed, self.moving)
        self.opacity.changed.connect(self._restyle)
        self.colormap.changed.connect(self._restyle)
        self.blending.changed.connect(self._restyle)

    @property
    def result_name(self) -> str:
        """Name of the overlay layer."""
        moving = self.moving.value
        return f"{moving.name if moving is not None else 'moving'} (fused)"

    def _restyle(self, *_):
        if self.result_name in self.viewer.layers:
            layer = self.viewer.layers[self.result_name]
            layer.colormap, layer.opacity = self.colormap.value, self.opacity.value
            layer.blending = self.blending.value

    def apply(self, *_):
        """Run the registration (or the resampling) in a worker and show the overlay."""
        fixed_layer, moving_layer = self.fixed.value, self.moving.value
        if fixed_layer is None or moving_layer is None or fixed_layer is moving_layer:
            self.status.value = "error: choose two different image layers"
            return
        fixed, moving = self.volume_of(fixed_layer), self.volume_of(moving_layer)
        if fixed.ndim != 3 or moving.ndim != 3:
            self.status.value = "error: fusion needs two 3D images"
            return
        params = {"transform": TRANSFORMS[self.transform.value]}
        name = self.result_name

        def fuse(fixed, moving, progress=None):
            fixed = fixed.with_array(np.asarray(fixed.array))
            moving = moving.with_array(np.asarray(moving.array))
            result = ops.run("register", fixed, moving, progress=progress, **params)
            # the result lies on the fixed grid: it is shown in the fixed layer's display frame
            result.metadata.pop("display_frame", None)
            if fixed.metadata.get("display_frame") is not None:
                result.metadata["display_frame"] = fixed.metadata["display_frame"]
            return result

        def done(result):
            low, high = moving_layer.contrast_limits
            summary = result.metadata["registration"]
            self.show_result(
                result,
                "image",
                name,
                "register",
                params,
                [fixed_layer, moving_layer],
                colormap=self.colormap.value,
                opacity=self.opacity.value,
                blending=self.blending.value,
                contrast_limits=(low, high),
            )
            t = ", ".join(f"{v:.1f}" for v in summary["translation_mm"])
            self.status.value = (
                f"{summary['transform']}: rotation {summary['rotation_deg']:.2f}°, translation ({t}) mm"
                + (f", Mattes MI {summary['metric']:.3f}" if summary["metric"] is not None else "")
            )

        self.run_job(fuse, fixed, moving, description=f"fusing {moving_layer.name}", on_done=done)
