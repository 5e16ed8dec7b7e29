"""Core/adapter boundary: nothing outside napari_medimg.plugin imports napari, qtpy or a Qt binding."""

import json
import subprocess
import sys

FORBIDDEN = ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2")

SCRIPT = """
import importlib, json, pkgutil, sys
import napari_medimg
imported = []
# walk each core package on its own: walking the whole tree would import the plugin's subpackages to recurse
for top in pkgutil.iter_modules(napari_medimg.__path__, "napari_medimg."):
    if top.name == "napari_medimg.plugin":
        continue
    module = importlib.import_module(top.name)
    imported.append(top.name)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), top.name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
forbidden = %r
leaked = sorted(name for name in sys.modules if name.split(".")[0] in forbidden)
print(json.dumps({"imported": imported, "leaked": leaked}))
"""


def report_of(script: str) -> dict:
    """Run ``script`` (its ``%r`` filled with FORBIDDEN) in a fresh interpreter; its last line of JSON."""
    result = subprocess.run(
        [sys.executable, "-c", script % (FORBIDDEN,)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_modules_import_no_gui_toolkit():
    report = report_of(SCRIPT)
    # the walk really covered the core: geometry, samples, io, processing, the CLI
    for module in (
        "napari_medimg.geometry",
        "napari_medimg.samples",
        "napari_medimg.io.nifti",
        "napari_medimg.processing.threshold",
        "napari_medimg.cli",
        "napari_medimg.cli.convert",
    ):
        assert module in report["imported"]
    assert report["leaked"] == [], f"core modules imported {report['leaked']}"


def test_plugin_modules_do_import_napari():
    """The check above can fail: importing the adapter does pull napari in."""
    script = "import sys, napari_medimg.plugin.workers; print('napari' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


RUN_SCRIPT = """
import json, os, sys, tempfile
from napari_medimg import ops
from napari_medimg.cli import main
from napari_medimg.io.nifti import write_nifti
from napari_medimg.samples import make_ct_phantom

phantom = make_ct_phantom(shape=(16, 64, 64), spacing=(2.5, 2.8, 2.8))
with tempfile.TemporaryDirectory() as folder:
    image = write_nifti(phantom.image, os.path.join(folder, "ct.nii.gz"))
    lesions = write_nifti(phantom.lesions, os.path.join(folder, "lesions.nii.gz"))
    codes = [
        main(["info", str(image), "--json"]),
        main(["segment", str(image), os.path.join(folder, "mask.nii.gz"), "--threshold=200:3000"]),
        main(["features", str(image), str(lesions), "--out", os.path.join(folder, "features.csv")]),
        main(["ops"]),
    ]
    ops.run("denoise", phantom.image, method="gaussian", sigma_mm=1.0)
    ops.run("threshold", phantom.image, method="manual", low=200, high=3000)
forbidden = %r
leaked = sorted(name for name in sys.modules if name.split(".")[0] in forbidden)
print(json.dumps({"codes": codes, "leaked": leaked}))
"""


def test_core_commands_run_without_gui_toolkit():
    """At run time too: CLI commands and registry operations load no napari or Qt module."""
    report = report_of(RUN_SCRIPT)
    assert report["codes"] == [0, 0, 0, 0]
    assert report["leaked"] == [], f"core commands imported {report['leaked']}"
