"""Oblique and tilted series: display, readout and region-growing seeds agree with the true LPS geometry."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.geometry import DISPLAY_TOLERANCE_MM, Volume, lps_to_world, world_to_lps
from napari_medimg.plugin import layers as layers_module
from napari_medimg.plugin.layers import layer_data_tuple, layer_frame, layer_to_volume, set_or_add_layer
from napari_medimg.plugin.views.readout import readout
from napari_medimg.plugin.widgets.segment_tools import RegionGrowingWidget
from napari_medimg.processing.registration import rigid_matrix

TIMEOUT = 60_000


def _rotation(axis, degrees):
    angles = [0.0, 0.0, 0.0]
    angles[axis] = degrees
    return rigid_matrix(angles)[:3, :3]


def _double_oblique() -> tuple[Volume, tuple[int, int, int]]:
    """A 30° + 20° double-oblique volume with a bright 5×5×5 cube around voxel (12, 30, 25)."""
    array = np.full((24, 60, 50), 10, np.int16)
    centre = (12, 30, 25)
    k, j, i = centre
    array[k - 2 : k + 3, j - 2 : j + 3, i - 2 : i + 3] = 500
    direction = _rotation(2, 20) @ _rotation(0, 30) @ np.eye(3)[:, ::-1]
    meta = {"modality": "CT", "units": "HU"}
    return Volume(array, (2.0, 1.2, 1.0), (-30.0, 12.0, 55.0), direction, meta), centre


def _show(viewer, volume, mode, name="series"):
    layers_module.set_oblique_display(mode)
    try:
        return set_or_add_layer(viewer, layer_data_tuple(volume, "image", name=name))
    finally:
        layers_module.set_oblique_display("resample")


def _grow(viewer, qtbot, layer, world, low=None, high=None):
    points = viewer.add_points([world], name="seeds")
    widget = RegionGrowingWidget(viewer)
    widget.image.value, widget.points.value = layer, points
    widget.method.value = "connected threshold"
    if low is not None:
        widget.auto_range.value = False
        widget.low.value, widget.high.value = low, high
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert not widget.status.value.startswith("error"), widget.status.value
    return viewer.layers[widget.result_name].data


@pytest.mark.parametrize("mode", ["resample", "frame"])
def test_seed_clicked_on_double_oblique_grows_from_that_voxel(make_napari_viewer, qtbot, mode):
    viewer = make_napari_viewer()
    volume, centre = _double_oblique()
    assert volume.display_residual()[1] > 10  # far beyond what may be drawn unrotated
    layer = _show(viewer, volume, mode)
    display = layer.metadata["napari_medimg"]["display"]
    assert display["residual_mm"] <= DISPLAY_TOLERANCE_MM
    shown = layer_to_volume(layer)
    lps = volume.index_to_world(centre)
    world = lps_to_world(lps, layer_frame(layer))  # where the user clicks to hit that voxel
    info = readout(viewer, world)
    assert np.allclose(info["lps"], lps, atol=1e-6)
    grown = _grow(viewer, qtbot, layer, world, 300, 1000)
    index = tuple(np.rint(shown.world_to_index(lps)).astype(int))
    assert grown[index] > 0  # grown from the voxel clicked
    region = np.argwhere(grown > 0)
    centroid = shown.index_to_world(region.mean(axis=0))
    if mode == "frame":  # shown as acquired: exactly the 125 cube voxels, same values
        assert "frame" in display["frame"] and display["mode"] == "as acquired"
        assert len(region) == 125 and info["layers"][0]["value"] == 500
        assert info["layers"][0]["index"] == centre
    else:  # resampled onto patient axes (linear): the cube's centre stays in place
        assert display["mode"].startswith("resampled") and shown.is_axis_aligned
        assert 60 < len(region) < 250
    assert np.linalg.norm(centroid - lps) < 1.0


@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["resample", "frame"])
@pytest.mark.parametrize(
    "folder, voxel",
    [
        ("siemens_ct_gantry_tilt", (2, 400, 100)),
        ("philips_fieldmap_classic_2echo_magphase", (26, 40, 20)),
        ("siemens_mosaic_jpeg_lossless", (17, 30, 40)),
        ("siemens_mosaic_fmri_hf_oblique", (20, 30, 33)),  # 4D: 6 volumes
    ],
)
def test_seed_and_readout_on_real_tilted_and_oblique_series(
    make_napari_viewer, qtbot, shared_data, folder, voxel, mode
):
    from napari_medimg.io.dicom import read_dicom

    source = read_dicom(shared_data / "dicom" / folder, lazy=False)[0]
    four_d = source.array.ndim == 4
    one = (
        Volume(np.asarray(source.array[1]), source.spacing, source.origin, source.direction)
        if four_d
        else source
    )
    assert one.obliquity_degrees > 3
    viewer = make_napari_viewer()
    layer = _show(viewer, source, mode)
    frame = layer_frame(layer)
    lps = one.index_to_world(voxel)
    world = lps_to_world(lps, frame)
    assert np.allclose(world_to_lps(world, frame), lps)
    full = np.r_[1.0, world] if four_d else world  # volume 1 of a 4D series
    info = readout(viewer, full)
    assert np.allclose(info["lps"], lps, atol=1e-6)
    shown = layer_to_volume(layer)
    index = tuple(np.rint(shown.world_to_index(lps)).astype(int))
    full_index = (1, *index) if four_d else index
    assert info["layers"][0]["index"] == full_index
    if mode == "frame":  # the series' own voxels: the readout is the source voxel and its value
        order = one.canonical(frame)
        assert np.allclose(shown.index_to_world(index), lps, atol=1e-3)
        assert info["layers"][0]["value"] == pytest.approx(float(np.asarray(order.array)[index]))
    else:
        assert layer.metadata["napari_medimg"]["display"]["mode"].startswith("resampled")
        assert np.linalg.norm(shown.index_to_world(index) - lps) <= np.linalg.norm(shown.spacing) / 2 + 1e-6
    if four_d:
        return  # region growing works on 3D images
    value = float(layer.data[index])
    grown = _grow(viewer, qtbot, layer, world, value - 1, value + 1)
    assert grown[index] > 0


@pytest.mark.parametrize("mode", ["resample", "frame"])
def test_two_series_of_one_frame_of_reference_line_up(make_napari_viewer, mode):
    from napari_medimg.processing.registration import resample

    array = np.zeros((30, 40, 40), np.int16)
    array[14:17, 18:23, 9:14] = 800  # a bright block around voxel (15, 20, 11)
    axial = Volume(array, (2.0, 1.0, 1.0), (-20.0, -20.0, -30.0), metadata={"modality": "CT"})
    lps = axial.index_to_world([15, 20, 11])
    # the same anatomy acquired 30° oblique (one frame of reference): resampled from world geometry
    direction = _rotation(0, 30) @ np.eye(3)[:, ::-1]
    grid = Volume(
        np.zeros((40, 50, 50), np.uint8), (1.0, 1.0, 1.0), lps - direction @ [20.0, 25.0, 25.0], direction
    )
    oblique = resample(axial, grid, interpolation="nearest", fill_value=0)
    assert oblique.array[20, 25, 25] == 800
    viewer = make_napari_viewer()
    first = _show(viewer, oblique, mode, "oblique")
    second = _show(viewer, axial, mode, "axial")
    assert np.allclose(
        layer_frame(first) if layer_frame(first) is not None else np.eye(3)[:, ::-1],
        layer_frame(second) if layer_frame(second) is not None else np.eye(3)[:, ::-1],
    )
    info = readout(viewer, lps_to_world(lps, layer_frame(first)))
    assert np.allclose(info["lps"], lps)
    assert [entry["value"] for entry in info["layers"]] == [800, 800]
    assert [entry["name"] for entry in info["layers"]] == ["oblique", "axial"]


@pytest.mark.shared_data
def test_user_switches_how_an_oblique_series_is_shown(make_napari_viewer, shared_data):
    from napari_medimg.io.dicom import read_dicom
    from napari_medimg.plugin.views.orthogonal import OrthogonalViewsWidget

    source = read_dicom(shared_data / "dicom" / "siemens_ct_gantry_tilt", lazy=False)[0]
    viewer = make_napari_viewer()
    _show(viewer, source, "resample", "CT")
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    assert "resampled" in widget.display_label.text() and "14.00°" in widget.display_label.text()
    widget.oblique_combo.setCurrentIndex(1)  # show in the series' own frame
    try:
        text = widget.reshow_selected()
        layer = viewer.layers["CT"]
        assert layer.metadata["napari_medimg"]["display"]["mode"] == "as acquired"
        assert "own frame" in text and layer_frame(layer) is not None
        assert (
            layer.data.shape == source.canonical(layer_frame(layer)).shape
        )  # the voxels as read, no resampling
    finally:
        widget.oblique_combo.setCurrentIndex(0)
    widget.reshow_selected()
    assert viewer.layers["CT"].metadata["napari_medimg"]["display"]["mode"].startswith("resampled")
    assert layer_frame(viewer.layers["CT"]) is None
