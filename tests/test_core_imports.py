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


def test_core_modules_import_no_gui_toolkit():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT % (FORBIDDEN,)], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
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
