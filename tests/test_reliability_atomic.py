"""Issue 12, data loss 1–6: atomic files and folders, only our own outputs replaced, race-free refusals,
stale temporaries, and fault injection (writers killed at their riskiest step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io import atomic
from napari_medimg.io.atomic import (
    MARKER,
    atomic_directory,
    atomic_files,
    atomic_path,
    clean_stale_temporaries,
)
from napari_medimg.io.dicom_write import deidentify_series, write_dicom_series
from napari_medimg.io.errors import OverwriteError
from napari_medimg.io.nifti import read_nifti, write_nifti

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def series(tmp_path) -> Path:
    """A small CT series written by write_dicom_series (4 slices), with a patient name."""
    volume = Volume(np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5), (2.0, 1.0, 1.0))
    folder = tmp_path / "src_series"
    write_dicom_series(volume, folder)
    (folder / MARKER).unlink()  # a user's series, not one of our outputs
    return folder


def _run(argv) -> int:
    return main([str(a) for a in argv])


# --- 1. replace only our own outputs; never the input ---------------------------------------------


def test_convert_deidentify_overwrite_never_deletes_unrelated_files(series, tmp_path, capsys):
    target = tmp_path / "P"
    (target / "sub").mkdir(parents=True)
    (target / "thesis.docx").write_text("x")
    assert _run(["convert", series, target, "--deidentify", "--overwrite"]) == 2
    assert "not written by napari-medimg" in capsys.readouterr().err
    assert (target / "thesis.docx").read_text() == "x" and (target / "sub").is_dir()
    plain = tmp_path / "plain_file"
    plain.write_text("keep")
    assert _run(["convert", series, plain, "--deidentify", "--overwrite"]) == 2
    assert plain.read_text() == "keep"


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_output_equal_to_inside_or_around_the_source_is_refused(series, tmp_path, where, capsys):
    before = sorted(p.name for p in series.iterdir())
    out = {"same": series, "inside": series / "copy", "contains": series.parent}[where]
    assert _run(["convert", series, out, "--deidentify", "--overwrite"]) == 2
    assert "input" in capsys.readouterr().err
    assert sorted(p.name for p in series.iterdir()) == before
    with pytest.raises(OverwriteError, match="input"):
        deidentify_series(series, out, overwrite=True)
    assert sorted(p.name for p in series.iterdir()) == before


def test_our_own_output_is_replaced_with_overwrite_and_refused_without(series, tmp_path):
    out = tmp_path / "copy"
    first = deidentify_series(series, out)
    assert (out / MARKER).is_file() and len(first) == 4
    with pytest.raises(OverwriteError, match="not empty"):
        deidentify_series(series, out)
    deidentify_series(series, out, overwrite=True)
    assert sorted(p.name for p in out.glob("*.dcm")) == sorted(p.name for p in first)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_output_never_replaces_a_folder(tmp_path, capsys):
    volume = Volume(np.zeros((2, 3, 4), np.int16))
    (tmp_path / "x.nii.gz").mkdir()
    with pytest.raises(OverwriteError, match="is a folder"):
        write_nifti(volume, tmp_path / "x.nii.gz", overwrite=True)
    assert (tmp_path / "x.nii.gz").is_dir()


# --- 2. folder replacement is one exchange ------------------------------------------------------


def test_folder_replacement_is_an_exchange_and_falls_back_safely(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic_directory(target) as folder:
        (folder / "a.txt").write_text("old")
    calls = []
    real = atomic.exchange
    monkeypatch.setattr(atomic, "exchange", lambda a, b: calls.append((a, b)) or real(a, b))
    with atomic_directory(target, overwrite=True) as folder:
        (folder / "a.txt").write_text("new")
    assert calls and (target / "a.txt").read_text() == "new"
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)  # a file system without RENAME_EXCHANGE
    with atomic_directory(target, overwrite=True) as folder:
        (folder / "a.txt").write_text("newer")
    assert (target / "a.txt").read_text() == "newer" and (target / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_exchange_leaves_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic_directory(target) as folder:
        (folder / "a.txt").write_text("old")

    def broken(a, b):
        raise OSError(5, "Input/output error", str(b))

    monkeypatch.setattr(atomic, "exchange", broken)
    with pytest.raises(OSError), atomic_directory(target, overwrite=True) as folder:
        (folder / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- 4. race-free refusal -----------------------------------------------------------------------


def test_refusal_is_decided_at_the_rename_not_at_the_check(tmp_path):
    """Another command creates the output while we write: we refuse and its output stays."""
    target = tmp_path / "a.nii.gz"
    with pytest.raises(OverwriteError), atomic_path(target) as temporary:
        Path(temporary).write_text("ours")
        target.write_text("theirs")  # appears after our check, before our rename
    assert target.read_text() == "theirs"
    folder = tmp_path / "deid"
    with pytest.raises(OverwriteError), atomic_directory(folder) as temporary:
        (temporary / "x.dcm").write_text("ours")
        folder.mkdir()
        (folder / "y.dcm").write_text("theirs")
    assert [p.name for p in folder.iterdir()] == ["y.dcm"]
    pair = [tmp_path / "b.nii.gz", tmp_path / "b.json"]
    with pytest.raises(OverwriteError), atomic_files(pair) as (image, sidecar):
        Path(image).write_text("ours")
        Path(sidecar).write_text("ours")
        pair[1].write_text("theirs")
    assert not pair[0].exists() and pair[1].read_text() == "theirs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_processes_writing_one_output_exactly_one_wins(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(SRC)!r})
        from pathlib import Path
        from napari_medimg.io.atomic import atomic_directory
        from napari_medimg.io.errors import OverwriteError
        try:
            with atomic_directory(Path(sys.argv[1])) as folder:
                (folder / "who.txt").write_text(sys.argv[2])
                time.sleep(0.5)  # both have passed the early check by now
        except OverwriteError:
            sys.exit(3)
        """
    )
    for attempt in range(3):
        target = tmp_path / f"out{attempt}"
        processes = [
            subprocess.Popen([sys.executable, "-c", script, str(target), name]) for name in ("A", "B")
        ]
        codes = sorted(p.wait(timeout=60) for p in processes)
        assert codes == [0, 3]
        assert (target / "who.txt").read_text() in ("A", "B")


