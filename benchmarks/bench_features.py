"""Feature tables: napari-medimg vs pyradiomics 3.0.1, same ROIs, same run, single thread; plus 1,000 objects.

For every ROI of ../shared/data/radiomics_reference (MNI152 spheres and whole-brain WM/GM in 3D, CT_small masks
with force2D) it prints our time (median of repeats, ``workers=1``; wall and this process's CPU time, which is
what a shared machine does not inflate), pyradiomics' wall and CPU time in this run
(``extractor.execute`` on preloaded SimpleITK images, median of repeats), the ratio, and our largest relative
deviation from the stored pyradiomics values per feature family (1e-6 absolute counts as equal).  Whole-brain
ROIs take pyradiomics minutes (O(n²) diameter search): ``--skip-slow-peer`` uses the timings recorded in
pyradiomics_timings.csv for those two instead, labelled ``recorded``.

IBSI mode (``--ibsi``, on by default): the IBSI 1 CT phantom (../shared/data/ibsi/ct_phantom) in
configurations A and B with our IBSI chain (:func:`napari_medimg.measure.ibsi.ibsi_features`, every family) and
pyradiomics with its closest settings (force2D, resegmentRange -500…400, binWidth 25 / binCount 32 with
resampledPixelSpacing 2 × 2 mm in-plane, sitkLinear), both timed in this run.

First, what the compiled (numba) feature kernels cost: their install size, numba's import time, and a fresh
process's first 3D + 2D tables with an empty kernel cache (compilation, once per install) and with the cache it
left (what every later run pays).

Last, 1,000 labelled objects in a 512 × 512 × 200 int16 volume, all feature groups: wall time and the peak RSS
of the run (pyradiomics is not run there: it takes one call per label over the whole image).
Results also go to benchmarks/results/bench_features.json.

    python benchmarks/bench_features.py [--skip-slow-peer] [--repeats N] [--no-many] [--no-ibsi]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from napari_medimg.io.nifti import read_nifti  # noqa: E402
from napari_medimg.measure import compute_features  # noqa: E402

ROOT = Path(__file__).resolve().parent
REFERENCE = (
    Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parents[1] / "shared" / "data")) / "radiomics_reference"
)
SLOW = ("mni_wm", "mni_gm")


def median_time(function, repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (the latter is robust to other jobs' load)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def deviations(row: pd.Series, expected: pd.Series) -> dict[str, float]:
    """Largest relative deviation per family over the features pyradiomics returned (0 when within 1e-6 abs)."""
    worst: dict[str, float] = {}
    for column, value in expected.items():
        if not str(column).startswith("original_") or pd.isna(value):
            continue
        name = column.removeprefix("original_")
        family = name.split("_")[0]
        difference = abs(float(row[name]) - float(value))
        relative = 0.0 if difference <= 1e-6 else difference / max(abs(float(value)), 1e-300)
        worst[family] = max(worst.get(family, 0.0), relative)
    return worst


def bench_reference(args) -> list[dict]:
    reference = pd.read_csv(REFERENCE / "pyradiomics_features.csv")
    recorded = pd.read_csv(REFERENCE / "pyradiomics_timings.csv").set_index("roi_name")
    try:
        import SimpleITK as sitk
        from radiomics import featureextractor

        logging.getLogger("radiomics").setLevel(logging.ERROR)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except ImportError:
        sitk = None
        print("pyradiomics is not installed (pip install -e '.[bench]'): peer timings are the recorded ones")
    cache: dict[str, object] = {}
    results = []
    header = (
        f"{'ROI':32s} {'voxels':>9s} {'ours s':>8s} {'(cpu s)':>8s} {'pyradiomics s':>14s} {'(cpu s)':>8s} "
        f"{'ratio':>7s} {'(cpu)':>7s}  max rel. deviation"
    )
    print(header)
    for _, expected in reference.iterrows():
        roi = expected["roi_name"]
        image = cache.setdefault(expected["image_file"], read_nifti(REFERENCE / expected["image_file"]))
        mask = read_nifti(REFERENCE / expected["mask_file"])
        labels, intensities = np.asarray(mask.array), np.asarray(image.array)
        table = compute_features(labels, intensities, mask.spacing, bin_width=25, workers=1)
        repeats = 1 if roi in SLOW else args.repeats
        ours, ours_cpu = median_time(
            lambda labels=labels, intensities=intensities, mask=mask: compute_features(
                labels, intensities, mask.spacing, bin_width=25, workers=1
            ),
            repeats,
        )
        if sitk is not None and not (args.skip_slow_peer and roi in SLOW):
            extractor = featureextractor.RadiomicsFeatureExtractor(str(REFERENCE / expected["params_file"]))
            sitk_image = sitk.ReadImage(str(REFERENCE / expected["image_file"]))
            sitk_mask = sitk.ReadImage(str(REFERENCE / expected["mask_file"]))
            if roi not in SLOW:
                extractor.execute(sitk_image, sitk_mask)  # warm-up; whole-brain ROIs run once (minutes)
            peer, peer_cpu = median_time(
                lambda extractor=extractor, sitk_image=sitk_image, sitk_mask=sitk_mask: extractor.execute(
                    sitk_image, sitk_mask
                ),
                repeats,
            )
            source = "measured"
        else:  # recorded on a quiet machine, single thread: wall ~ CPU time
            peer, source = float(recorded.loc[roi, "execute_median_s"]), "recorded"
            peer_cpu = peer
        worst = deviations(table.iloc[0], expected)
        worst_text = " ".join(f"{family}={value:.1e}" for family, value in worst.items())
        print(
            f"{roi:32s} {int(np.count_nonzero(labels)):9d} {ours:8.4f} {ours_cpu:8.4f} {peer:10.3f} {source[:3]} "
            f"{peer_cpu:8.3f} {peer / ours:6.1f}x {peer_cpu / ours_cpu:6.1f}x  {worst_text}"
        )
        results.append(
            {
                "roi": roi,
                "voxels": int(np.count_nonzero(labels)),
                "ours_s": ours,
                "ours_cpu_s": ours_cpu,
                "pyradiomics_s": peer,
                "pyradiomics_cpu_s": peer_cpu,
                "pyradiomics_source": source,
                "ratio": peer / ours,
                "ratio_cpu": peer_cpu / ours_cpu,
                "max_relative_deviation": worst,
            }
        )
    return results


IBSI = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parents[1] / "shared" / "data")) / "ibsi" / "ct_phantom"


def bench_ibsi(repeats: int) -> list[dict]:
    """IBSI configurations A and B on the CT phantom: ours vs pyradiomics' closest settings, same run."""
    from napari_medimg.measure.ibsi import IBSISettings, ibsi_features

    image = read_nifti(IBSI / "nifti/image/phantom.nii.gz")
    mask = read_nifti(IBSI / "nifti/mask/mask.nii.gz")
    configs = {
        "A": (
            IBSISettings(by_slice=True, reseg_range=(-500, 400), bin_width=25),
            {"binWidth": 25, "resegmentRange": [-500, 400], "force2D": True, "force2Ddimension": 0},
        ),
        "B": (
            IBSISettings(by_slice=True, resample_mm=2.0, reseg_range=(-500, 400), bin_count=32),
            {
                "binCount": 32,
                "resegmentRange": [-500, 400],
                "force2D": True,
                "force2Ddimension": 0,
                "resampledPixelSpacing": [2, 2, 0],
                "interpolator": "sitkLinear",
            },
        ),
    }
    try:
        import SimpleITK as sitk
        from radiomics import featureextractor
    except ImportError:
        sitk = None
    results = []
    print(f"IBSI CT phantom (load average {os.getloadavg()[0]:.1f}):")
    for name, (settings, peer_settings) in configs.items():
        row = ibsi_features(image, mask, settings=settings)
        ours, ours_cpu = median_time(
            lambda settings=settings: ibsi_features(image, mask, settings=settings), repeats
        )
        entry = {"config": name, "features": len(row), "ours_s": ours, "ours_cpu_s": ours_cpu}
        if sitk is not None:
            extractor = featureextractor.RadiomicsFeatureExtractor(**peer_settings)
            extractor.disableAllFeatures()  # shape2D refuses multi-slice masks: 3D shape, as IBSI morphology
            for feature_class in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"):
                extractor.enableFeatureClassByName(feature_class)
            sitk_image = sitk.ReadImage(str(IBSI / "nifti/image/phantom.nii.gz"))
            sitk_mask = sitk.ReadImage(str(IBSI / "nifti/mask/mask.nii.gz"))
            result = extractor.execute(sitk_image, sitk_mask)
            peer, peer_cpu = median_time(
                lambda e=extractor, i=sitk_image, m=sitk_mask: e.execute(i, m), repeats
            )
            count = sum(1 for key in result if str(key).startswith("original_"))
            entry.update(
                {"pyradiomics_features": count, "pyradiomics_s": peer, "pyradiomics_cpu_s": peer_cpu}
            )
            print(
                f"  config {name}: ours {ours:.2f} s ({ours_cpu:.2f} s CPU, {len(row)} IBSI tags) | pyradiomics "
                f"{peer:.2f} s ({peer_cpu:.2f} s CPU, {count} features) | ratio {peer / ours:.1f}x "
                f"(CPU {peer_cpu / ours_cpu:.1f}x)"
            )
        else:
            print(f"  config {name}: ours {ours:.2f} s ({ours_cpu:.2f} s CPU); pyradiomics not installed")
        results.append(entry)
    return results


