"""Widget defects found by hand (issue 11), each driven as a user would."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medimg.io.nifti import write_nifti
from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
from napari_medimg.plugin.widgets.threshold import ThresholdWidget


def _settle(qtbot, widget, timeout=20000):
    qtbot.waitUntil(lambda: not widget.preview_busy and widget.worker is None, timeout=timeout)


def test_clearing_layers_with_threshold_docked_leaves_nothing_behind(
    make_napari_viewer, qtbot, small_phantom, tmp_path
):
    viewer = make_napari_viewer()
    set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    widget = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Threshold")
    widget.image.value = viewer.layers["CT"]
    _settle(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["CT", "CT threshold preview"]
    viewer.layers.clear()
    qtbot.wait(400)  # longer than the preview's debounce: nothing may come back
    _settle(qtbot, widget)
    assert len(viewer.layers) == 0
    path = tmp_path / "ct.nii.gz"
    write_nifti(small_phantom.image, path)
    (opened,) = viewer.open(str(path), plugin="napari-medimg")
    widget.image.value = opened
    _settle(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == [opened.name, f"{opened.name} threshold preview"]
    assert viewer.layers.selection.active is opened  # the preview never takes the selection


def test_otsu_on_a_lazy_volume_shows_its_real_maximum(make_napari_viewer, qtbot, small_phantom):
    import dask.array as da

    viewer = make_napari_viewer()
    lazy = small_phantom.image.with_array(
        da.from_array(np.asarray(small_phantom.image.array), chunks=(8, -1, -1))
    )
    layer = set_or_add_layer(viewer, layer_data_tuple(lazy, "image", name="lazy CT"))
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    widget.method.value = "otsu"
    _settle(qtbot, widget)
    assert widget.high.value == float(np.max(small_phantom.image.array))  # not the int16 maximum 32767
    assert widget.status.value.startswith("otsu:")
    widget.method.value = "li"
    assert not widget.status.value.startswith("otsu")  # no stale thresholds of the previous method


def _labels(viewer, array, name):
    from napari_medimg.geometry import Volume

    return set_or_add_layer(viewer, layer_data_tuple(Volume(array, (1.0, 1.0, 1.0)), "labels", name=name))


def test_morphology_follows_the_picked_label_and_explains_what_it_did_not_do(make_napari_viewer, qtbot):
    from napari_medimg.plugin.widgets.segment_tools import LabelEditWidget

    viewer = make_napari_viewer()
    base = np.zeros((6, 20, 20), np.uint8)
    base[2:4, 2:8, 2:8] = 1
    base[2:4, 8:12, 2:8] = 2  # label 2 touches label 1
    layer = _labels(viewer, base, "organs")
    other = np.zeros_like(base)
    other[2:4, 2:12, 2:8] = 1  # covers label 1 and label 2's voxels
    other_layer = _labels(viewer, other, "drawn")
    widget = LabelEditWidget(viewer)
    widget.labels_layer.value = layer
    layer.selected_label = 2
    assert widget.value.value == 2  # follows the label picked in napari's controls
    layer.selected_label = 1
    assert widget.value.value == 1

    widget.value.value = 7
    widget.operation.value = "dilate"
    widget.apply()
    assert widget.worker is None and widget.status.value.startswith("error: label 7 is not in organs")
    assert "1, 2" in widget.status.value

    widget.value.value = 1
    widget.operation.value = "logical: union"
    widget.other.value = other_layer
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert "48 voxels of other labels were kept" in widget.status.value, widget.status.value
    assert np.count_nonzero(layer.data == 2) == 48


def _region_widget(viewer, image):
    from napari_medimg.plugin.widgets.segment_tools import RegionGrowingWidget

    widget = RegionGrowingWidget(viewer)
    widget.image.value = image
    return widget


def _grow_speck(viewer, qtbot, array, name):
    from napari_medimg.geometry import Volume

    image = set_or_add_layer(viewer, layer_data_tuple(Volume(array, (1.0, 1.0, 1.0)), "image", name=name))
    points = viewer.add_points([image.data_to_world((2, 15, 15))], name=f"{name} seed", scale=image.scale)
    widget = _region_widget(viewer, image)
    widget.method.value = "confidence connected"
    widget.points.value = points
    widget.radius_mm.value = 3.0
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    return widget, viewer.layers[f"{name} region"].data


def test_confidence_connected_keeps_its_seed_and_says_why_it_grew_no_further(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    array = np.zeros((5, 30, 30), np.int16)
    array[2, 15, 15] = 500  # a bright speck: mean ± 2.5 sd of the ball around it excludes its own value
    widget, grown = _grow_speck(viewer, qtbot, array, "speck")
    assert grown[2, 15, 15] == widget.value.value  # the seed is always part of its region
    walled = array.copy()
    for axis in range(3):
        for step in (-1, 1):
            index = [2, 15, 15]
            index[axis] += step
            walled[tuple(index)] = 1000  # every face neighbour far outside the range
    widget, grown = _grow_speck(viewer, qtbot, walled, "walled")
    assert np.count_nonzero(grown) == 1 and grown[2, 15, 15]
    assert "only the seed voxel" in widget.status.value and "raise the multiplier" in widget.status.value


def test_random_walker_works_around_the_seeds_and_names_the_background(
    make_napari_viewer, qtbot, small_phantom, monkeypatch
):
    viewer = make_napari_viewer()
    image = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    row = small_phantom.lesion_table.iloc[5]
    k, j, i = np.round(
        small_phantom.image.world_to_index([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm])
    )
    k, j, i = int(k), int(j), int(i)
    seeds = np.zeros(image.data.shape, np.uint8)
    seeds[k, j, i] = 1
    for dk in (-1, 0, 1):  # background painted as a square around the lesion, as one does in Slicer
        seeds[k + dk, j - 12 : j + 13, [i - 12, i + 12]] = 2
        seeds[k + dk, [j - 12, j + 12], i - 12 : i + 13] = 2
    seed_layer = viewer.add_labels(seeds, name="seeds", scale=image.scale, translate=image.translate)
    widget = _region_widget(viewer, image)
    widget.method.value = "grow from seeds"
    widget.grow_method.value = "random_walker"
    widget.seeds.value = seed_layer
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)  # seconds, not minutes: the box only
    status = widget.status.value
    assert "label 2 (background)" in status and "label 1 grew to" in status, status
    grown = viewer.layers["CT grown"].data
    assert grown[k, j, i] == 1 and grown[0, 0, 0] == 0  # far from the seeds nothing is labelled
    from napari_medimg.processing import region_growing

    monkeypatch.setattr(region_growing, "RANDOM_WALKER_MAX_VOXELS", grown.size // 4)
    widget.margin_mm.value = 1000.0  # the whole image: refused with the way out, not minutes of waiting
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=20000)
    assert "random walker would work on" in widget.status.value and "watershed" in widget.status.value


def _preprocess(viewer, image):
    from napari_medimg.plugin.widgets.preprocess import PreprocessWidget

    widget = PreprocessWidget(viewer)
    widget.image.value = image
    return widget


def test_preprocess_results_in_other_units_get_contrast_that_fits_them(
    make_napari_viewer, qtbot, small_phantom
):
    viewer = make_napari_viewer()
    image = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    assert list(image.contrast_limits) == [-160.0, 240.0]  # the CT's 40/400 window
    widget = _preprocess(viewer, image)
    widget.operation.value = "normalize"
    widget.apply()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    result = viewer.layers["CT normalize"]
    low, high = result.contrast_limits
    values = np.asarray(result.data)
    assert low >= values.min() and high <= values.max() and high - low > 1.0  # z-scores, not −160…240
    assert np.mean((values > low) & (values < high)) > 0.5  # most voxels are not clipped to one grey


def test_preprocess_window_presets_fill_the_fields_and_previews_show_or_say_why_not(
    make_napari_viewer, qtbot, small_phantom
):
    viewer = make_napari_viewer()
    image = set_or_add_layer(viewer, layer_data_tuple(small_phantom.image, "image", name="CT"))
    widget = _preprocess(viewer, image)
    widget.operation.value = "window/level"
    preset, level, width = (widget._field("window/level", name) for name in ("preset", "level", "width"))
    preset.value = "lung"
    assert (level.value, width.value) == (-600.0, 1500.0)
    width.value = 1000.0
    assert preset.value == "custom"  # a typed width is applied, so the preset no longer is
    assert widget.step()[1] == {"level": -600.0, "width": 1000.0, "output": "clip"}
    widget.preview.value = True
    for operation in ("CLAHE", "gamma", "normalize"):
        widget.operation.value = operation
        if operation == "gamma":
            widget.set_params(value=2.0)
        qtbot.waitUntil(lambda: not widget.preview_busy, timeout=60000)
        preview = viewer.layers["CT preview"]
        assert preview.visible and preview.data.any(), operation
        assert viewer.layers.selection.active is image
    widget.operation.value = "resample"
    assert "no slice preview" in widget.status.value and not viewer.layers["CT preview"].visible


@pytest.mark.shared_data
@pytest.mark.slow
def test_readme_white_matter_figure_comes_from_the_widgets(make_napari_viewer, qtbot, shared_data):
    """The README's MNI152 white-matter Dice, reproduced as a user would: Threshold (multi-Otsu, 3 classes,
    ignore zeros), then Morphology and islands (keep largest island) on the brightest class."""
    from napari_medimg.measure.metrics import dice
    from napari_medimg.plugin.widgets.segment_tools import LabelEditWidget

    folder = shared_data / "segmentation" / "mni152"
    viewer = make_napari_viewer()
    (t1,) = viewer.open(
        str(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"), plugin="napari-medimg"
    )
    threshold = ThresholdWidget(viewer)
    threshold.image.value = t1
    threshold.preview.value = False
    threshold.method.value = "multi-otsu"
    threshold.classes.value = 3
    threshold.ignore_zeros.value = True
    threshold.apply_to_volume()
    qtbot.waitUntil(lambda: threshold.worker is None, timeout=300000)
    classes = viewer.layers[threshold.result_name]
    edit = LabelEditWidget(viewer)
    edit.labels_layer.value = classes
    edit.value.value = 3  # the brightest class of the non-zero voxels: white matter
    edit.operation.value = "keep largest island"
    edit.apply()
    qtbot.waitUntil(lambda: edit.worker is None, timeout=300000)
    (wm,) = viewer.open(
        str(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), plugin="napari-medimg"
    )
    assert dice(np.asarray(classes.data) == 3, np.asarray(wm.data) >= 128) >= 0.92  # README: 0.93