# --- 5/6. fault injection: a kill at the riskiest step ---------------------------------------------


_KILL = """
import os, sys
sys.path.insert(0, {src!r})
from pathlib import Path
import numpy as np
from napari_medimg.io import atomic
from napari_medimg.geometry import Volume
step = sys.argv[2]
real_replace, real_exchange, real_rename = os.replace, atomic.exchange, os.rename
def die(*args, **kwargs):
    os._exit(9)
if step == "before-rename":       # the new file is complete as a temporary, not yet renamed
    os.replace = die
    atomic.rename_noreplace = die
    atomic.exchange = die
elif step == "after-exchange":    # the folders are swapped, the old one is not yet removed
    def swap_then_die(a, b):
        real_exchange(a, b)
        os._exit(9)
    atomic.exchange = swap_then_die
elif step == "between-renames":   # fallback path: old folder moved aside, new not yet in place
    atomic.exchange = lambda a, b: False
    count = []
    def rename_then_die(a, b):
        real_rename(a, b)
        count.append(1)
        if len(count) == 1:
            os._exit(9)
    os.rename = rename_then_die
elif step == "mid-commit":        # a NIfTI + sidecar set: the image renamed, the sidecar not yet
    calls = []
    def replace_once(a, b):
        if calls:
            os._exit(9)
        calls.append(1)
        real_replace(a, b)
    os.replace = replace_once
{body}
"""


def _kill(tmp_path, body: str, step: str, target: Path) -> None:
    code = _KILL.format(src=str(SRC), body=textwrap.dedent(body))
    result = subprocess.run([sys.executable, "-c", code, str(target), step], timeout=120)
    assert result.returncode == 9, "the writer was not killed where intended"


