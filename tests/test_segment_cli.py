"""``medimg segment`` and ``medimg dice`` on NIfTI files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.nifti import read_nifti, write_nifti


@pytest.fixture(scope="module")
def files(small_phantom, tmp_path_factory):
    folder = tmp_path_factory.mktemp("segment")
    image = write_nifti(small_phantom.image, folder / "ct.nii.gz")
    lesions = write_nifti(small_phantom.lesions, folder / "lesions.nii.gz")
    return folder, image, lesions


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_segment_threshold_morphology_islands(files, capsys):
    folder, image, _ = files
    out = folder / "bone.nii.gz"
    code, text, _ = _run(
        capsys,
        "segment",
        image,
        out,
        "--preprocess",
        "gaussian:1.0",
        "--threshold=300:",
        "--open",
        "1.5",
        "--close",
        "2",
        "--fill-holes",
        "--min-size",
        "500",
        "--keep-largest",
    )
    assert code == 0
    summary = json.loads(text)
    assert summary["threshold_method"] == "manual" and summary["low"] == 300.0
    names = [s["name"] for s in summary["steps"]]
    assert names == [
        "read_nifti",
        "denoise",
        "threshold",
        "morphology",
        "morphology",
        "fill_holes",
        "islands",
        "islands",
        "write_nifti",
    ]
    mask = read_nifti(out)
    source = read_nifti(image)
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-5)
    truth = read_nifti(files[2])  # bone is the spine: one object, no lesion inside
    assert set(np.unique(mask.array)) == {0, 1}
    assert summary["voxels"] == int(mask.array.sum())
    assert summary["volume_mm3"] == pytest.approx(mask.array.sum() * mask.voxel_volume)
    assert not (mask.array.astype(bool) & (truth.array > 0)).any()
    code, _, err = _run(capsys, "segment", image, out)
    assert code == 2 and "exists" in err


def test_segment_automatic_threshold_and_resample(files, capsys):
    folder, image, _ = files
    out = folder / "otsu.nii.gz"
    code, text, _ = _run(capsys, "segment", image, out, "--preprocess", "resample:2.5", "--threshold", "otsu")
    assert code == 0
    summary = json.loads(text)
    assert summary["threshold_method"] == "otsu" and summary["spacing_mm"] == [2.5, 2.5, 2.5]
    assert read_nifti(out).shape == (64, 72, 72)
    code, _, err = _run(capsys, "segment", image, folder / "x.nii.gz", "--threshold", "bogus")
    assert code == 2 and "threshold" in err
    code, _, err = _run(capsys, "segment", image, folder / "x.nii.gz", "--preprocess", "sparkle")
    assert code == 2 and "unknown step" in err


def test_dice_json(files, capsys, small_phantom, tmp_path):
    folder, image, lesions = files
    code, text, _ = _run(capsys, "dice", lesions, lesions)
    assert code == 0
    result = json.loads(text)
    assert (
        result["dice"] == 1.0
        and result["hd95_mm"] == 0.0
        and set(result["labels"]) == {str(v) for v in range(1, 7)}
    )
    shifted = small_phantom.lesions.with_array(np.roll(small_phantom.lesions.array, 1, axis=0))
    moved = write_nifti(shifted, tmp_path / "moved.nii.gz")
    code, text, _ = _run(capsys, "dice", moved, lesions)
    result = json.loads(text)
    assert 0.4 < result["dice"] < 0.95 and result["hd95_mm"] == pytest.approx(5.0)
    assert result["volume_a_mm3"] == pytest.approx(result["volume_b_mm3"])
    lesion_volume = small_phantom.lesions
    cut = Volume(
        lesion_volume.array[:, :64], lesion_volume.spacing, lesion_volume.origin, lesion_volume.direction
    )
    other = write_nifti(cut, tmp_path / "cut.nii.gz")
    code, _, err = _run(capsys, "dice", other, lesions)
    assert code == 2 and "shape" in err
