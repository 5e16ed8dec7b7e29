"""Orthogonal views: the expected slices of a phantom with markers at known world positions, linked clicks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.geometry import Volume, lps_to_world, world_to_lps
from napari_medimg.plugin.layers import layer_data_tuple, layer_frame, set_or_add_layer
from napari_medimg.plugin.views.orthogonal import OrthogonalViewsWidget, plane_markers
from napari_medimg.plugin.views.readout import format_lps, readout
from napari_medimg.processing.registration import rigid_matrix

#: marker voxels of the phantom (k, j, i) and their values
MARKERS = {(10, 20, 30): 100, (25, 40, 12): 200, (5, 8, 44): 300}


def _phantom(direction=None) -> Volume:
    array = np.zeros((32, 48, 56), np.int16)
    for (k, j, i), value in MARKERS.items():
        array[k, j, i] = value
    direction = np.eye(3)[:, ::-1] if direction is None else direction
    return Volume(array, (3.0, 1.5, 1.0), (-20.0, 30.0, 40.0), direction, {"modality": "CT", "units": "HU"})


def _rotation(axis, degrees):
    angles = [0.0, 0.0, 0.0]
    angles[axis] = degrees
    return rigid_matrix(angles)[:3, :3]


def _view_slice(view):
    """The 2D array the view's image mirror shows now (napari's own slice of the mirrored layer)."""
    image = next(layer for layer in view.model.layers if layer._type_string == "image")
    return np.asarray(image._slice.image.view)


def test_world_lps_pair_is_one_inverse_pair():
    points = np.random.default_rng(0).normal(size=(5, 3)) * 50
    assert np.allclose(world_to_lps(points), points[:, ::-1])
    frame = _rotation(0, 20) @ np.eye(3)[:, ::-1]
    assert np.allclose(lps_to_world(world_to_lps(points, frame), frame), points)
    assert format_lps([45.44, 40.4, 30.0]) == "L 45.4 P 40.4 S 30.0 mm"
    assert format_lps([-12.0, -3.0, -1.0]) == "R 12.0 A 3.0 I 1.0 mm"


def test_markers_radiological():
    assert plane_markers("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert plane_markers("coronal") == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    assert plane_markers("sagittal") == {"top": "S", "bottom": "I", "left": "A", "right": "P"}


@pytest.mark.parametrize("mode", ["axis_aligned", "oblique_frame"])
def test_three_views_show_marker_slices_and_follow_clicks(make_napari_viewer, qtbot, mode):
    from napari_medimg.plugin import layers as layers_module

    viewer = make_napari_viewer()
    if mode == "axis_aligned":
        volume = _phantom()
    else:  # 25° about x then 10° about z: shown exactly in its own frame
        volume = _phantom(_rotation(2, 10) @ _rotation(0, 25) @ np.eye(3)[:, ::-1])
        layers_module.set_oblique_display("frame")
    try:
        layer = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="phantom"))
    finally:
        layers_module.set_oblique_display("resample")
    frame = layer_frame(layer)
    assert (frame is None) == (mode == "axis_aligned")
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views", area="right")
    assert [v.plane for v in widget.views] == ["coronal", "sagittal"]
    for (k, j, i), value in MARKERS.items():
        lps = volume.index_to_world([k, j, i])
        world = lps_to_world(lps, frame)
        widget.move_to(world)
        qtbot.wait(10)
        # main (axial) slice, coronal and sagittal views all contain the marker at the crosshair
        assert viewer.dims.point[0] == pytest.approx(world[0], abs=1e-6)
        main_k = int(np.rint(layer.world_to_data(viewer.dims.point)[0]))
        assert main_k == k and layer.data[main_k, j, i] == value
        coronal, sagittal = (_view_slice(v) for v in widget.views)
        assert coronal.shape == (32, 56) and coronal[k, i] == value  # (S, L) plane at row j
        assert sagittal.shape == (32, 48) and sagittal[k, j] == value  # (S, P) plane at column i
        info = readout(viewer, viewer.dims.point)
        assert np.allclose(info["lps"], lps, atol=1e-6)
        assert info["layers"][0]["index"] == (k, j, i) and info["layers"][0]["value"] == value
        assert widget.views[0].title.text().startswith("coronal · ")
    # click a marker in the sagittal view: the axial slice and the coronal view move to it
    (k, j, i), value = next(iter(MARKERS.items()))
    target = lps_to_world(volume.index_to_world([k, j, i]), frame)
    widget.move_to(lps_to_world(volume.index_to_world([0, 0, 0]), frame))
    sagittal = widget.views[1]
    sagittal.model.dims.set_point(2, target[2])  # the sagittal view is on the marker's plane
    _click(sagittal, target)
    assert int(np.rint(layer.world_to_data(viewer.dims.point)[0])) == k
    assert _view_slice(widget.views[0])[k, i] == value
    widget.close_views()


def _drawn(view):
    """The 2D array the view's image mirror has on its canvas now (its vispy node's data)."""
    image = next(layer for layer in view.model.layers if layer._type_string == "image")
    return np.asarray(view.qt_viewer.layer_to_visual[image].node._data)


class _Event:
    def __init__(self, position, kind):
        self.position, self.type = position, kind


def _click(view, world):
    """A press and release in the view at a world position: the view's own drag callback, as napari calls it."""
    event = _Event(tuple(world), "mouse_press")
    callback = view.model.mouse_drag_callbacks[-1]  # the dock's (weakly bound) drag callback
    gen = callback(view.model, event)
    next(gen)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(gen)


