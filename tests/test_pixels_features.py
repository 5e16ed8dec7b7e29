"""Line and morphological-residue features of the pixel classifier, and the 'auto' intensity normalisation."""

from __future__ import annotations

import numpy as np

from napari_medimg.geometry import Volume
from napari_medimg.learn.pixels import (
    FeatureSettings,
    compute_features,
    feature_names,
    halo_pixels,
    train_pixel_classifier,
)

THIN = FeatureSettings(sigmas_mm=(1.0, 2.0), groups=("tophat", "line"), raw=False)


def _dark_line(shape=(64, 64), angle_deg=30.0, width=2.0):
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    angle = np.deg2rad(angle_deg)
    distance = np.abs((rows - 32) * np.cos(angle) - (columns - 32) * np.sin(angle))
    line = distance < width / 2
    return np.where(line, 50.0, 150.0).astype(np.float32), line


def test_dark_line_responds_in_dark_features_only():
    image, line = _dark_line()
    stack = compute_features(image, spacing=(1.0, 1.0), settings=THIN)
    names = feature_names(THIN, ndim=2)
    assert stack.shape == (64, 64, len(names)) == (64, 64, 8)
    centre = line & (np.abs(np.mgrid[:64, :64][0] - 32) < 10)
    for group in ("tophat", "line"):
        for sigma in ("1", "2"):
            dark = stack[..., names.index(f"grey_{group}1_sigma{sigma}mm")][centre].mean()
            bright = stack[..., names.index(f"grey_{group}2_sigma{sigma}mm")][centre].mean()
            assert dark > 40 and dark > 3 * bright, (group, sigma, dark, bright)  # contrast 100
    flat = compute_features(np.full((32, 32), 7.0, np.float32), spacing=(1.0, 1.0), settings=THIN)
    np.testing.assert_allclose(flat, 0.0, atol=1e-4)


def test_line_response_does_not_depend_on_orientation():
    responses = []
    for angle in (0.0, 30.0, 45.0, 75.0, 90.0):
        image, line = _dark_line(angle_deg=angle, width=3.0)
        stack = compute_features(image, spacing=(1.0, 1.0), settings=THIN)
        column = feature_names(THIN, ndim=2).index("grey_line1_sigma1mm")
        core = line & (np.hypot(*(np.mgrid[:64, :64] - 32)) < 12)
        responses.append(stack[..., column][core].mean())
    assert min(responses) > 0.65 * max(responses), responses  # rasterised widths differ a little


def test_tophat_and_line_halo_is_exact_in_3d():
    image = np.random.default_rng(3).normal(size=(32, 18, 20)).astype(np.float32)
    spacing = (2.0, 1.0, 0.8)
    full = compute_features(image, spacing=spacing, settings=THIN)
    assert full.shape[-1] == len(feature_names(THIN, ndim=3))
    halo = halo_pixels(THIN, 2.0)
    part = compute_features(
        image[14 - halo : 18 + halo], spacing=spacing, settings=THIN, keep=(halo, halo + 4)
    )
    np.testing.assert_allclose(part, full[14:18], atol=1e-4)


def test_auto_normalisation_is_resolved_from_the_training_images():
    rng = np.random.default_rng(0)
    array = rng.normal(100, 10, (32, 32)).astype(np.float32)
    labels = np.zeros((32, 32), np.uint8)
    labels[:4], labels[-4:] = 1, 2
    settings = FeatureSettings(sigmas_mm=(1.0,), groups=("gaussian",))
    assert settings.normalise == "auto"
    calibrated = train_pixel_classifier(
        [Volume(array, spacing=(0.7, 0.7))], [labels], settings=settings, n_estimators=4
    )
    assert calibrated.settings.normalise == "none"
    photo = Volume(array, spacing=(1.0, 1.0), metadata={"spacing_assumed": True})
    assert (
        train_pixel_classifier([photo], [labels], settings=settings, n_estimators=4).settings.normalise
        == "image"
    )
    rgb = Volume(np.stack([array] * 3, -1), spacing=(0.7, 0.7, 1.0), metadata={"rgb": True})
    assert (
        train_pixel_classifier([rgb], [labels], settings=settings, n_estimators=4).settings.normalise
        == "image"
    )


def test_cli_and_widget_defaults_are_the_core_defaults():
    import argparse
    import inspect

    from napari_medimg.cli import pixels as cli
    from napari_medimg.learn.pixels import (
        DEFAULT_CONTEXT,
        DEFAULT_FIRST_STAGE_TREES,
        DEFAULT_GROUPS,
        DEFAULT_SIGMAS_MM,
        DEFAULT_TREES,
    )

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["pixels", "train", "--image", "a.png", "--labels", "b.png", "--out", "m.skops"])
    assert tuple(float(v) for v in args.sigmas.split(",")) == DEFAULT_SIGMAS_MM == FeatureSettings().sigmas_mm
    assert tuple(cli._GROUPS.split(",")) == DEFAULT_GROUPS == FeatureSettings().groups
    assert (
        args.trees
        == DEFAULT_TREES
        == inspect.signature(train_pixel_classifier).parameters["n_estimators"].default
    )
    assert args.normalise == FeatureSettings().normalise == "auto"
    context = inspect.signature(train_pixel_classifier).parameters["context"].default
    assert args.auto_context is cli._CONTEXT is True and context is DEFAULT_CONTEXT
    first = inspect.signature(train_pixel_classifier).parameters["first_stage_trees"].default
    assert args.first_stage_trees == cli._FIRST_TREES == first == DEFAULT_FIRST_STAGE_TREES
