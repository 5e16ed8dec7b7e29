"""Pixel classifier: features in mm, sparse strokes, slab-wise prediction, bundles, schema checks, the CLI."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.nifti import read_nifti, write_nifti
from napari_medimg.io.raster import read_image, write_labels_png
from napari_medimg.learn.bundle import BundleError
from napari_medimg.learn.classify import SchemaError
from napari_medimg.learn.pixels import (
    DEFAULT_CONTEXT,
    FeatureSettings,
    compute_features,
    feature_names,
    halo_pixels,
    load_pixel_classifier,
    predict_pixels,
    predict_slice,
    save_pixel_classifier,
    train_pixel_classifier,
)
from napari_medimg.progress import Cancelled

FAST = FeatureSettings(sigmas_mm=(1.0, 2.0), groups=("gaussian", "gradient", "hessian", "texture"))


def _tubes(shape=(96, 96), seed=0):
    """Bright lines (vessels) of two widths on a noisy, unevenly lit background, and the truth."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, bool)
    for k in range(4):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-30, 30)
        distance = np.abs(
            (rows - shape[0] / 2) * np.cos(angle) - (columns - shape[1] / 2) * np.sin(angle) - offset
        )
        truth |= distance < (1.5 if k % 2 else 3.0)
    image = 100 + 0.3 * columns + 60 * truth + rng.normal(0, 12, shape)
    return image.astype(np.float32), truth


def _strokes(truth, seed=0, fraction=0.05):
    """Sparse labels: 5 % of the pixels, 1 = background, 2 = vessel, 0 = unlabelled."""
    rng = np.random.default_rng(seed)
    labels = np.where(truth, 2, 1).astype(np.uint8)
    labels[rng.random(truth.shape) > fraction] = 0
    return labels


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_feature_names_match_stack_and_halo_is_exact():
    image = np.random.default_rng(1).normal(size=(30, 20, 24)).astype(np.float32)
    full = compute_features(image, spacing=(2.0, 1.0, 1.0), settings=FAST)
    assert full.shape == (30, 20, 24, len(feature_names(FAST, ndim=3)))
    assert full.dtype == np.float32 and np.isfinite(full).all()
    halo = halo_pixels(FAST, 2.0)
    part = compute_features(
        image[12 - halo : 16 + halo], spacing=(2.0, 1.0, 1.0), settings=FAST, keep=(halo, halo + 4)
    )
    np.testing.assert_allclose(part, full[12:16], atol=1e-4)


def test_scales_are_in_mm():
    """The same object imaged at 1 mm and at 0.5 mm gives the same smoothed value at its centre."""
    coarse = np.zeros((41, 41), np.float32)
    coarse[18:23, 18:23] = 1
    fine = np.kron(coarse, np.ones((2, 2), np.float32))
    settings = FeatureSettings(sigmas_mm=(2.0,), groups=("gaussian",), raw=False)
    a = compute_features(coarse, spacing=(1.0, 1.0), settings=settings)[20, 20, 0]
    b = compute_features(fine, spacing=(0.5, 0.5), settings=settings)[40:42, 40:42, 0].mean()
    assert a == pytest.approx(b, rel=0.03)


