"""Preprocessing core: window/level, normalisation, denoising, contrast, sharpening, resampling, vesselness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_medimg.geometry import Volume
from napari_medimg.processing import preprocess as pp
from napari_medimg.progress import Cancelled

SPACING = (2.5, 0.7, 0.7)


def _volume(array, spacing=SPACING, origin=(10.0, -20.0, 30.0)):
    return Volume(array, spacing, origin, np.eye(3)[:, ::-1])


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(1)
    array = np.zeros((40, 48, 48), np.float32)
    array[:, :, 24:] = 100.0
    return _volume(array + rng.normal(0, 10, array.shape).astype(np.float32))


def test_window_level_presets_clip_and_unit():
    volume = _volume(np.linspace(-1200, 1200, 8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8))
    lung = pp.window_level(volume, preset="lung")
    assert lung.array.min() == pytest.approx(-1200) and lung.array.max() == pytest.approx(150)
    assert lung.metadata["window_center"] == -600 and lung.metadata["window_width"] == 1500
    brain = pp.window_level(volume, preset="brain", output="unit")
    assert brain.array.min() == 0 and brain.array.max() == 1
    assert np.array_equal(brain.spacing, volume.spacing) and np.array_equal(brain.origin, volume.origin)
    with pytest.raises(ValueError, match="unknown window preset"):
        pp.window_level(volume, preset="nope")
    with pytest.raises(ValueError, match="positive"):
        pp.window_level(volume, level=0, width=-5)


def test_normalize_methods(noisy):
    z = pp.normalize(noisy, method="z_score").array
    assert abs(float(z.mean())) < 1e-4 and float(z.std()) == pytest.approx(1, abs=1e-4)
    mm = pp.normalize(noisy, method="min_max").array
    assert mm.min() == 0 and mm.max() == 1
    pc = pp.normalize(noisy, method="percentile", low_percentile=5, high_percentile=95).array
    assert pc.min() == 0 and pc.max() == 1
    assert np.mean(pc == 1) == pytest.approx(0.05, abs=0.01)
    mask = np.zeros(noisy.shape, bool)
    mask[:, :, 24:] = True
    inside = pp.normalize(noisy, method="z_score", mask=mask).array[mask]
    assert abs(float(inside.mean())) < 1e-3
    with pytest.raises(ValueError):
        pp.normalize(noisy, method="bogus")


def test_gaussian_is_spacing_aware_and_slabs_match_whole(noisy):
    out = pp.denoise(noisy, method="gaussian", sigma_mm=1.4).array
    expected = ndimage.gaussian_filter(
        np.asarray(noisy.array, np.float32), (1.4 / 2.5, 2.0, 2.0), mode="nearest"
    )
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert out[:, :, 2:20].std() < 0.3 * noisy.array[:, :, 2:20].std()


@pytest.mark.parametrize("method", ["median", "bilateral", "nl_means"])
def test_edge_preserving_denoisers_reduce_noise_keep_edge(noisy, method):
    calls = []
    out = pp.denoise(
        noisy,
        method=method,
        sigma_mm=1.4,
        radius_mm=1.4,
        sigma_intensity=20.0,
        progress=lambda d, t: calls.append((d, t)),
    ).array
    flat = out[:, 5:-5, 4:18]
    assert flat.std() < 0.6 * noisy.array[:, 5:-5, 4:18].std()
    edge_step = out[:, :, 26].mean() - out[:, :, 21].mean()
    assert edge_step > 85  # the 100-unit step 2.1 mm apart stays sharp
    assert calls and calls[-1][0] == calls[-1][1]


def test_cancel_through_progress(noisy):
    def cancel(done, total):
        raise Cancelled()

    with pytest.raises(Cancelled):
        pp.denoise(noisy, method="gaussian", progress=cancel)


def test_clahe_gamma_brightness_unsharp():
    y, x = np.mgrid[0:64, 0:64]
    image = _volume((x * 0.2 + 50 * (y > 32)).astype(np.float32), spacing=(0.5, 0.5), origin=(0.0, 0.0, 0.0))
    eq = pp.clahe(image, kernel_mm=8.0, clip_limit=0.02).array
    assert eq.min() >= 0 and eq.max() <= 1 and eq.dtype == np.float32
    assert eq[:, :32].std() > (image.array[:, :32] / np.ptp(image.array)).std()
    g = pp.gamma(image, value=2.0).array
    assert g.min() == pytest.approx(image.array.min()) and g.max() == pytest.approx(
        image.array.max(), rel=1e-5
    )
    assert np.median(g) < np.median(image.array)
    bc = pp.brightness_contrast(image, brightness=10, contrast=2).array
    assert bc.mean() == pytest.approx(image.array.mean() + 10, abs=1e-3)
    assert bc.std() == pytest.approx(2 * image.array.std(), rel=1e-4)
    sharp = pp.unsharp_mask(image, sigma_mm=1.0, amount=1.0).array
    assert sharp[34, 10] > image.array[34, 10] and sharp[30, 10] < image.array[30, 10]
    with pytest.raises(ValueError):
        pp.gamma(image, value=0)


def test_resample_image_keeps_world_geometry():
    array = np.zeros((20, 40, 40), np.float32)
    array[8:12, 10:20, 22:30] = 100
    volume = Volume(array, SPACING, (5.0, 6.0, 7.0), np.eye(3)[:, ::-1])
    iso = pp.resample(volume, order=3)
    assert np.allclose(iso.spacing, 0.7)
    assert iso.shape == (round(20 * 2.5 / 0.7), 40, 40)
    # the field of view's corner (edge of the first voxel) is unchanged
    corner_old = volume.index_to_world([-0.5, -0.5, -0.5])
    corner_new = iso.index_to_world([-0.5, -0.5, -0.5])
    np.testing.assert_allclose(corner_new, corner_old, atol=1e-9)

    def centroid_world(v):
        return v.index_to_world(np.array(ndimage.center_of_mass(np.asarray(v.array) > 50)))

    np.testing.assert_allclose(centroid_world(iso), centroid_world(volume), atol=0.35)
    assert np.count_nonzero(iso.array > 50) * iso.voxel_volume == pytest.approx(
        np.count_nonzero(array > 50) * volume.voxel_volume, rel=0.1
    )
    coarse = pp.resample(volume, spacing_mm=(5.0, 1.4, 1.4), order=1)
    assert coarse.shape == (10, 20, 20)


def test_resample_labels_nearest_keeps_values_and_dtype():
    labels = np.zeros((10, 30, 30), np.uint16)
    labels[2:8, 5:15, 5:15] = 3
    labels[2:8, 16:25, 16:25] = 700
    out = pp.resample(_volume(labels), spacing_mm=0.7, order=3, labels=True)
    assert out.array.dtype == np.uint16
    assert set(np.unique(out.array).tolist()) == {0, 3, 700}
    for value in (3, 700):
        assert np.count_nonzero(out.array == value) * out.voxel_volume == pytest.approx(
            np.count_nonzero(labels == value) * float(np.prod(SPACING)), rel=0.08
        )


def test_resample_2d():
    image = Volume(np.arange(100, dtype=np.float32).reshape(10, 10), (2.0, 1.0), (0.0, 0.0, 0.0))
    out = pp.resample(image, spacing_mm=1.0)
    assert out.shape == (20, 10)
    np.testing.assert_allclose(out.origin[:2], [-0.5, 0.0])


def _tube_and_ball(spacing, bright=True):
    grid = np.meshgrid(
        *[np.arange(n) * s for n, s in zip((24, 40, 40), spacing, strict=False)], indexing="ij"
    )
    z, y, x = grid
    tube = ((z - 30) ** 2 + (y - 8) ** 2) <= 1.5**2  # along x, radius 1.5 mm
    ball = ((z - 30) ** 2 + (y - 20) ** 2 + (x - 14) ** 2) <= 4.0**2
    array = np.where(tube | ball, 100.0, 0.0).astype(np.float32)
    return Volume(array if bright else -array, spacing, (0.0, 0.0, 0.0), np.eye(3)[:, ::-1]), tube, ball


@pytest.mark.parametrize("method", ["frangi", "sato"])
def test_vesselness_prefers_tubes_on_anisotropic_grid(method):
    spacing = (2.5, 0.7, 0.7)
    volume, tube, ball = _tube_and_ball(spacing)
    response = pp.vesselness(volume, sigmas_mm=(1.0, 1.5, 2.0), method=method).array
    centre_tube = response[12, 11, 10:30].mean()
    centre_ball = response[12, 29, 20]
    assert centre_tube > 3 * max(centre_ball, 1e-6)
    assert centre_tube > 10 * response[2:5, 30:, 30:].max() + 1e-6
    dark, _, _ = _tube_and_ball(spacing, bright=False)
    dark_response = pp.vesselness(dark, sigmas_mm=(1.0, 1.5, 2.0), method=method, bright=False).array
    np.testing.assert_allclose(dark_response, response, rtol=1e-4, atol=1e-6)


def test_vesselness_2d_line():
    image = np.zeros((60, 60), np.float32)
    image[28:32, 5:55] = 1.0
    volume = Volume(image, (0.5, 0.5), (0.0, 0.0, 0.0))
    response = pp.vesselness(volume, sigmas_mm=(0.5, 1.0), method="frangi").array
    assert response[29:31, 20:40].mean() > 10 * response[5:15, 5:15].mean() + 1e-6
    with pytest.raises(ValueError):
        pp.vesselness(volume, sigmas_mm=(), method="frangi")


def test_tophat_and_combine():
    image = np.full((60, 60), 100.0, np.float32)
    image[:, 30:] += np.linspace(0, 50, 30, dtype=np.float32)  # slow background change
    image[20:22, 5:55] -= 40  # a thin dark line
    image[40:50, 5:15] -= 40  # a large dark patch (not a thin structure)
    volume = Volume(image, (0.5, 0.5), (0.0, 0.0, 0.0))
    hat = pp.tophat(volume, radius_mm=2.0, bright=False).array
    assert hat[20:22, 10:50].min() > 35
    assert hat[:15].max() < 1e-3 and hat[43:47, 8:12].max() < 1e-3
    mask = np.ones_like(image, bool)
    mask[:, :3] = False
    masked = pp.tophat(volume, radius_mm=2.0, bright=False, mask=mask).array
    assert masked[:, :3].max() == 0
    bright = pp.tophat(Volume(-image, (0.5, 0.5), (0.0, 0.0, 0.0)), radius_mm=2.0, bright=True).array
    np.testing.assert_allclose(bright, hat, atol=1e-4)
    both = pp.combine([volume, volume.with_array(image * 10)], weights=[1.0, 1.0], percentile=50).array
    np.testing.assert_allclose(both, 2 * image / np.percentile(image, 50), rtol=1e-5)
    with pytest.raises(ValueError):
        pp.combine([volume], weights=[1.0, 2.0])


@pytest.mark.parametrize("size", [2, 3])
def test_closed_form_eigenvalues_match_lapack(size):
    rng = np.random.default_rng(size)
    matrices = rng.normal(size=(2000, size, size))
    matrices = matrices + np.swapaxes(matrices, 1, 2)
    matrices[:5] = np.eye(size) * 3.0  # repeated eigenvalues
    matrices[5:10, 0, 0] = matrices[5:10, 1, 1]
    elements = {(i, j): matrices[:, i, j] for i in range(size) for j in range(i, size)}
    np.testing.assert_allclose(pp.symmetric_eigenvalues(elements), np.linalg.eigvalsh(matrices), atol=1e-6)
