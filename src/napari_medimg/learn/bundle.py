"""Model bundles: one skops file (never pickle) holding a fitted model and everything needed to apply it safely.

A bundle is a skops archive of a dict ``{"format", "format_version", "meta", "model"}``: ``meta`` is a JSON
string (kind, feature names in order, feature settings, class names, library versions, training metrics,
importances); ``model`` the fitted scikit-learn estimator.

Loading never executes code from the file: the archive's ``schema.json`` is read first and every type it
names must come from an explicit allow-list (:data:`TRUSTED_MODULES` plus :data:`TRUSTED_TYPES` for the
non-default types skops asks about); anything else — ``os.system``, ``builtins.eval``, a class from another
package — is refused naming the type, before skops builds a single object.  A damaged archive (truncated,
bit flips caught by the zip CRC), a foreign skops file or a pickle are refused with :class:`BundleError`.
"""

from __future__ import annotations

import json
import os
import platform
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.atomic import atomic_path

__all__ = [
    "BundleError",
    "FORMAT",
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "TRUSTED_MODULES",
    "save_bundle",
    "load_bundle",
    "library_versions",
]

FORMAT = "napari-medimg-model"
FORMAT_VERSION = 1

#: the types outside skops's default-trusted set that our models contain (passed to ``skops.io.load``)
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)

#: every type named in a bundle's schema must live in one of these modules (or be a plain builtin)
TRUSTED_MODULES = ("sklearn.", "numpy", "scipy.sparse")
_TRUSTED_BUILTINS = {"builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int",
                     "builtins.float", "builtins.bool", "builtins.NoneType", "builtins.bytes", "builtins.slice",
                     "builtins.complex", "builtins.set", "builtins.frozenset", "builtins.type"}  # fmt: skip
_MAX_SCHEMA_BYTES = 50 * 1024 * 1024


class BundleError(ValueError):
    """A model file is damaged, foreign, unsafe or does not match the data it is applied to."""


def library_versions() -> dict:
    """Versions of the libraries a bundle depends on (stored in every bundle).

    Returns
    -------
    dict
        ``napari_medimg``, ``scikit-learn``, ``skops``, ``numpy``, ``scipy``, ``python``.
    """
    import scipy
    import sklearn
    import skops

    return {
        "napari_medimg": __version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save_bundle(path: str | os.PathLike, model, meta: dict, *, overwrite: bool = False) -> Path:
    """Write ``model`` with its description ``meta`` as a skops bundle (atomic).

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.skops`` suggested).
    model : sklearn estimator
        The fitted model.
    meta : dict
        JSON-able description; must hold ``kind``; ``versions`` and ``format`` are added.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OverwriteError
        When ``path`` exists and ``overwrite`` is false.
    """
    import skops.io as sio

    if "kind" not in meta:
        raise ValueError("a bundle's meta needs a 'kind'")
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION, "versions": library_versions()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": json.dumps(meta, default=_json_default),
        "model": model,
    }
    target = Path(os.fspath(path))
    with atomic_path(target, overwrite=overwrite) as temporary:
        sio.dump(payload, temporary)
    _check_types(target)  # what we wrote must load back under the same rules
    return target


def _schema_types(node, found: set) -> None:
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            found.add(f"{module}.{name}")
        for value in node.values():
            _schema_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, found)


def _check_types(path: Path) -> list[str]:
    """Refuse a file whose schema names a type outside the allow-list; return skops's untrusted types."""
    import skops.io as sio

    try:
        with zipfile.ZipFile(path) as archive:
            if "schema.json" not in archive.namelist():
                raise BundleError(f"{path.name}: not a skops model bundle (no schema.json inside)")
            info = archive.getinfo("schema.json")
            if info.file_size > _MAX_SCHEMA_BYTES:
                raise BundleError(f"{path.name}: the bundle's schema is implausibly large")
            bad = archive.testzip()
            if bad is not None:
                raise BundleError(f"{path.name}: the bundle is damaged ({bad} fails its checksum)")
            schema = json.loads(archive.read("schema.json"))
    except zipfile.BadZipFile as error:
        raise BundleError(
            f"{path.name}: damaged or not a napari-medimg model bundle (not a skops archive: {error}); pickled "
            "models are never loaded"
        ) from error
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as error:
        raise BundleError(f"{path.name}: the bundle is damaged ({error})") from error
    found: set[str] = set()
    _schema_types(schema, found)
    unsafe = sorted(
        name for name in found if name not in _TRUSTED_BUILTINS and not name.startswith(TRUSTED_MODULES)
    )
    if unsafe:
        raise BundleError(f"{path.name}: refused, the file asks for untrusted type(s) {', '.join(unsafe)}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # noqa: BLE001 (skops raises many kinds on malformed schemas)
        raise BundleError(f"{path.name}: the bundle is damaged ({type(error).__name__}: {error})") from error
    extra = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if extra:
        raise BundleError(f"{path.name}: refused, the file asks for untrusted type(s) {', '.join(extra)}")
    return list(untrusted)


def load_bundle(path: str | os.PathLike, *, kind: str | None = None) -> tuple[object, dict]:
    """Load a bundle written by :func:`save_bundle`, refusing anything unsafe, damaged or foreign.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle file.
    kind : str, optional
        The expected ``meta["kind"]`` (``'objects'`` or ``'pixels'``); another kind is refused.

    Returns
    -------
    (model, meta)
        The fitted estimator and its description.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    BundleError
        For a damaged, foreign or tampered file, or one of another kind.
    """
    import skops.io as sio

    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"model file {os.fspath(path)!r} does not exist")
    untrusted = _check_types(path)
    try:
        payload = sio.load(path, trusted=untrusted)
    except Exception as error:  # noqa: BLE001 (skops raises many kinds on malformed content)
        raise BundleError(f"{path.name}: the bundle is damaged ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError(f"{path.name}: a skops file but not a napari-medimg model bundle")
    if payload.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path.name}: bundle format version {payload.get('format_version')!r}; this napari-medimg reads "
            f"version {FORMAT_VERSION}"
        )
    try:
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path.name}: the bundle's description is damaged ({error})") from error
    model = payload.get("model")
    if not isinstance(meta, dict) or not hasattr(model, "predict_proba"):
        raise BundleError(f"{path.name}: the bundle holds no usable classifier")
    if kind is not None and meta.get("kind") != kind:
        raise BundleError(f"{path.name}: a {meta.get('kind')!r} model where a {kind!r} model is needed")
    return model, meta
