"""The home panel, window layout on a 1,000 px screen, and reader messages as notifications."""

import numpy as np
from napari.utils.notifications import notification_manager

from napari_medimg.plugin.home import HomeWidget, tool_entries
from napari_medimg.plugin.messages import MESSAGES, announce_layers

SCREEN_HEIGHT = 1000


def test_home_panel_opens_every_tool_with_short_distinct_titles(make_napari_viewer):
    viewer = make_napari_viewer()
    home = HomeWidget(viewer)
    viewer.window.add_dock_widget(home, name="napari-medimg")
    entries = tool_entries()
    titles = [title for _, title, _, _ in entries]
    assert len(entries) >= 9 and len(set(titles)) == len(titles)
    assert max(len(t) for t in titles) <= 24
    for _, title, command, _ in entries:
        tool = home.show_tool(command)
        assert home.stack.currentWidget() is getattr(tool, "native", tool)
        assert home.title.text() == title and home.buttons[command].isChecked()
    assert home.show_tool(entries[0][2]) is home.tools[entries[0][2]]  # created once, shown again
    assert viewer.window._qt_window.minimumSizeHint().height() <= SCREEN_HEIGHT
    home.close()  # closes the tools in it: extra views of the orthogonal views close with it


#: the nine panels whose docks once made the window 3,705 px tall
FIRST_NINE = (
    "DICOM browser",
    "Export image as DICOM series",
    "Threshold",
    "Preprocess",
    "Region growing",
    "Morphology and islands",
    "Fill between slices",
    "Measure objects",
    "CNN classifier",
)


def test_the_first_nine_panels_docked_side_by_side_fit_a_1000_px_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    for name in FIRST_NINE:
        dock, _ = viewer.window.add_plugin_dock_widget("napari-medimg", name)
        assert dock.minimumSizeHint().height() < 200  # each panel scrolls inside its dock
    assert viewer.window._qt_window.minimumSizeHint().height() <= SCREEN_HEIGHT


def test_every_panel_of_the_manifest_docked_tabified_fits_a_1000_px_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    docks = [
        viewer.window.add_plugin_dock_widget("napari-medimg", widget.display_name, tabify=True)[0]
        for widget in _manifest_widgets()
    ]
    assert viewer.window._qt_window.minimumSizeHint().height() <= SCREEN_HEIGHT
    for dock in docks:  # as the user closes them: each panel disconnects from the viewer
        dock.widget().close()


def _manifest_widgets():
    from napari_medimg.plugin import home

    return home.PluginManifest.from_file(
        home.Path(home.__file__).resolve().parents[1] / "napari.yaml"
    ).contributions.widgets


def test_reader_warnings_become_notifications_and_stay_readable(make_napari_viewer):
    viewer = make_napari_viewer()
    home = HomeWidget(viewer)
    before = len(notification_manager.records)
    layer = (
        np.zeros((2, 4, 4)),
        {"name": "tilted CT", "metadata": {"warnings": ["gantry tilt 14.0°"]}},
        "image",
    )
    assert announce_layers([layer]) == [layer]
    assert any(
        "tilted CT: gantry tilt 14.0°" in str(r.message) for r in notification_manager.records[before:]
    )
    assert any(m.source == "tilted CT" and "gantry tilt" in m.text for m in MESSAGES)
    assert "gantry tilt 14.0°" in home.messages.item(0).text()


def test_layers_the_user_adds_get_the_scans_units(make_napari_viewer, small_phantom):
    """napari draws a new layer before any plugin hears of it, so its one-off warning at insertion cannot
    be prevented; what matters is that units stay consistent afterwards (rendering and the slider in mm)."""
    from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer

    viewer = make_napari_viewer()
    HomeWidget(viewer)
    set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    points = viewer.add_points(ndim=3, scale=viewer.layers["CT"].scale)
    labels = viewer.add_labels(np.zeros(small_phantom.image.shape, np.uint8), scale=viewer.layers["CT"].scale)
    assert {str(u) for u in points.units} == {str(u) for u in labels.units} == {"millimeter"}
    assert viewer.layers.extent.units is not None  # consistent: napari keeps rendering in mm
    before = len(notification_manager.records)
    viewer.window._qt_viewer.canvas._update_world_units()
    assert not any("Inconsistent units" in str(r.message) for r in notification_manager.records[before:])
    assert viewer.dims.range[0].step == small_phantom.image.spacing[0]  # the slider steps one CT slice
