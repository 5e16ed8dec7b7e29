"""Measure objects: per-label shape, intensity and texture features of a Labels layer on any number of images.

A thin adapter over :func:`napari_medimg.measure.compute_features` (pyradiomics-compatible mode) and
:func:`napari_medimg.measure.ibsi.compute_ibsi_features` (IBSI mode: one image, the IBSI processing chain and
settings, columns named by the IBSI reference tags).  The job runs in a worker with a progress bar (Cancel
stops it); the result is merged by label into ``labels_layer.features`` (napari's ``index`` column = label
value): the user's own columns (a ``class`` column, lesion names) are kept, and so are rows of labels that
were not measured.  A :class:`~.feature_table.FeatureTableWidget` dock linked to the layer shows the table.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Select, SpinBox, create_widget

from ...geometry import check_same_grid
from ...measure.features import GROUPS, compute_features
from ...measure.ibsi import IBSISettings, compute_ibsi_features
from ...pipeline.steps import record_step
from ..layers import layer_to_volume, shown_volume
from ._common import JobWidget
from .feature_table import FeatureTableWidget

if TYPE_CHECKING:
    import napari

__all__ = ["MeasureWidget", "merge_features", "FEATURE_COLUMNS_KEY"]

#: ``layer.metadata`` key listing the feature columns this widget wrote (so a new run replaces only those)
FEATURE_COLUMNS_KEY = "medimg_feature_columns"
MODES = ("pyradiomics", "IBSI")
DISCRETISATION = ("bin width", "bin count", "none (integer intensities)")


def _label_values(frame: pd.DataFrame) -> np.ndarray:
    """Label value of each row of a labels layer's features (``index``, else ``label``, else the row number)."""
    for column in ("index", "label"):
        if column in frame:
            return np.asarray(frame[column])
    return np.arange(len(frame))


def merge_features(existing: pd.DataFrame | None, new: pd.DataFrame, replace=()) -> pd.DataFrame:
    """``new`` (a ``label`` column + features) merged by label into a layer's ``existing`` features.

    Parameters
    ----------
    existing : pandas.DataFrame or None
        The layer's current features (rows matched by ``index``, else ``label``, else row number).
    new : pandas.DataFrame
        Freshly measured table with a ``label`` column.
    replace : iterable of str
        Columns written by an earlier measurement: dropped unless measured again (stale results).

    Returns
    -------
    pandas.DataFrame
        ``index`` and ``label`` first, the user's other columns kept, then the new feature columns; one row
        per label of either table, sorted by label.  Measured columns replace same-named old ones.
    """
    new = new.copy()
    new = new.drop(columns=[c for c in ("index",) if c in new])
    if existing is None or len(existing.columns) == 0:
        merged = new
    else:
        old = pd.DataFrame(existing).reset_index(drop=True).copy()
        old["label"] = np.asarray(_label_values(old), np.int64)
        stale = set(replace) | set(new.columns)
        old = old.drop(columns=[c for c in old.columns if c in stale - {"label"} or c == "index"])
        merged = old.merge(new, on="label", how="outer", sort=True)
    merged = merged.sort_values("label", kind="stable").reset_index(drop=True)
    label = merged.pop("label").astype(np.int64)
    merged.insert(0, "label", label)
    merged.insert(0, "index", label.to_numpy())
    return merged


GROUP_LABELS = {
    "shape": "shape (mm, mm², mm³)",
    "firstorder": "first order",
    "glcm": "GLCM",
    "glrlm": "GLRLM",
    "glszm": "GLSZM",
    "gldm": "GLDM",
    "ngtdm": "NGTDM",
}


def _corner_distance_mm(a, b) -> float:
    """Largest distance (mm, napari world) between where two layers of one shape put their corner voxels."""
    shape = a.data.shape
    corners = itertools.product(*[(0, n - 1) for n in shape])
    return max(float(np.linalg.norm(np.subtract(a.data_to_world(c), b.data_to_world(c)))) for c in corners)


