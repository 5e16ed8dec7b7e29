"""Atomic writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import OverwriteError

__all__ = ["atomic_path", "atomic_directory"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary path with the same suffixes as ``path``; on success it is renamed to ``path``.

    Raises :class:`OverwriteError` when ``path`` exists and ``overwrite`` is false.  On any error the
    temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise OverwriteError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give the file the usual permissions
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder beside ``path``; on success it is renamed to ``path`` (a folder of outputs).

    Raises :class:`OverwriteError` when ``path`` exists and ``overwrite`` is false; with ``overwrite`` an
    existing folder is replaced only after the new one is complete.  On error nothing is left behind.
    """
    import shutil

    target = Path(path)
    if target.exists() and not overwrite:
        raise OverwriteError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private; give the folder the usual permissions
    try:
        yield temporary
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
