"""The one place where napari-medimg writes outputs: atomic files, atomic folders, race-free refusals.

Promises (see ``docs/reliability.md``):

* **Atomic files** (:func:`atomic_path`): the writer fills a private temporary file beside the target
  (``.NAME.medimg-PID-RANDOM.SUFFIX``, mode 0600); the file and then its folder are fsynced and the
  temporary is renamed onto the target.  A kill at any moment leaves the old file or the complete new one.
* **Atomic folders** (:func:`atomic_directory`): a multi-file output (a de-identified series, a model
  folder with weights + ``config.json``, a prediction folder) is written into one private temporary folder
  and swapped in as a unit with ``renameat2(RENAME_EXCHANGE)`` on Linux, so that the final name always
  holds the old complete folder or the new complete one.  Where the kernel or file system cannot exchange,
  the old folder is first renamed to a recognisable backup name (``.NAME.medimg-PID-RANDOM.old``) and the
  stale-temporary cleaning puts it back when the new folder never arrived.
* **Race-free refusal**: without ``overwrite`` the final step is an exclusive rename
  (``renameat2(RENAME_NOREPLACE)``, or ``link()`` for files) that fails when the target appeared meanwhile,
  so of two commands writing one output, exactly one wins and the other changes nothing.
* **Only our own outputs are replaced**: a folder is replaced only when it holds the marker file
  :data:`MARKER` that every folder written here carries (or is empty); never a plain file, never a folder of
  someone else's files.  ``sources`` refuses an output equal to, inside, or containing an input.
* **Sets of sibling files** (:func:`atomic_files`, e.g. a NIfTI and its JSON sidecar): all are written
  and fsynced as temporaries first, then a commit journal lists them, then they are renamed; a kill during
  the renames is rolled forward by the next write into the folder (or :func:`clean_stale_temporaries`), so
  the set ends up complete; a per-set lock file makes the refusal without ``overwrite`` race-free.
* **Stale temporaries** (left by ``kill -9``) are removed by the next write into the same folder, only when
  they match our name pattern, their writing process is gone (or they are older than a day), and, for
  folders, they hold our marker.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OverwriteError

__all__ = [
    "atomic_path",
    "atomic_directory",
    "atomic_files",
    "clean_stale_temporaries",
    "check_not_overlapping",
    "check_folder_replaceable",
    "is_our_output",
    "exchange",
    "rename_noreplace",
    "fsync_directory",
    "MARKER",
    "STALE_AGE_S",
]

#: marker file inside every folder napari-medimg writes (what makes a folder replaceable with --overwrite)
MARKER = ".napari-medimg-output"
#: a temporary whose process still exists is considered stale only after this many seconds
STALE_AGE_S = 24 * 3600

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_JOURNAL = ".commit.json"
_LOCK = ".medimg-lock"
_TEMP = re.compile(r"^\.(?P<name>.+)\.medimg-(?P<pid>\d+)-[0-9a-f]{16}(?P<old>\.old)?(\..*)?$")


def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _rename_flags(source, target, flags: int) -> bool:
    """``renameat2(source, target, flags)``; False when the system cannot do it, OSError on other errors."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(target))


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Atomically swap the entries ``a`` and ``b`` (both must exist); False when unsupported here.

    Parameters
    ----------
    a, b : path-like
        Two existing entries of one file system.

    Returns
    -------
    bool
        True when swapped; False when the kernel or file system has no ``RENAME_EXCHANGE``.
    """
    return _rename_flags(a, b, _RENAME_EXCHANGE)


def rename_noreplace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename ``source`` to ``target`` only if ``target`` does not exist, atomically.

    Parameters
    ----------
    source, target : path-like
        The entry to move and its new name (same file system).

    Raises
    ------
    OverwriteError
        When ``target`` exists (also when it appeared a moment ago: the check is the rename itself).
    """
    target = Path(target)
    try:
        if _rename_flags(source, target, _RENAME_NOREPLACE):
            return
    except FileExistsError as error:
        raise OverwriteError(_exists_message(target)) from error
    if Path(source).is_dir():
        # no renameat2: an exclusive mkdir reserves the name, then rename(2) replaces that empty folder
        try:
            os.mkdir(target)
        except FileExistsError as error:
            raise OverwriteError(_exists_message(target)) from error
        os.rename(source, target)
        return
    try:
        os.link(source, target)  # fails when the target exists: exclusive
    except FileExistsError as error:
        raise OverwriteError(_exists_message(target)) from error
    os.unlink(source)


