"""Run a recipe over one case or a cohort, on dask.distributed, with atomic per-case outputs and resume.

A *case* is one input: a NIfTI file or a DICOM series folder; its name is the file's stem (``ct01`` for
``ct01.nii.gz``) or the folder's name.  :func:`run_case` writes ``OUT/<case>/``:

``labels.nii.gz``
    the recipe's last mask or labels on the input's voxel grid (uint8, or uint16/int32 when the values need
    it);
``features.csv``
    the last table (when the recipe measures);
``predictions.csv``
    the last predictions (when the recipe classifies);
``log.json``
    status, input, recipe hash and recipe, package versions, per-step timings in seconds and warnings.

The recipe runs on the scan in the orientation napari shows it (:meth:`~napari_medimg.geometry.Volume.canonical`,
array axes along S, P, L; a transpose/flip, no interpolation), so that an axis parameter or an
orientation-dependent feature means in a batch what it meant in the widgets; the labels are put back on the
input's grid before writing.  The folder is written as a temporary sibling and renamed into place (:func:`~napari_medimg.io.atomic.atomic_directory`),
so a case's outputs appear complete or not at all.  A case whose ``log.json`` says ``done`` for the same
recipe hash is skipped (resume); a folder made by another recipe is replaced only with ``overwrite``.

:func:`run_batch` runs many cases on a ``distributed.LocalCluster`` of worker processes (one thread each,
numpy/BLAS/torch pinned to one thread) or on an existing cluster (``scheduler="tcp://host:8786"``).  A case
that fails is recorded with its error and the others go on; a worker process that dies mid-case is replaced
by its nanny and the scheduler runs the case again; temporary folders of such attempts are removed at the
end, so every case's outputs exist exactly once.  ``OUT/features.csv`` combines the cases' tables with a
``case`` column first (``OUT/predictions.csv`` likewise when the recipe classifies) and ``OUT/batch.json``
holds the summary; both are rebuilt from the case folders on
every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .recipe import Recipe, RecipeError, _as_recipe, run_recipe

__all__ = [
    "CASE_FILES",
    "case_name",
    "read_case",
    "case_status",
    "run_case",
    "on_grid_of",
    "restore_environment",
    "run_batch",
    "combine_features",
    "remove_temporaries",
]

#: the files a case folder may hold
CASE_FILES = ("labels.nii.gz", "features.csv", "predictions.csv", "log.json")
#: thread counts pinned to 1 in batch workers (MEDIMG_NUM_THREADS: the per-object pool of the features op)
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "MEDIMG_NUM_THREADS",
)


def case_name(path: str | os.PathLike) -> str:
    """The case name of an input: a file's stem without ``.nii``/``.nii.gz``, or a folder's name.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
    """
    path = Path(path)
    name = path.name
    if path.is_dir():
        return name or path.resolve().name
    for suffix in (".nii.gz", ".nii", ".dcm", ".DCM", ".ima", ".IMA"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_case(path: str | os.PathLike):
    """Read a case's scan: a NIfTI file, or a DICOM file or folder holding exactly one series.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Volume
        The scan, loaded into memory.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        A DICOM folder holds several series, or the file is not a readable image.
    """
    from ..geometry import Volume

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    from ..io import read_volume

    volume = read_volume(path, lazy=False)
    return Volume(np.asarray(volume.array), volume.spacing, volume.origin, volume.direction, volume.metadata)


def _versions() -> dict:
    from importlib import metadata

    from .. import __version__

    versions = {"napari-medimg": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "scikit-image", "pandas", "nibabel", "pydicom", "dask", "distributed"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    if "torch" in sys.modules:
        versions["torch"] = metadata.version("torch")
    return versions


def _read_log(case_dir: Path) -> dict | None:
    try:
        log = json.loads((case_dir / "log.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return log if isinstance(log, dict) else None


def case_status(case_dir: str | os.PathLike, recipe_hash: str) -> str:
    """What a case folder holds for ``recipe_hash``.

    Parameters
    ----------
    case_dir : path-like
        ``OUT/<case>``.
    recipe_hash : str

    Returns
    -------
    {"missing", "complete", "other"}
        ``complete``: done by this recipe with every listed output present; ``other``: a folder that is
        not (another recipe, or not ours).
    """
    case_dir = Path(case_dir)
    if not case_dir.exists():
        return "missing"
    log = _read_log(case_dir)
    if (
        log
        and log.get("status") == "done"
        and log.get("recipe_hash") == recipe_hash
        and all((case_dir / name).is_file() for name in log.get("outputs", []))
    ):
        return "complete"
    return "other"


def _temporaries(out: Path, case: str) -> list[Path]:
    """Temporary folders :func:`atomic_directory` leaves beside ``OUT/<case>`` when a process dies."""
    pattern = re.compile(rf"^\.{re.escape(case)}\.(old\.)?[A-Za-z0-9_]{{8}}$")
    if not out.is_dir():
        return []
    return [p for p in out.iterdir() if p.is_dir() and pattern.match(p.name)]


def remove_temporaries(out: str | os.PathLike, cases: Sequence[str]) -> list[Path]:
    """Remove the temporary folders that killed runs of ``cases`` left in ``out``; return what was removed.

    Parameters
    ----------
    out : path-like
        The batch output folder.
    cases : sequence of str
        Case names.  Only temporaries named as our atomic writes name them are touched, and only those
        whose writing process is gone (:func:`~napari_medimg.io.atomic.clean_stale_temporaries`).

    Returns
    -------
    list of Path
    """
    removed = []
    try:
        from ..io.atomic import clean_stale_temporaries
    except ImportError:  # an atomic module without stale cleaning: our own name pattern only
        clean_stale_temporaries = None
    if clean_stale_temporaries is not None and Path(out).is_dir():
        removed += clean_stale_temporaries(out)
    for case in cases:
        for path in _temporaries(Path(out), case):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _label_dtype(array: np.ndarray):
    if array.dtype == bool:
        return np.uint8
    high, low = (int(array.max()), int(array.min())) if array.size else (0, 0)
    if low >= 0 and high <= 255:
        return np.uint8
    if low >= 0 and high <= 65535:
        return np.uint16
    return np.int32


def on_grid_of(result, original):
    """``result``, computed on ``original.canonical()``, put back on ``original``'s voxel grid (exact).

    :meth:`~napari_medimg.geometry.Volume.canonical` only transposes and flips axes; this undoes it, so the
    voxels keep their world positions and the array matches the input voxel for voxel.

    Parameters
    ----------
    result : Volume
        A volume on the grid of ``original.canonical()``.
    original : Volume
        The scan as read.

    Returns
    -------
    Volume
        ``result``'s values on ``original``'s grid and geometry.
    """
    canonical = original.canonical()
    if canonical is original or original.ndim != 3:
        return result
    relation = original.direction.T @ canonical.direction  # [j, i]: original axis j · canonical axis i
    source = np.argmax(np.abs(relation), axis=0)  # canonical axis i is original axis source[i]
    flips = tuple(i for i in range(3) if relation[source[i], i] < 0)
    array = np.asarray(result.array)
    if flips:
        array = np.flip(array, axis=flips)
    return original.with_array(np.ascontiguousarray(array.transpose(np.argsort(source))))


def _write_outputs(result, original, folder: Path) -> list[str]:
    """Write a :class:`RecipeResult`'s last labels (on ``original``'s grid), table and predictions."""
    from ..io.nifti import write_nifti

    written = []
    labels = result.labels
    if labels is not None:
        labels = on_grid_of(labels, original)
        array = np.asarray(labels.array)
        write_nifti(labels.with_array(array.astype(_label_dtype(array))), folder / "labels.nii.gz")
        written.append("labels.nii.gz")
    for name, table in (("features.csv", result.features), ("predictions.csv", result.predictions)):
        if table is not None:
            table.to_csv(folder / name, index=False)
            written.append(name)
    return written


def run_case(
    recipe: Recipe | dict | str | os.PathLike,
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    pin_threads: bool = False,
) -> dict:
    """Run ``recipe`` on one case and write ``out/<case>/`` atomically; never raises for a failing case.

    Parameters
    ----------
    recipe : Recipe, dict or path
    input_path : path-like
        A NIfTI file or a DICOM series folder.
    out : path-like
        The output folder (created when missing).
    overwrite : bool
        Replace a case folder made by another recipe.
    pin_threads : bool
        Limit numpy/BLAS/torch to one thread (batch workers).

    Returns
    -------
    dict
        ``case``, ``input``, ``status`` (``done``, ``skipped`` or ``failed``), ``seconds``, ``cpu_seconds``
        (this process's CPU time over the case, all threads), ``error`` (None unless failed) and ``outputs``.
    """
    from ..io.atomic import atomic_directory

    started, cpu_started = time.perf_counter(), time.process_time()
    input_path = Path(input_path)
    name = case_name(input_path)
    record = {"case": name, "input": str(input_path), "status": "failed", "error": None, "outputs": []}
    limits = _pin_threads() if pin_threads else contextlib.nullcontext()
    try:
        recipe = _as_recipe(recipe)
        recipe_hash = recipe.hash
        target = Path(out) / name
        status = case_status(target, recipe_hash)
        if status == "complete":
            record.update(status="skipped", outputs=_read_log(target).get("outputs", []))
        elif status == "other" and not overwrite:
            raise FileExistsError(
                f"{target} holds outputs of another recipe or run; pass --overwrite to replace them"
            )
        else:
            with limits:
                timings: dict = {}
                clock = time.perf_counter()
                volume = read_case(input_path)
                timings["read"] = time.perf_counter() - clock
                # the recipe runs on the axes napari shows (S, P, L), so that axis parameters and
                # orientation-dependent features mean what they meant in the widgets
                result = run_recipe(recipe, volume.canonical())
                timings.update(result.timings)
                with atomic_directory(target, overwrite=overwrite or status == "other") as temporary:
                    clock = time.perf_counter()
                    outputs = _write_outputs(result, volume, Path(temporary))
                    timings["write"] = time.perf_counter() - clock
                    log = {
                        "case": name,
                        "input": str(input_path.resolve()),
                        "status": "done",
                        "recipe_hash": recipe_hash,
                        "recipe": recipe.to_dict(),
                        "outputs": outputs + ["log.json"],
                        "versions": _versions(),
                        "host": platform.node(),
                        "pid": os.getpid(),
                        "timings_s": {k: round(v, 4) for k, v in timings.items()},
                        "seconds": round(time.perf_counter() - started, 4),
                        "cpu_seconds": round(time.process_time() - cpu_started, 4),
                        "warnings": result.warnings,
                    }
                    (Path(temporary) / "log.json").write_text(json.dumps(log, indent=2), encoding="utf-8")
                record.update(status="done", outputs=log["outputs"])
    except Exception as error:  # noqa: BLE001 - a failing case is recorded; the cohort goes on
        record["error"] = f"{type(error).__name__}: {error}"
        if not isinstance(error, (RecipeError, OSError, ValueError)):
            record["traceback"] = traceback.format_exc(limit=5)
    record["seconds"] = round(time.perf_counter() - started, 4)
    record["cpu_seconds"] = round(time.process_time() - cpu_started, 4)  # this process's, all threads
    return record


@contextlib.contextmanager
def _pin_threads():
    """numpy/BLAS (threadpoolctl) and torch limited to one thread while a case runs."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"  # read by torch and BLAS libraries loaded later in this process
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


def combine_features(out: str | os.PathLike, cases: Sequence[str], filename: str = "features.csv"):
    """Concatenate ``out/<case>/<filename>`` of ``cases`` (in order) with a ``case`` column first.

    Parameters
    ----------
    out : path-like
    cases : sequence of str
    filename : str

    Returns
    -------
    pandas.DataFrame or None
        None when no case has the table.
    """
    import pandas as pd

    tables = []
    for case in cases:
        path = Path(out) / case / filename
        if path.is_file():
            table = pd.read_csv(path)
            tables.append(pd.concat([pd.DataFrame({"case": [case] * len(table)}), table], axis=1))
    if not tables:
        return None
    return pd.concat(tables, ignore_index=True)


class _ProgressBar:
    """A one-line terminal progress bar on stderr (one line per case when stderr is not a terminal)."""

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int, record: dict | None = None) -> None:
        failed = f", last failed: {record['case']}" if record and record["status"] == "failed" else ""
        if self.tty:
            filled = int(30 * done / max(total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} cases{failed}   ")
            if done == total:
                self.stream.write("\n")
        elif record is not None:
            self.stream.write(f"{done}/{total} {record['case']}: {record['status']}\n")
        self.stream.flush()


#: settings of the local cluster's workers, measured on the 2-core machine under load (see bench_batch.py):
#: distributed sets MALLOC_TRIM_THRESHOLD_, which disables glibc's adaptive mmap threshold so that every large
#: numpy temporary is mapped and zeroed afresh (features 1.03-1.45 s per case with it, 0.65-1.03 s without);
#: the statistical profiler (every 10 ms), the event-loop tick (20 ms) and the monitors (100-500 ms) each take
#: the GIL from the case's thread (10 cases: 7.2-7.9 s of case time with them, 4.8-7.1 s without; 5.9-6.0 s
#: in this process)
_LOCAL_WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "2s",
}


