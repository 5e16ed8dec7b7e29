"""Cohort runs: ``run_batch`` on 1 vs 2 dask workers, and the framework's overhead per case against calling the
same operations directly.

The cohort is the one the tests use (tests/batch_cohort.py): 8 DICOM series folders (blocks of a real sagittal
T1w series) and 12 NIfTI crops of the MNI152 T1, built in a temporary folder from ../shared/data.  The recipe
thresholds (Otsu), removes islands under 200 mm³, labels the objects and measures all feature groups.

Four ways to do the same work on every case, each writing labels.nii.gz and features.csv:

* ``direct``: a plain loop calling the registered core functions (no validation, logs, hashing or atomic
  folders) — the baseline;
* ``run_case``: the framework in this process (recipe validation and hash, timings, log.json, atomic folder);
* ``batch 1 worker`` / ``batch 2 workers``: :func:`run_batch` on a fresh LocalCluster (start-up included).

numpy/BLAS are pinned to one thread in this process as in the workers.  A control in the same run measures
what the machine gives two worker processes at that moment (two CPU burns at once vs one after the other).  Each way runs ``--rounds`` times,
interleaved, and the best time counts (the machine is shared).  The load average is printed with every figure.
Results also go to benchmarks/results/bench_batch.json.

    python benchmarks/bench_batch.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MEDIMG_NUM_THREADS"):
    os.environ[_name] = "1"

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
SHARED = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parents[1] / "shared" / "data"))

from batch_cohort import COHORT_RECIPE, cohort  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from napari_medimg import ops  # noqa: E402
from napari_medimg.io.nifti import write_nifti  # noqa: E402
from napari_medimg.pipeline.batch import case_name, on_grid_of, read_case, run_batch, run_case  # noqa: E402

RECIPE = json.loads(json.dumps(COHORT_RECIPE))
RECIPE["steps"][-1]["params"]["groups"] = ["shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]


def direct(inputs, out: Path) -> float:
    """The same operations called one after the other, outputs written plainly."""
    steps = [(ops.get(s["op"]).function, s.get("params", {})) for s in RECIPE["steps"]]
    (threshold, p1), (islands, p2), (components, p3), (features, p4) = steps
    for path in inputs:
        volume = read_case(path)
        image = volume.canonical()
        mask = islands(threshold(image, **p1), **p2)
        labels = components(mask, **p3)
        table = features(image, labels, **p4)
        folder = out / case_name(path)
        folder.mkdir(parents=True)
        result = on_grid_of(labels, volume)
        write_nifti(result.with_array(result.array.astype("uint8")), folder / "labels.nii.gz")
        table.to_csv(folder / "features.csv", index=False)
    return 0.0


def framework(inputs, out: Path) -> float:
    for path in inputs:
        record = run_case(RECIPE, path, out)
        assert record["status"] == "done", record
    return 0.0


#: CPU seconds per way and round (in this process; for batches the sum of the workers' per-case CPU time)
CPU: dict[str, list[float]] = {}


def batch(workers: int):
    def run(inputs, out: Path) -> float:
        summary = run_batch(RECIPE, inputs, out, workers=workers)
        assert summary["done"] == len(inputs), summary
        CPU.setdefault(f"batch {workers}", []).append(sum(r["cpu_seconds"] for r in summary["results"]))
        return summary["startup_seconds"]

    return run


def _burn(count: int) -> float:
    """Pure-Python CPU work (no I/O, no numpy): what a worker process gets from the machine."""
    total = 0
    for i in range(count):
        total += i
    return float(total)


def control_speedup(count: int = 20_000_000) -> dict:
    """The speed-up the machine gives this session now: one burn vs two in parallel on 2 worker processes.

    A loaded machine (other sessions; Linux groups a session's processes into one scheduling autogroup) may
    give two processes little more CPU than one; this is the ceiling for the cohort's speed-up in the same run.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=40) as cluster:
        with Client(cluster) as client:
            client.submit(_burn, 1000).result()
            start = time.perf_counter()
            client.submit(_burn, count, pure=False).result()
            one = time.perf_counter() - start
            start = time.perf_counter()
            client.gather([client.submit(_burn, count, pure=False) for _ in range(2)])
            two = time.perf_counter() - start
    return {"one_burn_s": round(one, 3), "two_burns_s": round(two, 3), "speedup": round(2 * one / two, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slices", type=int, default=24, help="slices per DICOM case")
    parser.add_argument("--size", type=int, default=72, help="edge of the NIfTI crops (voxels)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        inputs = cohort(SHARED, work / "cohort", slices=args.slices, size=args.size)
        ways = {
            "direct": direct,
            "run_case": framework,
            "batch 1 worker": batch(1),
            "batch 2 workers": batch(2),
        }
        best: dict[str, float] = {}
        startup: dict[str, float] = {}
        loads: dict[str, tuple] = {}
        with threadpool_limits(limits=1):
            direct(inputs[:2], work / "warm")  # imports and caches
            for round_ in range(args.rounds):
                for name, way in ways.items():
                    out = work / f"out_{round_}_{name.replace(' ', '_')}"
                    start, cpu = time.perf_counter(), time.process_time()
                    started = way(inputs, out)
                    seconds = time.perf_counter() - start
                    if name in ("direct", "run_case"):
                        CPU.setdefault(name, []).append(time.process_time() - cpu)
                    load = tuple(round(x, 2) for x in os.getloadavg())
                    print(
                        f"round {round_ + 1} {name:16s} {seconds:7.2f} s (cluster start {started:.2f} s)  "
                        f"load {load}",
                        flush=True,
                    )
                    if seconds < best.get(name, float("inf")):
                        best[name], loads[name], startup[name] = seconds, load, started
                    shutil.rmtree(out)
        n = len(inputs)
        base = best["direct"]
        rows = {
            name: {
                "seconds": round(seconds, 3),
                "per_case_s": round(seconds / n, 4),
                "vs_direct": round(seconds / base, 3),
                "cluster_start_s": round(startup[name], 3),
                "load": loads[name],
            }
            for name, seconds in best.items()
        }
        control = control_speedup()
        cpu_best = {name: min(values) for name, values in CPU.items()}
        speedup = best["batch 1 worker"] / best["batch 2 workers"]
        one, two = (best[k] - startup[k] for k in ("batch 1 worker", "batch 2 workers"))
        result = {
            "cases": n,
            "recipe": RECIPE,
            "ways": rows,
            "speedup_2_vs_1_workers": round(speedup, 3),
            "speedup_2_vs_1_workers_after_start": round(one / two, 3),
            "overhead_batch_1_worker_after_start_pct": round(100 * (one / base - 1), 1),
            "overhead_run_case_pct": round(100 * (best["run_case"] / base - 1), 1),
            "overhead_batch_1_worker_pct": round(100 * (best["batch 1 worker"] / base - 1), 1),
            "cpu_count": os.cpu_count(),
            "control_two_processes": control,
            "cpu_seconds_best": {k: round(v, 3) for k, v in cpu_best.items()},
            "cpu_overhead_run_case_pct": round(100 * (cpu_best["run_case"] / cpu_best["direct"] - 1), 1),
            "cpu_overhead_batch_worker_cases_pct": round(
                100 * (cpu_best["batch 1"] / cpu_best["direct"] - 1), 1
            ),
            "control_load": tuple(round(x, 2) for x in os.getloadavg()),
        }
        print()
        print(f"{'way':18s} {'best s':>8s} {'start s':>8s} {'s/case':>8s} {'/ direct':>9s}  load average")
        for name, row in rows.items():
            print(
                f"{name:18s} {row['seconds']:8.2f} {row['cluster_start_s']:8.2f} {row['per_case_s']:8.3f} "
                f"{row['vs_direct']:9.3f}  {row['load']}"
            )
        print(f"speed-up 2 vs 1 workers: {speedup:.2f}x (after cluster start: {one / two:.2f}x)")
        print(
            f"control, same run: two pure-Python burns in parallel on 2 worker processes run "
            f"{control['speedup']:.2f}x faster than one after the other (the machine's ceiling now; "
            f"load {result['control_load']})"
        )
        print(
            f"CPU seconds (load-independent): direct {cpu_best['direct']:.2f}, run_case {cpu_best['run_case']:.2f} "
            f"({result['cpu_overhead_run_case_pct']:+.1f} %), 1 worker's cases {cpu_best['batch 1']:.2f} "
            f"({result['cpu_overhead_batch_worker_cases_pct']:+.1f} %), 2 workers' cases {cpu_best['batch 2']:.2f}"
        )
        print(
            f"overhead per case vs direct: run_case {result['overhead_run_case_pct']:+.1f} %, "
            f"batch 1 worker {result['overhead_batch_1_worker_pct']:+.1f} % with cluster start, "
            f"{result['overhead_batch_1_worker_after_start_pct']:+.1f} % after it"
        )
        (ROOT / "results").mkdir(exist_ok=True)
        (ROOT / "results" / "bench_batch.json").write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
