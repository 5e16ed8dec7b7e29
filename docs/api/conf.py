"""Sphinx configuration of the napari-medimg API reference (``make docs``; the test builds it with -W).

The pages are generated from the package at build time: one page per core subpackage listing its modules,
each module documented from its ``__all__`` (autodoc) with numpydoc sections.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

project = "napari-medimg"
author = "napari-medimg contributors"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # types are in the numpydoc sections
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
suppress_warnings = ["ref.python"]  # numpy-style type names (array_like, …) are not cross-referenced

#: the core subpackages and modules of the reference, in reading order
SECTIONS = [
    ("geometry", "Volumes and geometry"),
    ("ops", "Operation registry"),
    ("processing", "Processing and segmentation"),
    ("io", "Reading and writing"),
    ("measure", "Measurements and features"),
    ("learn", "Machine learning"),
    ("pipeline", "Steps, recipes and batches"),
    ("progress", "Progress and cancellation"),
    ("samples", "Sample data"),
]

HERE = Path(__file__).parent


def _modules(name: str) -> list[str]:
    module = importlib.import_module(f"napari_medimg.{name}")
    found = [module.__name__]
    if hasattr(module, "__path__"):
        for info in sorted(
            pkgutil.walk_packages(module.__path__, f"{module.__name__}."), key=lambda i: i.name
        ):
            if not any(part.startswith("_") for part in info.name.split(".")):
                found.append(info.name)
    return found


def _shadowed(module: str) -> bool:
    """True for a submodule named like an object its package exports (``ops.register`` vs ``ops.register()``)."""
    parent, _, leaf = module.rpartition(".")
    return leaf in getattr(importlib.import_module(parent), "__all__", ())


def _write_pages(app=None) -> None:
    folder = HERE / "generated"
    folder.mkdir(exist_ok=True)
    for name, title in SECTIONS:
        lines = [title, "=" * len(title), ""]
        for module in _modules(name):
            lines += [module, "-" * len(module), "", f".. automodule:: {module}"]
            lines += ["   :no-index:", ""] if _shadowed(module) else [""]
        text = "\n".join(lines)
        page = folder / f"{name}.rst"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)


_SUBSTITUTION = re.compile(r"(?<![\\`])\|(?=\S)([^|`\n]*?\S)\|(?![_\w])")


def _escape_bars(app, what, name, obj, options, lines) -> None:
    """``|A ∩ B|`` in a docstring means a size, not an RST substitution: escape the bars (tables excepted)."""
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not (stripped[:1] in "|+" and stripped[-1:] in "|+" and len(stripped) > 1):  # not a table row
            lines[number] = _SUBSTITUTION.sub(lambda m: f"\\|{m.group(1)}\\|", line)


def setup(app):
    """Generate the module pages before Sphinx reads the sources; escape size bars in docstrings."""
    app.connect("builder-inited", _write_pages)
    app.connect("autodoc-process-docstring", _escape_bars, priority=400)