def test_killed_nifti_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "image.nii.gz"
    write_nifti(Volume(np.zeros((2, 3, 4), np.int16)), target)
    body = """
    from napari_medimg.io.nifti import write_nifti
    write_nifti(Volume(np.ones((2, 3, 4), np.int16)), Path(sys.argv[1]), overwrite=True)
    """
    _kill(tmp_path, body, "before-rename", target)
    assert np.all(read_nifti(target).array == 0)  # the old file, complete
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers and all(os.stat(p).st_mode & 0o077 == 0 for p in leftovers)  # private, then cleaned
    write_nifti(Volume(np.full((2, 3, 4), 2, np.int16)), tmp_path / "other.nii.gz")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("step", ["before-rename", "after-exchange", "between-renames"])
def test_killed_folder_replacement_leaves_old_or_new_complete(series, tmp_path, step):
    target = tmp_path / "copy"
    old = {p.name: p.read_bytes() for p in map(Path, deidentify_series(series, target))}
    body = f"""
    from napari_medimg.io.dicom_write import deidentify_series
    deidentify_series({str(series)!r}, Path(sys.argv[1]), overwrite=True)
    """
    _kill(tmp_path, body, step, target)
    clean_stale_temporaries(tmp_path)  # what the next write does first
    assert (target / MARKER).is_file()
    files = {p.name: p.read_bytes() for p in target.glob("*.dcm")}
    assert sorted(files) == sorted(old)  # complete: the old set, or the whole new set
    if step == "before-rename":
        assert files == old
    if step == "after-exchange":
        assert files != old  # new UIDs: the new copy is in place
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_killed_nifti_and_sidecar_commit_is_completed_not_mixed(tmp_path):
    target = tmp_path / "out.nii.gz"
    write_nifti(Volume(np.zeros((2, 3, 4), np.int16)), target, sidecar={"run": "old"})
    body = """
    from napari_medimg.io.nifti import write_nifti
    write_nifti(Volume(np.ones((2, 3, 4), np.int16)), Path(sys.argv[1]), overwrite=True, sidecar={"run": "new"})
    """
    _kill(tmp_path, body, "mid-commit", target)
    sidecar = tmp_path / "out.json"
    assert json.loads(sidecar.read_text())["run"] == "old"  # mixed right after the kill …
    assert np.all(read_nifti(target).array == 1)
    clean_stale_temporaries(tmp_path)  # … and rolled forward by the next write in the folder
    assert json.loads(sidecar.read_text())["run"] == "new" and np.all(read_nifti(target).array == 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_cleaning_touches_only_our_dead_temporaries(tmp_path):
    mine = tmp_path / ".out.medimg-999999-0123456789abcdef"  # a dead PID
    mine.mkdir()
    (mine / MARKER).write_text("{}")
    (mine / "partial.dcm").write_text("phi")
    no_marker = tmp_path / ".x.medimg-999999-0123456789abcdef"
    no_marker.mkdir()
    alive = tmp_path / f".y.nii.gz.medimg-{os.getpid()}-0123456789abcdef.nii.gz"
    alive.write_text("being written")
    user = tmp_path / ".bashrc"
    user.write_text("keep")
    removed = clean_stale_temporaries(tmp_path)
    assert removed == [mine]
    assert no_marker.exists() and alive.exists() and user.exists()


def test_writes_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: order.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: order.append("replace") or real_replace(a, b))
    write_nifti(Volume(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nii.gz")
    write_nifti(Volume(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nii.gz", overwrite=True)
    # first write: file fsync, exclusive rename (renameat2), folder fsync; the second: fsync, replace, fsync
    assert order == ["fsync", "fsync", "fsync", "replace", "fsync"]


# --- 3/5: CNN writers: model folders, ROC files, prediction folders ----------------------------------


def _small_model(folder: Path) -> Path:
    import torch

    from napari_medimg.learn.cnn.files import save_model
    from napari_medimg.learn.cnn.models import ModelConfig, build_model

    torch.manual_seed(0)
    meta = {
        "input_size": [8, 8],
        "normalisation": {"mode": "fixed", "mean": [0.0], "std": [1.0]},
        "class_names": ["a", "b"],
    }
    return save_model(build_model(ModelConfig(width=4, depths=[1])), meta, folder)


def test_cnn_evaluate_roc_refuses_to_overwrite_and_writes_atomically(tmp_path, capsys):
    model = _small_model(tmp_path / "model")
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(
        data,
        train_images=rng.random((6, 8, 8)),
        train_labels=np.array([0, 1] * 3),
        val_images=rng.random((6, 8, 8)),
        val_labels=np.array([0, 1] * 3),
    )
    roc = tmp_path / "roc.png"
    roc.write_bytes(b"an earlier figure")
    argv = ["cnn", "evaluate", "--model", model, "--data", data, "--roc", roc]
    assert _run(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert roc.read_bytes() == b"an earlier figure"
    assert _run([*argv, "--overwrite"]) == 0
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_model_folder_with_extras_is_one_unit_and_a_kill_keeps_the_old_model(tmp_path):
    from napari_medimg.learn.cnn.files import load_model, save_model

    folder = _small_model(tmp_path / "model")
    (folder / "config.json").read_text()
    old_config = (folder / "config.json").read_bytes()
    with pytest.raises(OverwriteError):
        _small_model(folder)
    loaded = load_model(folder)
    # a writer that fails half-way (e.g. the ROC plot) leaves the old folder exactly as it was
    with pytest.raises(RuntimeError):
        save_model(
            loaded.model,
            {k: loaded.meta[k] for k in ("input_size", "normalisation", "class_names")},
            folder,
            overwrite=True,
            extras={"roc_val.png": lambda path: (_ for _ in ()).throw(RuntimeError("plot failed"))},
        )
    assert (folder / "config.json").read_bytes() == old_config and not (folder / "roc_val.png").exists()
    body = """
    import torch
    from napari_medimg.learn.cnn.files import load_model, save_model
    loaded = load_model(Path(sys.argv[1]))
    meta = {k: loaded.meta[k] for k in ("input_size", "normalisation", "class_names")}
    meta["class_names"] = ["x", "y"]
    save_model(loaded.model, meta, Path(sys.argv[1]), overwrite=True)
    """
    _kill(tmp_path, body, "before-rename", folder)
    clean_stale_temporaries(tmp_path)
    assert load_model(folder).class_names == ["a", "b"]  # the old model, weights and config together
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cnn_predict_folder_is_one_unit_and_never_replaces_foreign_folders(tmp_path, capsys):
    model = _small_model(tmp_path / "model")
    image = tmp_path / "image.nii.gz"
    write_nifti(Volume(np.random.default_rng(1).random((3, 8, 8)).astype(np.float32)), image)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["cnn", "predict", "--model", model, image, "--out", out, "--overwrite"]
    assert _run(argv) == 2 and "not written by napari-medimg" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    out = tmp_path / "pred2"
    assert _run(argv[:-2] + [out]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [MARKER, "predictions.csv", "probability.nii.gz", "saliency.nii.gz", "classes.nii.gz"]
    )
    assert _run(argv[:-2] + [out]) == 2  # refused without --overwrite …
    assert _run(argv[:-2] + [out, "--overwrite"]) == 0  # … replaced as a unit with it


def test_image_export_never_replaces_its_own_source_series(series, tmp_path):
    from napari_medimg.io.dicom import read_dicom
    from napari_medimg.io.dicom_write import export_image_series

    copy = tmp_path / "copy"
    deidentify_series(series, copy)  # one of our outputs, marker inside
    (volume,) = read_dicom(copy)
    before = sorted(p.read_bytes() for p in copy.glob("*.dcm"))
    with pytest.raises(OverwriteError, match="input"):
        export_image_series(volume, copy, overwrite=True)
    with pytest.raises(OverwriteError, match="input"):
        export_image_series(volume, copy / "inside", overwrite=True)
    assert sorted(p.read_bytes() for p in copy.glob("*.dcm")) == before


def test_demo_out_refuses_a_folder_of_other_files_before_opening_napari(tmp_path, monkeypatch, capsys):
    import napari

    monkeypatch.setattr(napari, "Viewer", lambda *a, **k: pytest.fail("opened napari first"))
    (tmp_path / "thesis.docx").write_text("x")
    assert _run(["demo", "--out", tmp_path]) == 2
    assert "not written by napari-medimg" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.docx"]