def many_objects(count: int = 1000, shape=(200, 512, 512), seed: int = 0):
    """``count`` non-overlapping ellipsoids (radii 2–7 voxels) in an int16 CT-like volume."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int16)
    image = np.empty(shape, np.int16)
    for z in range(shape[0]):  # slice by slice: no float64 copy of the whole volume
        image[z] = rng.normal(40, 25, shape[1:])
    placed = 0
    while placed < count:
        radii = rng.uniform(2, 7, 3)
        centre = [rng.integers(8, s - 8) for s in shape]
        box = tuple(slice(c - 8, c + 9) for c in centre)
        grid = np.indices((17, 17, 17)) - 8
        inside = np.sum((grid / radii[:, None, None, None]) ** 2, axis=0) <= 1
        if np.any(labels[box][inside]):
            continue
        placed += 1
        labels[box][inside] = placed
        image[box][inside] += np.int16(rng.integers(-50, 150))
    return labels, image


def _memory_mib(field: str) -> float:
    """VmRSS / VmHWM (peak) of this process from /proc, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_many(workers: int | None) -> dict:
    labels, image = many_objects()
    with contextlib.suppress(OSError):  # reset the peak-RSS mark (Linux): the peak below is the feature run's
        Path("/proc/self/clear_refs").write_text("5")
    before = _memory_mib("VmRSS")
    start = time.perf_counter()
    table = compute_features(labels, {"CT": image}, (1.0, 0.7, 0.7), bin_width=25, workers=workers)
    elapsed = time.perf_counter() - start
    peak = _memory_mib("VmHWM")
    data = (labels.nbytes + image.nbytes) / 2**20
    print(
        f"1,000 objects in 512x512x200 ({len(table)} rows x {table.shape[1] - 1} features, "
        f"workers={workers or 'default'}): {elapsed:.1f} s, {elapsed / len(table) * 1000:.1f} ms/object; "
        f"peak RSS during the run {peak:.0f} MiB (resident before it {before:.0f} MiB, of which labels + image "
        f"{data:.0f} MiB)"
    )
    return {
        "objects": len(table),
        "features": table.shape[1] - 1,
        "workers": workers,
        "seconds": elapsed,
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "input_mib": data,
    }