def _exists_message(target: Path) -> str:
    return f"{target} exists; pass overwrite=True (--overwrite) to replace it"


def fsync_directory(path: str | os.PathLike) -> None:
    """fsync a folder so that renames inside it survive a power cut (no-op where folders cannot be opened).

    Parameters
    ----------
    path : path-like
        The folder.
    """
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                descriptor = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
        fsync_directory(folder)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_our_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder napari-medimg wrote (it holds :data:`MARKER`).

    Parameters
    ----------
    path : path-like
        A folder.

    Returns
    -------
    bool
    """
    path = Path(path)
    marker = path / MARKER
    return path.is_dir() and not path.is_symlink() and marker.is_file() and not marker.is_symlink()


def _marker_text(kind: str) -> str:
    from .. import __version__

    return json.dumps({"written_by": "napari-medimg", "version": __version__, "kind": kind}) + "\n"


def clean_stale_temporaries(folder: str | os.PathLike, *, max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Remove the temporaries that killed napari-medimg writes left in ``folder``; restore lost backups.

    Only entries named like ours (``.NAME.medimg-PID-<16 hex>[.old][.SUFFIX]``) are touched, only when the
    process ``PID`` no longer runs or the entry is older than ``max_age_s``, and temporary folders only when
    they hold :data:`MARKER`.  A backup folder (``.old``, made only where folders cannot be exchanged) is
    renamed back to ``NAME`` when nothing took its place; otherwise it is removed.

    Parameters
    ----------
    folder : path-like
        The folder to clean (not recursive).
    max_age_s : float, optional
        Age after which a temporary is stale even if a process with its PID exists (PIDs are reused).

    Returns
    -------
    list of Path
        The entries removed (restored backups are not listed).
    """
    removed = []
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:  # unfinished commits first: their temporaries are complete, finish the renames
        if entry.name.endswith(_JOURNAL) and _TEMP.match(entry.name):
            pid = int(_TEMP.match(entry.name)["pid"])
            if not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    _roll_forward(Path(entry.path))
    entries = list(os.scandir(folder))
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None:
            if (
                entry.name.startswith(".")
                and entry.name.endswith(_LOCK)
                and entry.is_file(follow_symlinks=False)
            ):
                with contextlib.suppress(OSError, ValueError):
                    if not _pid_alive(int(Path(entry.path).read_text() or "0")):
                        os.unlink(entry.path)  # the lock of a killed writer
                        removed.append(Path(entry.path))
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if _pid_alive(int(match["pid"])) and age < max_age_s:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if not is_our_output(path):
                continue
            if match["old"]:
                original = folder / match["name"]
                with contextlib.suppress(OSError):
                    rename_noreplace(path, original)
                    continue
            shutil.rmtree(path, ignore_errors=True)
        elif entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def check_not_overlapping(target: str | os.PathLike, sources: Iterable[str | os.PathLike]) -> None:
    """Refuse an output that is an input, lies inside an input, or contains one.

    Parameters
    ----------
    target : path-like
        The output file or folder.
    sources : iterable of path-like
        The inputs (files or folders).

    Raises
    ------
    OverwriteError
        When ``target`` and a source are the same, or one lies inside the other (symlinks resolved).
    """
    out = _resolved(target)
    for source in sources:
        src = _resolved(source)
        if out == src:
            raise OverwriteError(f"the output {target} is the input {source}; choose another output")
        if src in out.parents:
            raise OverwriteError(f"the output {target} lies inside the input {source}; choose another output")
        if out in src.parents:
            raise OverwriteError(f"the output {target} contains the input {source}; choose another output")


