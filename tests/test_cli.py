"""The ``medimg`` command line: help, version and the scripted demo."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from napari_medimg import __version__
from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti

MEDIMG = str(Path(sys.executable).with_name("medimg"))


def test_version_and_help(capsys):
    result = subprocess.run([MEDIMG, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"napari-medimg {__version__}"
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_scripted_demo_writes_screenshot_and_results(tmp_path):
    # pytest-xvfb exported DISPLAY for this process: the demo opens a real napari window on it
    result = subprocess.run(
        [MEDIMG, "demo", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    screenshot = tmp_path / "napari-medimg-demo.png"
    assert str(screenshot) in result.stdout
    with Image.open(screenshot) as picture:
        width, height = picture.size
        pixels = np.asarray(picture.convert("RGB"))
    assert width >= 1200 and height >= 800  # the full window with docks, not just the canvas
    assert pixels.std() > 20  # something is drawn
    summary = json.loads((tmp_path / "threshold_bone.json").read_text())
    mask = read_nifti(tmp_path / "threshold_bone.nii.gz")
    np.testing.assert_allclose(mask.spacing, (2.5, 0.7, 0.7))
    assert summary["volume_ml"] > 5
    assert abs(mask.array.sum() * mask.voxel_volume / 1000 - summary["volume_ml"]) < 1e-3
