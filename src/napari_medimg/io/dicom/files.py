"""File discovery: which paths are DICOM files, found without opening anything that is not a regular file.

Hostile folders are expected: named pipes (FIFOs), sockets and device files are never opened (opening a FIFO
blocks forever), a file whose first bytes cannot start a DICOM stream is rejected after reading 132 bytes,
and a folder nested deeper than :data:`MAX_DEPTH` is refused instead of recursing without end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import NoSeriesError

__all__ = [
    "is_dicom_file",
    "find_dicom_files",
    "is_regular_file",
    "looks_like_dicom",
    "BoundedReader",
    "MAX_DEPTH",
]

#: folders deeper than this below the scanned root are not walked
MAX_DEPTH = 64
_SUFFIXES = (".dcm", ".dicom", ".ima")
# groups a DICOM stream without preamble (or an ACR-NEMA file) can start with
_FIRST_GROUPS = {0x0002, 0x0008}


def is_regular_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a regular file (symlinks followed); FIFOs, sockets and devices are not.

    Parameters
    ----------
    path : str or os.PathLike
        The path to test; nothing is opened.

    Returns
    -------
    bool
        Whether ``stat`` says regular file.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _read_head(path: str | os.PathLike, size: int = 132) -> bytes:
    """The first ``size`` bytes of a regular file, opened non-blocking (a FIFO swapped in cannot block)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return b""
        return os.read(descriptor, size)
    finally:
        os.close(descriptor)


def looks_like_dicom(head: bytes) -> bool:
    """Cheap content test on a file's first 132 bytes: the ``DICM`` magic, or a plausible first element.

    A file without the Part 10 preamble is accepted only when it starts with an element of group 0002 or
    0008 (what a raw DICOM stream starts with); a file of zeros or text is rejected without parsing.

    Parameters
    ----------
    head : bytes
        The first 132 bytes (or fewer) of the file.

    Returns
    -------
    bool
        Whether the bytes can start a DICOM file.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    element = int.from_bytes(head[2:4], "little")
    if group not in _FIRST_GROUPS or element > 0x0020 and group == 0x0002:
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():  # explicit VR
        return True
    length = int.from_bytes(head[4:8], "little")  # implicit VR: a short first value
    return 0 < length < 1024 or (element == 0 and length == 4)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Cheap test: a regular file whose first bytes can start a DICOM stream (suffix alone is not enough).

    Parameters
    ----------
    path : str or os.PathLike
        Candidate file.

    Returns
    -------
    bool
        True for a regular file with the ``DICM`` magic after the 128-byte preamble, one starting with a
        plausible group 0002/0008 element, or one with a DICOM suffix (``.dcm``, ``.dicom``, ``.ima``);
        False for FIFOs, devices, folders and other files.
    """
    if not is_regular_file(path):
        return False
    try:
        head = _read_head(path)
    except OSError:
        return False
    # a file with a DICOM suffix is kept whatever it holds, so that reading it says why it fails (quickly)
    return looks_like_dicom(head) or os.path.splitext(os.fspath(path))[1].lower() in _SUFFIXES


def find_dicom_files(path: str | os.PathLike) -> list[Path]:
    """DICOM files under ``path`` (recursive, hidden files skipped), or ``[path]`` for a file.

    Parameters
    ----------
    path : str or os.PathLike
        A file or a folder.

    Returns
    -------
    list of Path
        The files, in sorted order (only regular files; FIFOs and devices are never opened).

    Raises
    ------
    NoSeriesError
        When ``path`` does not exist, is not a regular file or folder, or nests deeper than
        :data:`MAX_DEPTH` folders.
    """
    path = Path(os.fspath(path))
    if is_regular_file(path):
        return [path]
    if not path.is_dir():
        if path.exists():
            raise NoSeriesError(f"{path} is not a regular file or folder (a pipe or device is never read)")
        raise NoSeriesError(f"{path} does not exist")
    found = []
    root_depth = len(path.parts)
    for root, dirs, files in os.walk(path):
        if len(Path(root).parts) - root_depth >= MAX_DEPTH:
            raise NoSeriesError(f"{path} nests folders more than {MAX_DEPTH} levels deep; not scanned")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            candidate = Path(root) / name
            if not name.startswith(".") and name.upper() != "DICOMDIR" and is_dicom_file(candidate):
                found.append(candidate)
    return found


class BoundedReader:
    """A file opened for pydicom whose reads never ask for more than the bytes left in it.

    pydicom reads an element's value with ``read(length)``: a damaged length (4 GB in a 6 KB file) makes Python
    allocate that much before reading what is there, a MemoryError (or gigabytes of address space) for a
    corrupt file instead of a short value that pydicom reports as truncated.  Used as a context manager; other
    attributes are the underlying file's.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    """

    def __init__(self, path: str | os.PathLike):
        self._file = open(path, "rb")  # noqa: SIM115 - closed by __exit__ / close
        self._size = os.fstat(self._file.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes, and never more than the file has left (all of them for a negative size)."""
        if size is None or size < 0:
            return self._file.read()
        return self._file.read(min(size, max(self._size - self._file.tell(), 0)))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *_) -> None:
        self._file.close()