class _MouseEvent:
    def __init__(self, position, pos=(0.0, 0.0), kind="mouse_press", modifiers=()):
        self.position, self.pos, self.type, self.modifiers = position, pos, kind, modifiers


def test_window_presets_drag_window_level_and_shift_move(make_napari_viewer):
    viewer = make_napari_viewer()
    ct = set_or_add_layer(viewer, layer_data_tuple(_phantom(), "image", name="CT"))
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    presets = [widget.preset_combo.itemText(i) for i in range(widget.preset_combo.count())]
    assert {"lung", "brain", "bone", "mediastinum", "abdomen", "liver"} <= set(presets)
    assert presets[-1].startswith("auto")
    widget.apply_preset("lung")
    assert tuple(ct.contrast_limits) == pytest.approx((-1350.0, 150.0))
    mr_volume = _phantom()
    mr_volume.metadata["modality"] = "MR"
    mr_volume.array[:] = np.arange(mr_volume.array.size).reshape(mr_volume.shape) % 1000
    mr = set_or_add_layer(viewer, layer_data_tuple(mr_volume, "image", name="MR"))
    viewer.layers.selection.active = mr
    assert [widget.preset_combo.itemText(i) for i in range(widget.preset_combo.count())][0].startswith("auto")
    widget.apply_preset()
    low, high = mr.contrast_limits
    assert 0 <= low < 20 and 980 < high <= 999
    # mouse-drag window/level on the main canvas: right = wider, down = lower level
    widget.wl_drag.setChecked(True)
    assert widget._drag_wl in viewer.mouse_drag_callbacks and not mr.mouse_pan
    level, width = (low + high) / 2, high - low
    event = _MouseEvent(viewer.dims.point, (100.0, 100.0))
    drag = widget._drag_wl(viewer, event)
    next(drag)
    event.type, event.pos = "mouse_move", (200.0, 150.0)
    next(drag)
    new_low, new_high = mr.contrast_limits
    assert new_high - new_low > width and (new_low + new_high) / 2 < level
    widget.wl_drag.setChecked(False)
    assert widget._drag_wl not in viewer.mouse_drag_callbacks and mr.mouse_pan
    # Shift + move in the main canvas moves the crosshair; the readout follows the cursor
    target = lps_to_world(_phantom().index_to_world([25, 40, 12]))
    assert widget._move_callback in viewer.mouse_move_callbacks
    widget._move_callback(viewer, _MouseEvent(tuple(target), kind="mouse_move", modifiers=("Shift",)))
    assert np.allclose(viewer.dims.point[-3:], target)
    assert widget.readout_label.text().startswith(format_lps(_phantom().index_to_world([25, 40, 12])))
    widget.close_views()


