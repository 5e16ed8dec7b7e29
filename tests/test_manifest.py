"""The npe2 manifest: valid, the same file in the source tree, the installed package and a built wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import npe2

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_and_lists_contributions():
    manifest = npe2.PluginManifest.from_distribution("napari-medimg")
    manifest.validate_imports()
    assert manifest.name == "napari-medimg"
    keys = {sample.key for sample in manifest.contributions.sample_data}
    assert {"ct_phantom", "ct_small", "mr_small"} <= keys
    widgets = {widget.display_name for widget in manifest.contributions.widgets}
    assert "Threshold" in widgets
    assert "napari/layers/segment" in manifest.contributions.menus


def test_npe2_validate_command():
    npe2_cli = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2_cli), "validate", "napari-medimg"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_installed_manifest_is_the_root_file():
    import napari_medimg

    packaged = Path(napari_medimg.__file__).with_name("napari.yaml")
    assert packaged.read_bytes() == (ROOT / "napari.yaml").read_bytes()


def test_wheel_contains_the_manifest(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("napari_medimg-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("napari_medimg/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "napari-medimg = napari_medimg:napari.yaml" in text
    assert "medimg = napari_medimg.cli:main" in text


def test_napari_info_lists_the_plugin():
    napari_cli = Path(sys.executable).with_name("napari")
    result = subprocess.run([str(napari_cli), "--info"], capture_output=True, text=True, timeout=120)
    assert "napari-medimg" in result.stdout
