"""Issue 12, items 14, 15, 18, 21–23: hostile and malformed inputs give one clear error line and a non-zero
exit, never a traceback, a hang or a memory blow-up.

The command-line cases run in a subprocess under ``resource.setrlimit(RLIMIT_AS)`` and a timeout, so a
regression shows as a failure (exit code, message), not as a hung or swapping CI machine.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume, check_same_grid
from napari_medimg.io.nifti import write_nifti
from napari_medimg.io.tables import read_csv_rows, read_feature_table

SRC = Path(__file__).resolve().parents[1] / "src"
_LIMITED = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[1]) * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, {src!r})
    from napari_medimg.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def limited(argv, *, memory_mb: int = 3072, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run ``medimg ARGV`` with an address-space limit and a timeout (both fail the test when hit)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = _LIMITED.format(src=str(SRC))
    return subprocess.run(
        [sys.executable, "-c", code, str(memory_mb), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
    )


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    for needle in needles:
        assert needle in err, err
    return err


# --- 15: grey-level bins ---------------------------------------------------------------------------


@pytest.fixture
def wide_range(tmp_path):
    image = np.zeros((4, 8, 8), np.float32)
    image[:, :, 4:] = 1e9
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    write_nifti(Volume(image, (1.0, 1.0, 1.0)), tmp_path / "image.nii.gz")
    write_nifti(Volume(labels, (1.0, 1.0, 1.0)), tmp_path / "labels.nii.gz")
    return tmp_path


def test_features_refuse_a_discretisation_with_too_many_bins(wide_range):
    args = [
        "features",
        wide_range / "image.nii.gz",
        wide_range / "labels.nii.gz",
        "--out",
        wide_range / "t.csv",
    ]
    err = one_error_line(limited(args, memory_mb=2048), "grey-level bins", "100,000 allowed")
    assert "object 1" in err and "1e+09" in err
    small = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    write_nifti(Volume(small, (1.0, 1.0, 1.0)), wide_range / "image.nii.gz", overwrite=True)
    one_error_line(limited([*args, "--bin-width", "1e-6"], memory_mb=2048), "grey-level bins")
    assert not (wide_range / "t.csv").exists()


def test_bin_check_at_the_entry_of_feature_computation():
    from napari_medimg.measure.features import compute_features

    image = np.array([[[0.0, 1e9]]])
    labels = np.ones((1, 1, 2), np.uint8)
    with pytest.raises(ValueError, match="grey-level bins"):
        compute_features(labels, image, (1.0, 1.0, 1.0), groups="firstorder")
    with pytest.raises(ValueError, match="positive finite"):
        compute_features(labels, image, (1.0, 1.0, 1.0), groups="firstorder", bin_width=float("nan"))
    assert len(compute_features(labels, image, (1.0, 1.0, 1.0), groups="shape")) == 1  # shape needs no bins


# --- 18: one geometry check -------------------------------------------------------------------------


def test_check_same_grid_names_what_differs():
    a = Volume(np.zeros((4, 5, 6)), (2.0, 1.0, 1.0), (10.0, 20.0, 30.0))
    check_same_grid(a, Volume(np.zeros((4, 5, 6)), a.spacing + 1e-7, a.origin + 1e-4, a.direction))
    with pytest.raises(ValueError, match=r"origin 50 mm apart"):
        check_same_grid(a, Volume(np.zeros((4, 5, 6)), a.spacing, a.origin + [50, 0, 0], a.direction))
    mirrored = a.direction.copy()
    mirrored[:, 2] *= -1
    with pytest.raises(ValueError, match=r"direction: axis x by 180° \(mirrored\)"):
        check_same_grid(a, Volume(np.zeros((4, 5, 6)), a.spacing, a.origin, mirrored))
    with pytest.raises(ValueError, match=r"spacing"):
        check_same_grid(a, Volume(np.zeros((4, 5, 6)), (2.0, 1.0, 1.5), a.origin, a.direction))
    with pytest.raises(ValueError, match=r"shape"):
        check_same_grid(a, Volume(np.zeros((4, 5, 7)), a.spacing, a.origin, a.direction))


@pytest.mark.parametrize("case", ["shifted", "mirrored"])
def test_features_and_dice_refuse_labels_on_another_grid(tmp_path, case, capsys):
    image = Volume(np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32), (2.0, 1.0, 1.0))
    mask = np.zeros((4, 8, 8), np.uint8)
    mask[1:3, 2:6, 2:6] = 1
    direction = image.direction.copy()
    origin = image.origin.copy()
    if case == "shifted":
        origin = origin + [0.0, 50.0, 0.0]
    else:
        direction[:, 2] *= -1
    write_nifti(image, tmp_path / "image.nii.gz")
    write_nifti(Volume(mask, image.spacing, origin, direction), tmp_path / "labels.nii.gz")
    write_nifti(Volume(mask, image.spacing), tmp_path / "same.nii.gz")
    args = ["features", tmp_path / "image.nii.gz", tmp_path / "labels.nii.gz", "--out", tmp_path / "t.csv"]
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert ("origin 50 mm apart" if case == "shifted" else "mirrored") in err and not (
        tmp_path / "t.csv"
    ).exists()
    assert main(["dice", str(tmp_path / "same.nii.gz"), str(tmp_path / "labels.nii.gz")]) == 2
    assert "voxel grid" in capsys.readouterr().err


# --- 21: CSV imports --------------------------------------------------------------------------------


def test_feature_table_import_refuses_fractional_and_duplicate_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("label,firstorder_Mean\n1.7,3\n")
    with pytest.raises(ValueError, match=r"label '1.7' \(row 2\) is not an integer"):
        read_feature_table(path)
    path.write_text("label,firstorder_Mean\n1,3\n2,4\n1,5\n")
    with pytest.raises(ValueError, match=r"several rows for label\(s\) \[1\]"):
        read_feature_table(path)
    path.write_text("label,firstorder_Mean\n1,3\n2\n")
    with pytest.raises(ValueError, match="line 3: 1 fields, the header has 2"):
        read_feature_table(path)
    path.write_bytes("\ufefflabel,firstorder_Mean,name\n1,3.5,a\n2.0,,b\n".encode())  # Excel's UTF-8 CSV
    frame = read_feature_table(path)
    assert frame["label"].tolist() == [1, 2] and frame["firstorder_Mean"].iloc[0] == 3.5
    assert np.isnan(frame["firstorder_Mean"].iloc[1]) and frame["name"].tolist() == ["a", "b"]


def test_feature_table_widget_import_uses_the_strict_reader(make_napari_viewer, tmp_path):
    from napari_medimg.plugin.widgets.feature_table import FeatureTableWidget

    viewer = make_napari_viewer()
    data = np.zeros((1, 6, 6), np.uint8)
    data[0, :2, :2], data[0, 3:, 3:] = 1, 2
    layer = viewer.add_labels(data, name="objects")
    widget = FeatureTableWidget(viewer, layer)
    path = tmp_path / "t.csv"
    path.write_text("label,area\n1.7,3\n")
    with pytest.raises(ValueError, match="not an integer"):
        widget.import_csv(path)
    path.write_text("label,area\n1,3\n1,4\n")
    with pytest.raises(ValueError, match="several rows"):
        widget.import_csv(path)
    path.write_bytes("\ufefflabel,area\n1,3\n2,4\n".encode())
    widget.import_csv(path)
    assert layer.features["label"].tolist() == [1, 2] and layer.features["area"].tolist() == [3.0, 4.0]


def test_cnn_csv_with_an_empty_label_or_short_row_is_refused(tmp_path):
    from napari_medimg.learn.cnn.data import load_folder, read_slice_classes

    path = tmp_path / "train.csv"
    path.write_text("path,label\na.png,cat\nb.png,\nc.png,dog\n")
    with pytest.raises(ValueError, match="row 3: empty label"):
        load_folder(path, [8, 8])
    path.write_text("path,label\na.png,cat\nb.png\n")
    with pytest.raises(ValueError, match="line 3: 1 fields"):
        load_folder(path, [8, 8])
    path.write_bytes("\ufeffslice,label\n0,a\n2,b\n".encode())
    assert read_slice_classes(path, 3) == ["a", None, "b"]
    header, rows = read_csv_rows(path, required=("slice",))
    assert header == ["slice", "label"] and len(rows) == 2


def test_cnn_train_csv_short_row_is_one_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("path,label\na.png,cat\nb.png\n")
    err = one_error_line(
        limited(["cnn", "train", "--csv", path, "--size", "8", "8", "--out", tmp_path / "m"], memory_mb=4096),
        "line 3",
    )
    assert "fields" in err and not (tmp_path / "m").exists()


# --- 14/20/22/23: hostile model folders through the CLI, memory-limited --------------------------------


def _model(tmp_path, change=None) -> Path:
    import torch

    from napari_medimg.learn.cnn.files import CONFIG, save_model
    from napari_medimg.learn.cnn.models import ModelConfig, build_model

    torch.manual_seed(0)
    meta = {
        "input_size": [28, 28],
        "normalisation": {"mode": "fixed", "mean": [0.0], "std": [1.0]},
        "class_names": ["a", "b"],
    }
    folder = save_model(build_model(ModelConfig(width=4, depths=[1, 1])), meta, tmp_path / "model")
    if change is not None:
        config = json.loads((folder / CONFIG).read_text())
        change(config)
        (folder / CONFIG).write_text(json.dumps(config))
    return folder


@pytest.fixture
def image_28(tmp_path) -> Path:
    path = tmp_path / "image.nii.gz"
    write_nifti(Volume(np.zeros((4, 28, 28), np.float32)), path)
    return path


_CASES = {
    "huge_network": "parameters",
    "huge_input": "GiB of activations",
    "nested_json": "nested too deeply",
    "fifo_weights": "not a regular file",
    "string_width": "must be an integer, got '8'",
}
_MANY = textwrap.dedent(
    """
    import contextlib, io, json, resource, sys
    limit = int(sys.argv[1]) * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, {src!r})
    from napari_medimg.cli import main
    results = []
    for argv in json.loads(sys.argv[2]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        results.append([code, err.getvalue()])
    print(json.dumps(results))
    """
)


def test_hostile_model_folders_are_refused_within_memory_and_time(tmp_path, image_28):
    """Every case in one memory-limited, timed process (torch is imported once)."""

    def huge_network(config):
        config["model"].update(width=512, depths=[8] * 6)
        config["input_size"] = [64, 64]

    def huge_input(config):
        config["model"].update(dims=3, width=8, depths=[1, 1], stem_stride=2, stem_pool=True)
        config["input_size"] = [1024, 1024, 1024]
        config["normalisation"] = {"mode": "per_image"}

    def string_width(config):
        config["model"]["width"] = "8"

    changes = {"huge_network": huge_network, "huge_input": huge_input, "string_width": string_width}
    runs = []
    for case in _CASES:
        folder = _model(tmp_path / case, changes.get(case))
        if case == "nested_json":
            (folder / "config.json").write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
        if case == "fifo_weights":
            (folder / "model.safetensors").unlink()
            os.mkfifo(folder / "model.safetensors")
        runs.append(
            ["cnn", "predict", "--model", str(folder), str(image_28), "--out", str(tmp_path / case / "out")]
        )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", _MANY.format(src=str(SRC)), "4096", json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for (case, needle), (code, err) in zip(_CASES.items(), json.loads(result.stdout), strict=True):
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (case, err)
        assert not (tmp_path / case / "out").exists()


# --- 22: OS errors, deep folders, NaN affines, folders in the way ------------------------------------------


def test_deeply_nested_folder_is_one_line(tmp_path):
    deep = tmp_path / "deep"
    path = deep
    deep.mkdir()
    for _ in range(1200):  # one by one: mkdir(parents=True) itself recurses that deep
        path = path / "d"
        path.mkdir()
    try:
        result = limited(["info", deep], memory_mb=2048, timeout_s=120)
    finally:
        while path != deep.parent:  # bottom-up: shutil.rmtree (pytest's cleanup) recurses too deep for it
            path.rmdir()
            path = path.parent
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nifti_with_a_nan_affine_is_refused(tmp_path, capsys):
    import nibabel as nib

    path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    raw[280:284] = np.float32(np.nan).tobytes()  # srow_x[0] of the NIfTI-1 header
    path.write_bytes(bytes(raw))
    assert np.isnan(nib.load(path).affine[0, 0])
    assert main(["convert", str(path), str(tmp_path / "out.nii.gz")]) == 2
    assert "NaN or infinite affine" in capsys.readouterr().err


def test_a_cifti_file_is_one_line_not_a_traceback(tmp_path, capsys):
    """A CIFTI-2 file is a .nii that nibabel reads as grayordinates, without a voxel grid or an affine."""
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes

    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, :] = True
    brain = cifti2_axes.BrainModelAxis.from_mask(mask, name="thalamus_left", affine=np.eye(4))
    scalars = cifti2_axes.ScalarAxis(["thickness"])
    path = tmp_path / "surface.dscalar.nii"
    nib.save(nib.Cifti2Image(np.ones((1, 3), np.float32), header=(scalars, brain)), path)
    for command in (["info", str(path)], ["convert", str(path), str(tmp_path / "out.nii.gz")]):
        assert main(command) == 2
        error = capsys.readouterr().err
        assert "CIFTI-2" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("kind", ["complex", "rgb"])
def test_complex_and_colour_nifti_are_one_line_not_silent_or_a_traceback(tmp_path, capsys, kind):
    """Complex MR data were cast to their real part (features computed on it, silently); RGB24 voxels made a
    numpy traceback."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    if kind == "complex":
        voxels = (rng.random((6, 6, 6)) + 1j * rng.random((6, 6, 6))).astype(np.complex64)
    else:
        voxels = np.zeros((6, 6, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), tmp_path / "image.nii")
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1:5, 1:5, 1:5] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii")
    image = str(tmp_path / "image.nii")
    for command in (
        ["features", image, str(tmp_path / "mask.nii"), "--out", str(tmp_path / "features.csv")],
        ["segment", image, str(tmp_path / "seg.nii.gz"), "--threshold", "otsu"],
    ):
        assert main(command) == 2
        error = capsys.readouterr().err
        assert ("complex" if kind == "complex" else "RGB") in error and "Traceback" not in error
    assert not (tmp_path / "features.csv").exists() and not (tmp_path / "seg.nii.gz").exists()