def _aligned(viewer, image, labels) -> bool:
    """The image layer (of a 4D one, the volume shown) lies on the labels' voxel grid in mm."""
    if image.ndim != 4:
        return _corner_distance_mm(image, labels) <= 0.01
    try:
        check_same_grid(shown_volume(viewer, image), layer_to_volume(labels), tolerance_mm=0.01)
    except ValueError:
        return False
    return True


class MeasureWidget(JobWidget):
    """Labels layer + image layers + feature groups + bin width → feature table dock."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, apply_text="Measure")
        self.labels = create_widget(annotation="napari.layers.Labels", label="labels")
        self.images = Select(label="images", choices=self._image_choices, allow_multiple=True)
        self.groups = {group: CheckBox(text=GROUP_LABELS[group], value=True) for group in GROUPS}
        self.bin_width = FloatSpinBox(
            label="bin width",
            value=25.0,
            min=1e-6,
            max=1e6,
            step=1.0,
            tooltip="fixed bin width in image units (HU for CT) for entropy and texture",
        )
        self.mode = ComboBox(
            label="mode",
            choices=MODES,
            value="pyradiomics",
            tooltip="pyradiomics: pyradiomics-compatible columns. IBSI: the IBSI 1 chain and features "
            "(one image; columns = IBSI reference tags)",
        )
        self.ibsi = self._ibsi_settings()
        self.mode.changed.connect(self._mode_changed)
        self.discretisation.changed.connect(self._mode_changed)
        self.extend([self.labels, self.images, self.mode, *self.groups.values(), self.bin_width, self.ibsi])
        self._finish_layout()
        self._mode_changed()
        self.tables: dict[str, FeatureTableWidget] = {}
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()

    def _ibsi_settings(self) -> Container:
        self.by_slice = CheckBox(text="by slice (2D / 2.5D texture, in-plane interpolation)", value=False)
        self.resample_mm = FloatSpinBox(
            label="resample (mm)", value=0.0, min=0.0, max=100.0, step=0.5, tooltip="0 keeps the voxel grid"
        )
        self.interpolation = ComboBox(label="interpolation", choices=("linear", "cubic"), value="linear")
        self.reseg = CheckBox(text="re-segment to a range", value=False)
        self.reseg_low = FloatSpinBox(label="range low", value=-500.0, min=-1e6, max=1e6, step=10.0)
        self.reseg_high = FloatSpinBox(label="range high", value=400.0, min=-1e6, max=1e6, step=10.0)
        self.reseg_sigma = FloatSpinBox(
            label="outliers (SD)", value=0.0, min=0.0, max=100.0, step=0.5, tooltip="0: no outlier filtering"
        )
        self.discretisation = ComboBox(label="discretise", choices=DISCRETISATION, value="bin width")
        self.bin_count = SpinBox(label="bin count", value=32, min=1, max=100000)
        self.ivh_bin_width = FloatSpinBox(
            label="IVH bin width",
            value=0.0,
            min=0.0,
            max=1e6,
            step=0.5,
            tooltip="0: the intensity-volume histogram uses the integer intensities",
        )
        return Container(
            widgets=[
                self.by_slice,
                self.resample_mm,
                self.interpolation,
                self.reseg,
                self.reseg_low,
                self.reseg_high,
                self.reseg_sigma,
                self.discretisation,
                self.bin_count,
                self.ivh_bin_width,
            ],
            labels=True,
        )

    def _mode_changed(self, *_):
        ibsi = self.mode.value == "IBSI"
        self.ibsi.visible = ibsi
        self.bin_width.visible = not ibsi or self.discretisation.value == "bin width"
        self.bin_count.visible = self.discretisation.value == "bin count"

    def ibsi_settings(self) -> IBSISettings:
        """The IBSI settings of the form.

        Returns
        -------
        IBSISettings
            Settings for :func:`~napari_medimg.measure.ibsi.compute_ibsi_features`.
        """
        scheme = self.discretisation.value
        return IBSISettings(
            by_slice=self.by_slice.value,
            resample_mm=self.resample_mm.value or None,
            interpolation=self.interpolation.value,
            reseg_range=(self.reseg_low.value, self.reseg_high.value) if self.reseg.value else None,
            reseg_sigma=self.reseg_sigma.value or None,
            bin_width=self.bin_width.value if scheme == "bin width" else None,
            bin_count=self.bin_count.value if scheme == "bin count" else None,
            ivh_bin_width=self.ivh_bin_width.value or None,
        )

    def _image_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if layer._type_string == "image"]

    @property
    def selected_groups(self) -> list[str]:
        return [group for group, box in self.groups.items() if box.value]

    def measure(self, *_) -> None:
        """Compute the table in a worker; on completion merge it into ``features`` and show the table dock."""
        labels_layer = self.labels.value
        if labels_layer is None or self.worker is not None:
            return
        groups = self.selected_groups
        # layer data as is: lazy (dask) volumes are read in the worker, not on the main thread; of a 4D
        # (volume, z, y, x) image, the volume its slider shows
        images = {
            layer.name: shown_volume(self.viewer, layer).array if layer.ndim == 4 else layer.data
            for layer in self.images.value
        }
        if not groups:
            self.status.value = "select at least one feature group"
            return
        if not images and groups != ["shape"]:
            self.status.value = "select an image for intensity and texture features"
            return
        mismatched = [name for name, array in images.items() if array.shape != labels_layer.data.shape]
        if mismatched:
            self.status.value = f"{', '.join(mismatched)}: not on the labels' voxel grid"
            return
        # same shape but placed elsewhere (origin, direction, spacing): never measured as if aligned
        shifted = [
            layer.name for layer in self.images.value if not _aligned(self.viewer, layer, labels_layer)
        ]
        if shifted:
            self.status.value = (
                f"{', '.join(shifted)}: not on the labels' voxel grid (placed differently in mm)"
            )
            return
        volume = layer_to_volume(labels_layer)
        ibsi = self.mode.value == "IBSI"
        if ibsi:
            if len(images) != 1:
                self.status.value = "IBSI mode measures one image: select exactly one"
                return
            try:
                settings = self.ibsi_settings()
            except ValueError as error:
                self.status.value = f"error: {error}"
                return
            params = {"groups": groups, "ibsi": True, **_op_settings(settings)}
            function, args = compute_ibsi_features, (volume, next(iter(images.values())))
            kwargs = {"settings": settings, "families": groups}
        else:
            params = {"groups": groups, "bin_width": self.bin_width.value}
            function, args = compute_features, (volume, images or None)
            kwargs = {"groups": groups, "bin_width": self.bin_width.value}

        def done(table):
            written = list(labels_layer.metadata.get(FEATURE_COLUMNS_KEY, ()))
            labels_layer.features = merge_features(labels_layer.features, table, replace=written)
            labels_layer.metadata[FEATURE_COLUMNS_KEY] = [c for c in table.columns if c != "label"]
            self.show_table(labels_layer)
            kept = [c for c in labels_layer.features.columns if c not in table.columns and c != "index"]
            extra = f"; kept {', '.join(kept)}" if kept else ""
            self.status.value = f"{len(table)} objects, {table.shape[1] - 1} features{extra}"
            if len(images) == 1:
                record_step("features", params, [*images, labels_layer.name], labels_layer.name)

        self.run_job(function, *args, description=f"Measure {labels_layer.name}", on_done=done, **kwargs)

    def apply(self, *_) -> None:
        self.measure()

    def show_table(self, labels_layer: napari.layers.Labels) -> FeatureTableWidget:
        """Open (or refresh) the table dock of ``labels_layer``."""
        table = self.tables.get(labels_layer.name)
        if table is not None and table.layer is labels_layer:
            table.refresh()
            return table
        table = FeatureTableWidget(self.viewer, labels_layer)
        self.viewer.window.add_dock_widget(
            table, name=f"Features: {labels_layer.name}", area="right", tabify=True
        )
        self.tables[labels_layer.name] = table
        return table


def _op_settings(settings: IBSISettings) -> dict:
    """The ``features`` operation's parameters for IBSI settings (so a recipe replays the measurement)."""
    values = settings.as_dict()
    values.pop("round_intensities")
    if values["reseg_range"] is not None:
        values["reseg_range"] = [None if not np.isfinite(v) else v for v in values["reseg_range"]]
    return values