def test_hidden_dock_does_no_work_and_catches_up_when_shown(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    layer = set_or_add_layer(viewer, layer_data_tuple(_phantom(), "image", name="phantom"))
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    qtbot.waitUntil(widget.isVisible)
    widget.hide()
    assert widget._hidden
    (k, j, i), value = next(iter(MARKERS.items()))
    target = lps_to_world(_phantom().index_to_world([k, j, i]))
    viewer.dims.set_point([0, 1, 2], list(target))
    coronal = widget.views[0].model.dims
    assert coronal.point[1] != pytest.approx(target[1])  # nothing synced while hidden
    widget.show()
    assert coronal.point[1] == pytest.approx(target[1]) and _view_slice(widget.views[0])[k, i] == value
    assert layer.data[k, j, i] == value
    widget.close_views()


def test_a_drag_repaints_the_slice_titles_without_laying_out_the_window(make_napari_viewer, qtbot):
    # a QLabel title asked its layout to recompute on every move: up to the main window, which re-placed every
    # dock widget (animated) and repainted them per move of a drag
    from qtpy.QtCore import QEvent, QObject

    viewer = make_napari_viewer(show=True)  # a hidden window is not laid out
    volume = _phantom()
    set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="phantom"))
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    coronal, sagittal = widget.views
    watched = {widget, coronal, sagittal}
    world = [np.asarray(lps_to_world(volume.index_to_world(index))) for index in MARKERS]
    path = [world[0] + (world[1] - world[0]) * t for t in np.linspace(0.0, 1.0, 8)]
    event = _Event(tuple(path[0]), "mouse_press")
    drag = coronal.model.mouse_drag_callbacks[-1](coronal.model, event)
    next(drag)
    event.type = "mouse_move"
    event.position = tuple(path[1])
    next(drag)
    qtbot.wait(600)  # the first move and the rest after it have laid everything out

    class LayoutRequests(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 (Qt override)
            if event.type() == QEvent.Type.LayoutRequest and obj in watched:
                LayoutRequests.count += 1
            return False

    counter = LayoutRequests()
    # only the moves: napari's own slicing once the mouse rests is not what is counted
    widget._settle_timer.setInterval(60_000)
    for watched_widget in watched:
        watched_widget.installEventFilter(counter)
    titles = []
    for target in path[2:]:
        event.position = tuple(target)
        next(drag)
        qtbot.waitUntil(lambda: widget._pending_move is None, timeout=2000)  # noqa: B023
        qtbot.wait(30)
        titles.append(sagittal.title.text())
    for watched_widget in watched:
        watched_widget.removeEventFilter(counter)
    assert len(set(titles)) == len(titles) and all(t.startswith("sagittal · ") for t in titles)
    assert LayoutRequests.count == 0
    widget.close_views()


def test_drag_shows_only_the_latest_move_and_the_release_exactly(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    volume = _phantom()
    layer = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="phantom"))
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    coronal = widget.views[0]
    points = []
    viewer.dims.events.point.connect(lambda event: points.append(tuple(viewer.dims.point)))
    world = [lps_to_world(volume.index_to_world(index)) for index in MARKERS]
    event = _Event(tuple(world[0]), "mouse_press")
    drag = coronal.model.mouse_drag_callbacks[-1](coronal.model, event)
    next(drag)  # the press moves at once
    assert viewer.dims.point[0] == pytest.approx(world[0][0])
    event.type = "mouse_move"
    for target in world[1:]:  # two moves within one event-loop turn: neither is shown yet
        event.position = tuple(target)
        next(drag)
    assert widget.point()[0] == pytest.approx(world[0][0])
    before = len(points)
    qtbot.waitUntil(lambda: widget.point()[0] == pytest.approx(world[2][0]), timeout=2000)
    (k, j, i), value = list(MARKERS.items())[2]
    # while dragging, every canvas draws its planes straight from the arrays (napari's pixels, not its
    # slicing): the main canvas the axial plane of the latest move, the sagittal view its plane; the main
    # viewer's dims.point (slider, slice text) follows when the mouse rests
    sagittal = widget.views[1]
    assert widget._settle_timer.isActive() and len(points) == before
    assert viewer.dims.point[0] == pytest.approx(world[0][0])
    main_drawn = np.asarray(viewer.window._qt_viewer.layer_to_visual[layer].node._data)
    assert main_drawn.dtype == np.float32 and np.array_equal(main_drawn, volume.array[k])
    drawn = _drawn(sagittal)
    assert drawn.dtype == np.float32 and np.array_equal(drawn, volume.array[:, :, i]) and drawn[k, j] == value
    # once the mouse rests, the point is set once (the intermediate position was dropped) and napari slices
    # every canvas itself, the same planes
    qtbot.waitUntil(lambda: not widget._settle_timer.isActive(), timeout=2000)
    assert len(points) - before == 1 and viewer.dims.point[0] == pytest.approx(world[2][0])
    assert int(np.rint(layer.world_to_data(viewer.dims.point)[0])) == k
    assert np.array_equal(np.asarray(layer._slice.image.view), volume.array[k])
    assert np.array_equal(_view_slice(sagittal), volume.array[:, :, i])
    assert viewer.canvas.overlays.text.text.endswith(
        f" {abs(viewer.dims.point[0]):.1f} mm"
    )  # main slice text
    # the crosshair line of the coronal view (S rows, L columns) crosses at the point
    pos = np.asarray(coronal.crosshair.pos)
    assert pos[0, 1] == pytest.approx(world[2][0]) and pos[2, 0] == pytest.approx(world[2][2])
    # the release lands exactly where the mouse is, without waiting for the event loop
    event.type, event.position = "mouse_release", tuple(world[1])
    with pytest.raises(StopIteration):
        next(drag)
    assert np.allclose(np.asarray(viewer.dims.point)[[0, 2]], np.asarray(world[1])[[0, 2]])
    (k, j, _), value = list(MARKERS.items())[1]
    assert _view_slice(widget.views[1])[k, j] == value
    assert widget._pending_move is None
    widget.close_views()