def test_2d_grey_from_sparse_strokes():
    image, truth = _tubes()
    volume = Volume(image, spacing=(1.0, 1.0))
    classifier = train_pixel_classifier(
        [volume], [_strokes(truth)], settings=FAST, n_estimators=20, class_names=["background", "vessel"]
    )
    other, other_truth = _tubes(seed=3)
    prediction = predict_pixels(classifier, Volume(other, spacing=(1.0, 1.0)))
    assert prediction.labels.shape == other.shape and set(np.unique(prediction.labels)) <= {1, 2}
    assert _dice(prediction.labels == 2, other_truth) > 0.85
    np.testing.assert_allclose(prediction.probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert classifier.metrics["labelled_pixels"]["2"] == int((_strokes(truth) == 2).sum())
    # the slab size does not change the result
    small_blocks = predict_pixels(classifier, Volume(other, spacing=(1.0, 1.0)), block=7)
    np.testing.assert_array_equal(small_blocks.labels, prediction.labels)


def test_rgb_every_channel_used():
    image, truth = _tubes()
    rgb = np.stack([np.full_like(image, 50), image, 255 - image], -1).clip(0, 255).astype(np.uint8)
    volume = Volume(rgb, spacing=(1.0, 1.0, 1.0), metadata={"rgb": True})
    classifier = train_pixel_classifier([volume], [_strokes(truth)], settings=FAST, n_estimators=10)
    assert classifier.channels == ["red", "green", "blue"]
    assert len(classifier.image_feature_names) == 3 * len(feature_names(FAST, ndim=2))
    prediction = predict_pixels(classifier, volume)
    assert _dice(prediction.labels == 2, truth) > 0.85
    with pytest.raises(SchemaError, match="channels grey"):
        predict_pixels(classifier, Volume(image, spacing=(1.0, 1.0)))


@pytest.mark.parametrize("dimensions", ["2d", "3d"])
def test_3d_slab_wise_progress_and_cancel(dimensions):
    slices = [_tubes((48, 48), seed=s)[0] for s in range(1)] * 12
    image = np.stack(slices)
    truth = np.stack([_tubes((48, 48), seed=0)[1]] * 12)
    volume = Volume(image, spacing=(2.0, 1.0, 1.0))
    labels = np.zeros(image.shape, np.uint8)
    labels[5] = _strokes(truth[5], fraction=0.2)
    classifier = train_pixel_classifier(
        [volume], [labels], settings=FAST, dimensions=dimensions, n_estimators=10
    )
    assert classifier.dimensions == dimensions
    assert classifier.context == DEFAULT_CONTEXT and classifier.first_stage is not None  # two stages in 3D
    calls = []
    prediction = predict_pixels(classifier, volume, block=3, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4) and len(calls) == 4
    assert _dice(prediction.labels[3:9] == 2, truth[3:9]) > 0.8
    whole = predict_pixels(classifier, volume, block=12, probabilities=False)
    np.testing.assert_array_equal(whole.labels, prediction.labels)
    assert whole.probabilities is None
    preview = predict_slice(classifier, volume, 6)
    np.testing.assert_array_equal(preview.labels, prediction.labels[6])

    def cancel(done, total):
        if done >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        predict_pixels(classifier, volume, block=3, progress=cancel)


def test_training_refusals():
    image, truth = _tubes((32, 32))
    volume = Volume(image, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="at least two classes"):
        train_pixel_classifier([volume], [np.where(truth, 2, 0).astype(np.uint8)], settings=FAST)
    with pytest.raises(ValueError, match="do not match"):
        train_pixel_classifier([volume], [np.ones((31, 32), np.uint8)], settings=FAST)
    with pytest.raises(ValueError, match="sigmas_mm"):
        FeatureSettings(sigmas_mm=(0.0,))
    with pytest.raises(ValueError, match="unknown feature group"):
        FeatureSettings(groups=("gabor",))


def test_bundle_round_trip_and_schema(tmp_path):
    image, truth = _tubes()
    volume = Volume(image, spacing=(1.0, 1.0))
    classifier = train_pixel_classifier([volume], [_strokes(truth)], settings=FAST, n_estimators=8)
    path = save_pixel_classifier(classifier, tmp_path / "pixels.skops")
    loaded = load_pixel_classifier(path)
    np.testing.assert_array_equal(
        predict_pixels(loaded, volume).probabilities, predict_pixels(classifier, volume).probabilities
    )
    # 'auto' normalisation is stored resolved: a grey image with a spacing in mm keeps its values
    assert loaded.settings == classifier.settings == dataclasses.replace(FAST, normalise="none")
    assert loaded.feature_names == classifier.feature_names
    assumed = Volume(image, spacing=(1.0, 1.0), metadata={"spacing_assumed": True})
    with pytest.raises(SchemaError, match="scales in pixels"):
        predict_pixels(loaded, assumed)
    from napari_medimg.learn.classify import load_classifier

    with pytest.raises(BundleError, match="'pixels' model where a 'objects' model"):
        load_classifier(path)


def test_auto_context_second_stage_changes_predictions_and_round_trips(tmp_path):
    image, truth = _tubes()
    volume = Volume(image, spacing=(1.0, 1.0))
    strokes = _strokes(truth, fraction=0.2)
    single = train_pixel_classifier([volume], [strokes], settings=FAST, n_estimators=10, context=None)
    double = train_pixel_classifier([volume], [strokes], settings=FAST, n_estimators=10)
    assert single.context is None and single.first_stage is None
    assert double.context == DEFAULT_CONTEXT and double.metrics["first_stage"]["oob_acc"] > 0.8
    context_names = feature_names(DEFAULT_CONTEXT, ndim=2, channels=["p2"])
    assert double.feature_names == double.image_feature_names + context_names
    assert double.model.n_features_in_ == len(double.feature_names)
    assert (
        double.first_stage.n_estimators == 8 and double.model.n_estimators == 10
    )  # DEFAULT_FIRST_STAGE_TREES
    assert any(name.startswith("p2_") for name in list(double.metrics["importances"])[:10])
    other, other_truth = _tubes(seed=3)
    other = Volume(other, spacing=(1.0, 1.0))
    one, two = predict_pixels(single, other), predict_pixels(double, other)
    assert not np.allclose(one.probabilities, two.probabilities, atol=0.05)  # the second stage acts
    assert _dice(two.labels == 2, other_truth) > 0.85
    np.testing.assert_allclose(two.probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # slab size and the live preview do not change the result (first-stage halo for the context filters)
    np.testing.assert_array_equal(predict_pixels(double, other, block=5).labels, two.labels)
    np.testing.assert_array_equal(predict_slice(double, other).probabilities, two.probabilities)
    # the bundle holds both stages and the context settings
    path = save_pixel_classifier(double, tmp_path / "context.skops")
    loaded = load_pixel_classifier(path)
    assert loaded.context == DEFAULT_CONTEXT and loaded.feature_names == double.feature_names
    np.testing.assert_array_equal(predict_pixels(loaded, other).probabilities, two.probabilities)
    assert not hasattr(double.model, "first_stage_")  # saving does not change the classifier
    # three classes in 3D: two probability channels feed the context, both stages predict every class
    stack = np.stack([image] * 6)
    classes = np.stack([np.where(truth, 2, np.where(np.arange(96) < 48, 1, 3)[None, :])] * 6).astype(np.uint8)
    sparse = np.where(np.random.default_rng(2).random(classes.shape) < 0.1, classes, 0).astype(np.uint8)
    sparse[[0, 1, 4, 5]] = 0
    three = train_pixel_classifier(
        [Volume(stack, spacing=(2.0, 1.0, 1.0))], [sparse], settings=FAST, dimensions="3d", n_estimators=8
    )
    assert three.context_channels == ["p2", "p3"]
    result = predict_pixels(three, Volume(stack, spacing=(2.0, 1.0, 1.0)), block=1)
    assert result.probabilities.shape == (*stack.shape, 3) and set(np.unique(result.labels)) == {1, 2, 3}
    np.testing.assert_array_equal(
        predict_slice(three, Volume(stack, spacing=(2.0, 1.0, 1.0)), 3).labels, result.labels[3]
    )


def test_bundles_without_auto_context_still_load_and_a_missing_first_stage_is_refused(tmp_path):
    from napari_medimg.learn.bundle import save_bundle

    image, truth = _tubes()
    volume = Volume(image, spacing=(1.0, 1.0))
    single = train_pixel_classifier([volume], [_strokes(truth)], settings=FAST, n_estimators=6, context=None)
    old_meta = {  # what save_pixel_classifier wrote before auto-context: no 'context_settings'
        "kind": "pixels", "feature_names": single.feature_names, "feature_settings": single.settings.to_dict(),
        "classes": single.classes, "class_names": single.class_names, "ndim": 2, "channels": ["grey"],
        "dimensions": "2d", "spacing_assumed": False, "metrics": single.metrics,
    }  # fmt: skip
    save_bundle(tmp_path / "old.skops", single.model, old_meta)
    old = load_pixel_classifier(tmp_path / "old.skops")
    assert old.context is None and old.first_stage is None
    np.testing.assert_array_equal(predict_pixels(old, volume).labels, predict_pixels(single, volume).labels)
    double = train_pixel_classifier([volume], [_strokes(truth)], settings=FAST, n_estimators=6)
    meta = {**old_meta, "feature_names": double.feature_names, "context_settings": DEFAULT_CONTEXT.to_dict()}
    save_bundle(tmp_path / "no_first.skops", double.model, meta)  # the second stage without the first
    with pytest.raises(BundleError, match="no first-stage model"):
        load_pixel_classifier(tmp_path / "no_first.skops")


def test_a_handful_of_strokes_trains_one_stage_and_says_why():
    image, truth = _tubes()
    strokes = np.zeros(image.shape, np.uint8)
    strokes[::8, 2] = 1
    strokes[truth & (np.random.default_rng(0).random(truth.shape) < 0.3)] = 2
    classifier = train_pixel_classifier([Volume(image, spacing=(1.0, 1.0))], [strokes], settings=FAST)
    assert classifier.context is None and classifier.first_stage is None
    assert classifier.metrics["auto_context_skipped"] == "fewer than 50 labelled pixels of class 1"


def test_cli_png_in_png_out_and_nifti_in_nifti_out(tmp_path, capsys):
    image, truth = _tubes()
    grey = (image - image.min()) / (image.max() - image.min()) * 255
    from PIL import Image

    Image.fromarray(grey.astype(np.uint8)).save(tmp_path / "image.png")
    write_labels_png(tmp_path / "strokes.png", _strokes(truth))
    model = tmp_path / "model.skops"
    args = [
        "pixels",
        "train",
        "--image",
        str(tmp_path / "image.png"),
        "--labels",
        str(tmp_path / "strokes.png"),
    ]
    args += ["--out", str(model), "--sigmas", "1,2", "--trees", "10", "--class-names", "background,vessel"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == {"1": "background", "2": "vessel"} and summary["auto_context"] is True
    assert main([*args[:-2], "--no-auto-context", "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["auto_context"] is False
    assert load_pixel_classifier(model).context is None
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    out, probabilities = tmp_path / "labels.png", tmp_path / "prob.tif"
    assert main(["pixels", "predict", str(model), str(tmp_path / "image.png"), "--out", str(out), "--probabilities", str(probabilities)]) == 0  # fmt: skip
    labels = read_image(out).array
    assert labels.shape == image.shape and _dice(labels == 2, truth) > 0.8
    import tifffile

    stack = tifffile.imread(probabilities)
    assert stack.shape == (2, *image.shape) and stack.dtype == np.float32
    np.testing.assert_array_equal(np.argmax(stack, axis=0) + 1, labels)

    # NIfTI in → NIfTI out, same geometry
    direction = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    ct = Volume(
        np.stack([image] * 4).astype(np.int16),
        spacing=(3.0, 0.8, 0.8),
        origin=(10.0, -20.0, 5.0),
        direction=direction,
    )
    write_nifti(ct, tmp_path / "ct.nii.gz")
    stroke_volume = np.zeros(ct.shape, np.uint8)
    stroke_volume[1] = _strokes(truth)
    write_nifti(ct.with_array(stroke_volume), tmp_path / "strokes.nii.gz")
    model3 = tmp_path / "ct.skops"
    assert main(["pixels", "train", "--image", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "strokes.nii.gz"), "--out", str(model3), "--sigmas", "1,2", "--trees", "10"]) == 0  # fmt: skip
    capsys.readouterr()
    out3 = tmp_path / "seg.nii.gz"
    assert main(["pixels", "predict", str(model3), str(tmp_path / "ct.nii.gz"), "--out", str(out3), "--probabilities", str(tmp_path / "p.nii.gz")]) == 0  # fmt: skip
    written = read_nifti(out3)
    source = nib.load(tmp_path / "ct.nii.gz")
    np.testing.assert_allclose(nib.load(out3).affine, source.affine)
    assert written.shape == ct.shape and _dice(np.asarray(written.array)[2] == 2, truth) > 0.8
    assert nib.load(tmp_path / "p.nii.gz").shape == (*source.shape, 2)

    # PNG labels for a NIfTI image are refused, as are a damaged model and a colour labels image
    assert (
        main(
            ["pixels", "predict", str(model3), str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "x.png")]
        )
        == 2
    )
    assert "NIfTI labels" in capsys.readouterr().err
    (tmp_path / "bad.skops").write_bytes(b"PK\x03\x04garbage")
    assert main(["pixels", "predict", str(tmp_path / "bad.skops"), str(tmp_path / "image.png"), "--out", str(tmp_path / "y.png")]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert "model bundle" in error and len(error.strip().splitlines()) == 1
    assert (
        main(
            ["pixels", "predict", str(model3), str(tmp_path / "image.png"), "--out", str(tmp_path / "z.png")]
        )
        == 2
    )
    assert "does not match" in capsys.readouterr().err


def test_cli_a_tiff_stack_gives_a_multi_page_tiff_of_labels(tmp_path, capsys):
    import tifffile

    image, truth = _tubes((64, 64))
    pages = np.stack([image] * 3).astype(np.uint16)
    resolution = {"resolution": (10 / 0.5, 10 / 0.5), "resolutionunit": "CENTIMETER"}  # 0.5 mm pixels
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack", **resolution)
    strokes = np.zeros(pages.shape, np.uint8)
    strokes[1] = _strokes(truth, fraction=0.2)
    tifffile.imwrite(tmp_path / "strokes.tif", strokes, photometric="minisblack", **resolution)
    model = tmp_path / "model.skops"
    assert main(["pixels", "train", "--image", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "strokes.tif"), "--out", str(model), "--sigmas", "1,2", "--trees", "10"]) == 0  # fmt: skip
    capsys.readouterr()
    predict = ["pixels", "predict", str(model), str(tmp_path / "stack.tif")]
    assert main([*predict, "--out", str(tmp_path / "labels.png")]) == 2  # a PNG cannot hold the pages
    assert "multi-page TIFF" in capsys.readouterr().err and not (tmp_path / "labels.png").exists()
    out = tmp_path / "labels.tif"
    assert main([*predict, "--out", str(out), "--probabilities", str(tmp_path / "p.tif")]) == 0
    labels = read_image(out)
    assert labels.shape == pages.shape and labels.array.dtype == np.uint8
    np.testing.assert_allclose(labels.spacing[1:], (0.5, 0.5))  # the pixel size goes back with the labels
    assert all(_dice(np.asarray(labels.array)[k] == 2, truth) > 0.8 for k in range(3))
    assert tifffile.imread(tmp_path / "p.tif").shape == (2, *pages.shape)