def _temporary_name(target: Path, suffix: str = "") -> Path:
    return target.parent / f".{target.name}.medimg-{os.getpid()}-{secrets.token_hex(8)}{suffix}"


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    sources: Iterable[str | os.PathLike] = (),
) -> Iterator[str]:
    """Yield a private temporary path (same suffixes as ``path``) that replaces ``path`` on success.

    The temporary is fsynced, given the usual permissions and renamed onto ``path``; the folder is fsynced.
    Without ``overwrite`` the rename is exclusive, so a file that appeared meanwhile is never replaced.

    Parameters
    ----------
    path : path-like
        The file to write.
    overwrite : bool, optional
        Replace an existing file.
    sources : iterable of path-like, optional
        Inputs that ``path`` must not be, or lie in (see :func:`check_not_overlapping`).

    Yields
    ------
    str
        The temporary file to write (it exists, empty).

    Raises
    ------
    OverwriteError
        ``path`` exists and ``overwrite`` is false, or it is a folder, or it overlaps an input.

    Example
    -------
    >>> with atomic_path("table.csv") as temporary:  # doctest: +SKIP
    ...     frame.to_csv(temporary)
    """
    target = Path(path)
    check_not_overlapping(target, sources)
    if target.is_dir():
        raise OverwriteError(f"{target} is a folder; give a file name for this output")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OverwriteError(_exists_message(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target.parent)
    temporary = _temporary_name(target, "".join(target.suffixes))
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private until complete
    try:
        yield os.fspath(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if overwrite:
            if target.is_dir():
                raise OverwriteError(f"{target} is a folder; give a file name for this output")
            os.replace(temporary, target)
        else:
            rename_noreplace(temporary, target)
        os.chmod(target, 0o666 & ~_umask())  # the usual permissions only once complete under its name
        fsync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    sources: Iterable[str | os.PathLike] = (),
    kind: str = "output",
) -> Iterator[Path]:
    """Yield a private temporary folder that becomes ``path`` as a unit on success.

    The folder carries :data:`MARKER` (so a later ``overwrite`` recognises it as ours); everything in it is
    fsynced before the swap.  An existing ``path`` is replaced only with ``overwrite`` and only when it is
    empty or holds the marker; the swap is an atomic exchange where the system has one.

    Parameters
    ----------
    path : path-like
        The folder to write.
    overwrite : bool, optional
        Replace an existing folder napari-medimg wrote.
    sources : iterable of path-like, optional
        Inputs that ``path`` must not be, lie in or contain (see :func:`check_not_overlapping`).
    kind : str, optional
        What the folder holds, recorded in the marker file.

    Yields
    ------
    Path
        The temporary folder to fill.

    Raises
    ------
    OverwriteError
        ``path`` exists and may not be replaced (see above), or it overlaps an input.
    """
    target = Path(path)
    check_not_overlapping(target, sources)
    check_folder_replaceable(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target.parent)
    temporary = _temporary_name(target)
    os.mkdir(temporary, 0o700)  # private: a killed write never leaves readable partial (PHI) copies
    try:
        (temporary / MARKER).write_text(_marker_text(kind))
        yield temporary
        _fsync_tree(temporary)
        _swap_in(temporary, target, overwrite)
        os.chmod(target, 0o777 & ~_umask())
        fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def check_folder_replaceable(target: str | os.PathLike, overwrite: bool) -> None:
    """Refuse early what :func:`atomic_directory` would refuse at the end (before a long computation).

    Parameters
    ----------
    target : path-like
        The output folder.
    overwrite : bool
        Whether replacing an earlier output was asked for.

    Raises
    ------
    OverwriteError
        ``target`` is a file or link, or a non-empty folder without ``overwrite``, or one napari-medimg did
        not write.
    """
    target = Path(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OverwriteError(f"{target} exists and is not a folder; it is not replaced")
    if not target.exists():
        return
    empty = not any(target.iterdir())
    if empty:
        return
    if not overwrite:
        raise OverwriteError(
            f"{target} exists and is not empty; pass overwrite=True (--overwrite) to replace it"
        )
    if not is_our_output(target):
        raise OverwriteError(
            f"{target} was not written by napari-medimg (no {MARKER} inside); it is never replaced, "
            "choose a new or empty folder"
        )


def _swap_in(temporary: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        rename_noreplace(temporary, target)
        return
    check_folder_replaceable(target, overwrite)  # again, right before the swap
    if not any(target.iterdir()):
        try:
            os.rename(temporary, target)  # replaces an empty folder only; ENOTEMPTY if it filled meanwhile
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise OverwriteError(_exists_message(target)) from error
            raise
        return
    if exchange(temporary, target):
        shutil.rmtree(temporary, ignore_errors=True)  # the old folder now has the temporary name
        return
    backup = Path(f"{_temporary_name(target)}.old")
    os.rename(target, backup)
    os.rename(temporary, target)
    shutil.rmtree(backup, ignore_errors=True)


def _roll_forward(journal: Path) -> None:
    try:
        pairs = json.loads(journal.read_text())["renames"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    folder = journal.parent
    for temporary, target in pairs:
        source = folder / Path(temporary).name
        if source.exists():
            os.replace(source, folder / Path(target).name)
            os.chmod(folder / Path(target).name, 0o666 & ~_umask())
    fsync_directory(folder)
    journal.unlink(missing_ok=True)


@contextlib.contextmanager
def _set_lock(first: Path) -> Iterator[None]:
    lock = first.parent / f".{first.name}{_LOCK}"
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                raise OverwriteError(f"another command (process {pid}) is writing {first} now") from None
            lock.unlink(missing_ok=True)  # left by a killed writer
    else:
        raise OverwriteError(f"another command is writing {first} now")
    try:
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        yield
    finally:
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_files(
    paths: Iterable[str | os.PathLike],
    overwrite: bool = False,
    *,
    sources: Iterable[str | os.PathLike] = (),
) -> Iterator[list[str]]:
    """Yield private temporaries for several files of one folder that are committed together.

    All temporaries are fsynced, then a commit journal names them, then each is renamed onto its target.
    A kill during the renames is completed (rolled forward) by the next napari-medimg write in the folder
    or by :func:`clean_stale_temporaries`; an exception before the journal leaves every old file as it was.

    Parameters
    ----------
    paths : iterable of path-like
        The target files (same folder).
    overwrite : bool, optional
        Replace existing files.
    sources : iterable of path-like, optional
        Inputs that no target may be or lie in.

    Yields
    ------
    list of str
        One temporary per target, in order.

    Raises
    ------
    OverwriteError
        A target exists (and not ``overwrite``), is a folder, overlaps an input, or another command is
        writing the same set now.
    """
    targets = [Path(p) for p in paths]
    sources = list(sources)
    if not targets:
        raise ValueError("atomic_files needs at least one path")
    if len({t.parent.resolve() for t in targets}) != 1:
        raise ValueError("atomic_files writes files of one folder")
    folder = targets[0].parent

    def check():
        for target in targets:
            check_not_overlapping(target, sources)
            if target.is_dir():
                raise OverwriteError(f"{target} is a folder; give a file name for this output")
            if (target.exists() or target.is_symlink()) and not overwrite:
                raise OverwriteError(_exists_message(target))

    check()
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(folder)
    temporaries = [_temporary_name(t, "".join(t.suffixes)) for t in targets]
    journal = Path(f"{_temporary_name(targets[0])}{_JOURNAL}")
    try:
        for temporary in temporaries:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield [os.fspath(t) for t in temporaries]
        mode = 0o666 & ~_umask()
        for temporary in temporaries:
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        with _set_lock(targets[0]):
            check()  # again, under the lock: two commands cannot both pass it
            pairs = [[t.name, target.name] for t, target in zip(temporaries, targets, strict=True)]
            journal.write_text(json.dumps({"renames": pairs}))
            descriptor = os.open(journal, os.O_RDONLY)
            os.fsync(descriptor)
            os.close(descriptor)
            fsync_directory(folder)
            for temporary, target in zip(temporaries, targets, strict=True):
                os.replace(temporary, target)
            for target in targets:
                os.chmod(target, mode)
            fsync_directory(folder)
            journal.unlink()
    except BaseException:
        if not journal.exists():
            for temporary in temporaries:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        raise