def restore_environment(saved: dict) -> None:
    """Put this process's environment back to ``saved``.

    distributed's nannies write their workers' variables (thread counts, malloc settings, hash seed) into the
    environment of the process that starts them; a batch run inside napari or a test session undoes that.

    Parameters
    ----------
    saved : dict
        A copy of ``os.environ`` taken before.
    """
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _warm_up() -> int:
    """Import the core and load the operation registry in a worker (before its first case)."""
    from .. import ops

    ops.names()
    return os.getpid()


def _run_pending(
    recipe_dict,
    recipe_hash,
    pending,
    out,
    results,
    total,
    workers,
    scheduler,
    overwrite,
    progress,
    on_dashboard,
    timing,
) -> None:
    """Submit the pending cases to the cluster, collect their records into ``results``; ``timing`` gets the
    dashboard address and the seconds until the workers were ready."""
    from distributed import Client, LocalCluster, as_completed

    started = time.perf_counter()

    if scheduler:
        cluster = contextlib.nullcontext(scheduler)
    else:
        import dask

        with dask.config.set(_LOCAL_WORKER_CONFIG):
            cluster = LocalCluster(
                n_workers=min(workers or os.cpu_count() or 1, len(pending)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=40,
                env=dict.fromkeys(_THREAD_VARIABLES, "1"),
            )
    with cluster as address, Client(address) as client:
        dashboard = client.dashboard_link
        if on_dashboard is not None:
            on_dashboard(dashboard)
        client.run(_warm_up)
        timing["startup_seconds"] = round(time.perf_counter() - started, 3)
        futures = {}
        for path, name in pending:
            future = client.submit(
                run_case,
                recipe_dict,
                str(path),
                str(out),
                overwrite=overwrite,
                pin_threads=True,
                key=f"case-{name}-{recipe_hash[:12]}-{time.time_ns()}",
                pure=False,
            )
            futures[future] = (path, name)
        for future in as_completed(futures):
            path, name = futures[future]
            try:
                record = future.result()
            except Exception as error:  # noqa: BLE001 - e.g. KilledWorker after repeated deaths
                record = {
                    "case": name,
                    "input": str(path),
                    "status": "failed",
                    "error": f"{type(error).__name__}: {error}",
                    "seconds": None,
                }
            results[name] = record
            if progress is not None:
                progress(len(results), total, record)
    timing["dashboard"] = dashboard


def run_batch(
    recipe: Recipe | dict | str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[..., None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
) -> dict:
    """Run ``recipe`` on every input on dask.distributed; return the summary (also ``out/batch.json``).

    Parameters
    ----------
    recipe : Recipe, dict or path
    inputs : sequence of path-like
        NIfTI files and DICOM series folders; case names must be unique.
    out : path-like
        Output folder.
    workers : int, optional
        Worker processes of the local cluster (default: the CPU count); one thread each.
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``) instead of a local cluster.
    overwrite : bool
        Replace case folders made by another recipe.
    progress : callable, optional
        ``progress(done, total, record)`` as cases finish (``record`` None for the initial call).
    on_dashboard : callable, optional
        Called with the dashboard address once the cluster is up.

    Returns
    -------
    dict
        ``cases``, ``done``, ``skipped``, ``failed`` (counts), ``seconds``, ``recipe_hash``, ``out``,
        ``features`` (the combined table's path or None), ``dashboard``, ``startup_seconds`` (cluster start
        and worker warm-up) and ``results`` (one record per case, in input order).

    Raises
    ------
    RecipeError
        The recipe does not validate.
    FileNotFoundError
        An input does not exist.
    ValueError
        Two inputs have the same case name, or no inputs.
    """
    from ..io.atomic import atomic_path

    started = time.perf_counter()
    recipe = _as_recipe(recipe).validate()
    recipe_hash = recipe.hash
    recipe_dict = recipe.to_dict()
    out = Path(out)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("no inputs given")
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
    names = [case_name(p) for p in inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several inputs have the case name(s) {', '.join(duplicates)}; rename them")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out, names)

    results: dict[str, dict] = {}
    pending = []
    for path, name in zip(inputs, names, strict=True):
        if case_status(out / name, recipe_hash) == "complete":
            results[name] = {
                "case": name,
                "input": str(path),
                "status": "skipped",
                "error": None,
                "seconds": 0.0,
            }
        else:
            pending.append((path, name))
    total = len(inputs)
    if progress is not None:
        progress(len(results), total, None)
    timing: dict = {"dashboard": None, "startup_seconds": 0.0}
    environment = dict(os.environ)
    try:
        if pending:
            _run_pending(
                recipe_dict,
                recipe_hash,
                pending,
                out,
                results,
                total,
                workers,
                scheduler,
                overwrite,
                progress,
                on_dashboard,
                timing,
            )
    finally:
        restore_environment(environment)
        remove_temporaries(out, names)  # attempts of killed workers (the cluster is closed by now)
    ordered = [results[name] for name in names]
    complete = [r["case"] for r in ordered if r["status"] in ("done", "skipped")]
    combined = {}
    for filename in ("features.csv", "predictions.csv"):
        table = combine_features(out, complete, filename)
        combined[filename] = None
        if table is not None:
            combined[filename] = out / filename
            with atomic_path(combined[filename], overwrite=True) as temporary:
                table.to_csv(temporary, index=False)
    features_path = combined["features.csv"]
    summary = {
        "cases": total,
        "done": sum(r["status"] == "done" for r in ordered),
        "skipped": sum(r["status"] == "skipped" for r in ordered),
        "failed": sum(r["status"] == "failed" for r in ordered),
        "seconds": round(time.perf_counter() - started, 3),
        "recipe_hash": recipe_hash,
        "out": str(out),
        "features": None if features_path is None else str(features_path),
        "predictions": None if combined["predictions.csv"] is None else str(combined["predictions.csv"]),
        "dashboard": timing["dashboard"],
        "startup_seconds": timing["startup_seconds"],
        "results": ordered,
    }
    with atomic_path(out / "batch.json", overwrite=True) as temporary:
        Path(temporary).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