def test_a_folder_named_like_the_output_file_is_one_line(tmp_path, image_28, capsys):
    (tmp_path / "x.nii.gz").mkdir()
    assert main(["convert", str(image_28), str(tmp_path / "x.nii.gz"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (PermissionError(errno.EACCES, "Permission denied"), "no permission"),
        (OSError(errno.EROFS, "Read-only file system"), "no permission"),
    ],
)
def test_disk_full_and_read_only_outputs_are_one_line_and_keep_the_old_file(
    tmp_path, image_28, monkeypatch, capsys, error, needle
):
    import nibabel as nib

    out = tmp_path / "out.nii.gz"
    assert main(["convert", str(image_28), str(out)]) == 0
    before = out.read_bytes()
    error.filename = str(out)

    def failing_save(*args, **kwargs):
        raise error

    monkeypatch.setattr(nib, "save", failing_save)
    assert main(["convert", str(image_28), str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_safetensors_and_recursion_errors_are_one_line(monkeypatch, capsys):
    from safetensors import SafetensorError

    import napari_medimg.cli.convert as convert

    for error in (
        SafetensorError("Error while serializing: IoError(No space left on device)"),
        RecursionError(),
    ):

        def raising(args, error=error):
            raise error

        monkeypatch.setattr(convert, "run", raising)
        assert main(["convert", "a", "b.nii.gz"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("medimg convert: error: ") and len(err.strip().splitlines()) == 1


def test_measure_widget_refuses_an_image_placed_elsewhere(make_napari_viewer, small_phantom):
    from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
    from napari_medimg.plugin.widgets.measure import MeasureWidget

    viewer = make_napari_viewer()
    lesions = set_or_add_layer(viewer, layer_data_tuple(small_phantom.lesions, "labels", name="lesions"))
    shifted = small_phantom.image.with_array(np.asarray(small_phantom.image.array))
    shifted = Volume(shifted.array, shifted.spacing, shifted.origin + [0.0, 50.0, 0.0], shifted.direction)
    ct = set_or_add_layer(viewer, layer_data_tuple(shifted, "image", name="CT moved"))
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.value = lesions
    widget.images.value = [ct]
    widget.measure()
    assert widget.worker is None and "CT moved: not on the labels' voxel grid" in widget.status.value