def test_a_drag_over_labels_is_sliced_by_napari_and_a_closed_dock_leaves_the_point_shown(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    volume = _phantom()
    layer = set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="phantom"))
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views")
    world = [lps_to_world(volume.index_to_world(index)) for index in MARKERS]
    # an image alone: a move is drawn from the array and the dims point waits; closing the dock sets it
    before = tuple(viewer.dims.point)
    widget.move_to(world[1], preview=True)
    assert tuple(viewer.dims.point) == before
    assert widget.point()[0] == pytest.approx(world[1][0])
    widget.close_views()
    assert viewer.dims.point[0] == pytest.approx(world[1][0])
    (k, _, _), _ = list(MARKERS.items())[1]
    assert int(np.rint(layer.world_to_data(viewer.dims.point)[0])) == k
    # with a Labels layer shown, the main canvas cannot be drawn from the arrays: napari slices it at once
    labels = np.zeros(volume.shape, np.uint8)
    set_or_add_layer(
        viewer, layer_data_tuple(Volume(labels, volume.spacing, volume.origin, volume.direction), "labels")
    )
    widget = OrthogonalViewsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal views 2")
    widget.move_to(world[2], preview=True)
    assert viewer.dims.point[0] == pytest.approx(world[2][0]) and widget.point() == tuple(viewer.dims.point)
    widget.close_views()