_FIRST_TABLE = """
import time
start = time.perf_counter()
import numpy as np
from napari_medimg.measure import compute_features
imported = time.perf_counter()
labels = np.zeros((12, 12, 12), np.uint8)
labels[3:9, 2:10, 4:8] = 1
image = np.arange(labels.size, dtype=np.float64).reshape(labels.shape) % 97
compute_features(labels, image, (1.0, 1.0, 1.0), workers=1)
compute_features(labels[5], image[5], (1.0, 1.0), workers=1)
print(imported - start, time.perf_counter() - imported)
"""


def kernel_costs() -> dict:
    """What the compiled (numba) kernels cost: install size, first-run compilation, later runs' cache load.

    Each figure is a fresh process computing a 3D and a 2D feature table: once with an empty kernel cache
    (compilation), then again with the cache it left (what every later CLI run pays), timed from the imports.
    """
    import subprocess
    import sys
    import tempfile

    import llvmlite
    import numba

    def size_mib(module) -> float:
        folder = Path(module.__file__).parent
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20

    installed = size_mib(numba) + size_mib(llvmlite)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [
            [float(t) for t in subprocess.run([sys.executable, "-c", _FIRST_TABLE], env=env, capture_output=True,
                                              text=True, check=True).stdout.split()[-2:]]
            for _ in range(2)
        ]  # fmt: skip
        numba_import = (
            subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import numba"],
                env=env,
                capture_output=True,
                text=True,
            )
            .stderr.strip()
            .splitlines()[-1]
        )
    numba_import_s = int(numba_import.split("|")[1]) / 1e6
    print(
        f"compiled kernels: numba {numba.__version__} + llvmlite {llvmlite.__version__} installed "
        f"{installed:.0f} MiB; import numba {numba_import_s:.2f} s; a new process's first 3D + 2D tables: "
        f"{runs[0][1]:.1f} s with an empty kernel cache (compilation, once per install and user), "
        f"{runs[1][1]:.2f} s once cached (every later run; importing napari_medimg.measure {runs[1][0]:.2f} s)"
    )
    return {
        "install_mib": installed,
        "numba_import_s": numba_import_s,
        "first_tables_empty_cache_s": runs[0][1],
        "first_tables_cached_s": runs[1][1],
        "import_measure_s": runs[1][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-slow-peer",
        action="store_true",
        help="use pyradiomics' recorded timings for the whole-brain ROIs instead of running it",
    )
    parser.add_argument("--repeats", type=int, default=7, help="repeats for small ROIs (median)")
    parser.add_argument("--no-many", action="store_true", help="skip the 1,000-object volume")
    parser.add_argument("--workers", type=int, default=None, help="threads for the 1,000-object run")
    parser.add_argument("--no-ibsi", action="store_true", help="skip the IBSI CT-phantom timing")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (CPU times are robust to it, wall times are not)")
    summary = {"kernels": kernel_costs(), "reference": bench_reference(args)}
    if not args.no_ibsi:
        summary["ibsi"] = bench_ibsi(max(1, min(args.repeats, 3)))
    if not args.no_many:
        summary["many_objects"] = bench_many(args.workers)
    out = ROOT / "results" / "bench_features.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
