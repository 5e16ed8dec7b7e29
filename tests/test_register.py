"""Resampling from world geometry and registration: identity on the same grid, a known rigid motion of a real
MR series recovered within 1 mm and 1 degree, and the ``medimg register`` contract."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.nifti import read_nifti, write_nifti
from napari_medimg.processing import registration as rg
from napari_medimg.progress import Cancelled


def _small(phantom) -> Volume:
    return Volume(np.asarray(phantom.image.array), phantom.image.spacing, phantom.image.origin)


def test_resampling_onto_the_same_grid_is_identity(small_phantom):
    image = _small(small_phantom)
    same = rg.resample(image, image)
    assert same.array.dtype == image.array.dtype and np.array_equal(same.array, image.array)
    labels = small_phantom.tissues
    assert np.array_equal(rg.resample(labels, labels, interpolation="nearest").array, labels.array)
    # a grid shifted by whole voxels reads the same voxels, shifted; outside is the image minimum
    shifted = Volume(np.zeros(image.shape, np.uint8), image.spacing, image.index_to_world([2, 3, 4]))
    moved = rg.resample(image, shifted).array
    assert np.array_equal(moved[:-2, :-3, :-4], image.array[2:, 3:, 4:])
    assert moved[-1, -1, -1] == image.array.min()


def test_transform_none_and_bad_options(small_phantom):
    image = _small(small_phantom)
    result = rg.register(image, image, transform="none")
    assert np.array_equal(result.matrix, np.eye(4)) and result.rotation_deg == 0
    with pytest.raises(ValueError, match="rigid, affine or none"):
        rg.register(image, image, transform="bspline")
    with pytest.raises(ValueError, match="sampling_fraction"):
        rg.register(image, image, sampling_fraction=0)


def test_cancel_stops_the_registration(small_phantom):
    image = _small(small_phantom)
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) >= 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        rg.register(image, image, transform="rigid", progress=progress)
    assert len(calls) == 3


def _errors(found, truth, centre):
    """Rotation error (degrees) and largest displacement error (mm) over a ±40 mm box around ``centre``."""
    rotation = rg.rotation_angle_deg(found[:3, :3].T @ truth[:3, :3])
    corners = np.array([centre + np.array(c) for c in itertools.product((-40, 40), repeat=3)] + [centre])
    homogeneous = np.c_[corners, np.ones(len(corners))]
    distance = np.linalg.norm((homogeneous @ (found - truth).T)[:, :3], axis=1).max()
    return rotation, distance


@pytest.mark.slow
@pytest.mark.shared_data
def test_registration_recovers_a_known_rigid_motion_of_a_real_mr_series(shared_data, tmp_path, capsys):
    from napari_medimg.io.dicom import read_dicom

    fixed = read_dicom(shared_data / "dicom" / "siemens_xa30_t1w_sag_classic", lazy=False)[0]
    centre = fixed.index_to_world((np.asarray(fixed.shape) - 1) / 2)
    truth = rg.rigid_matrix((6.0, -4.0, 5.0), (9.0, -5.0, 4.0), centre)  # 8.9°, 11.0 mm
    assert (
        rg.rotation_angle_deg(truth) >= 5
        and np.linalg.norm(truth[:3, 3] + truth[:3, :3] @ centre - centre) >= 8
    )
    # the same anatomy moved: moving(truth @ p) = fixed(p)
    moving = rg.resample(fixed, fixed, transform=np.linalg.inv(truth), fill_value=0)
    write_nifti(fixed, tmp_path / "fixed.nii.gz")
    write_nifti(moving, tmp_path / "moving.nii.gz")
    out = tmp_path / "out.nii.gz"
    argv = ["register", str(tmp_path / "fixed.nii.gz"), str(tmp_path / "moving.nii.gz"), "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"matrix", "rotation_deg", "translation_mm", "metric"} <= set(result)
    found = np.asarray(result["matrix"])
    rotation_error, distance_error = _errors(found, truth, centre)
    assert rotation_error < 1.0 and distance_error < 1.0, (rotation_error, distance_error)
    assert result["rotation_deg"] == pytest.approx(rg.rotation_angle_deg(truth), abs=1.0)
    # OUT is the moving image on the fixed grid: back in register with the fixed image inside the FOV
    registered = read_nifti(out)
    assert registered.shape == fixed.shape and np.allclose(registered.affine, fixed.affine, atol=1e-3)
    inside = np.asarray(moving.array) > 0
    inside = rg.resample(fixed.with_array(inside.astype(np.uint8)), fixed, transform=truth).array > 0
    a, b = np.asarray(registered.array, float)[inside], np.asarray(fixed.array, float)[inside]
    assert np.corrcoef(a, b)[0, 1] > 0.97
    # the contract refuses to replace OUT
    assert main(argv) == 2
    assert "exists" in capsys.readouterr().err


def test_cli_register_none_resamples_from_geometry(small_phantom, tmp_path, capsys):
    image = _small(small_phantom)
    write_nifti(image, tmp_path / "a.nii.gz")
    out = tmp_path / "out.nii.gz"
    code = main(
        ["register", str(tmp_path / "a.nii.gz"), str(tmp_path / "a.nii.gz"), "--out", str(out)]
        + [
            "--transform",
            "none",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matrix"] == np.eye(4).tolist() and result["metric"] is None
    assert np.array_equal(read_nifti(out).array, image.array)
    assert (
        main(["register", str(tmp_path / "missing.nii.gz"), str(out), "--out", str(tmp_path / "x.nii")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medimg register: error:")
