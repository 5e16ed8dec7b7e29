"""DICOM series reading: napari-medimg vs SimpleITK ImageSeriesReader vs dcm2niix (and a naive pydicom loop).

Run: ``python benchmarks/bench_dicom.py`` (needs the ``bench`` extra: SimpleITK, dcm2niix).  Writes a synthetic
512 x 512 x 300 CT series (int16 stored, RescaleIntercept -1024, ~158 MB) to a temporary folder, then reads it
and the real series under ../shared/data/dicom with each tool, warm cache, best of ``--repeat`` runs.  Prints
times, MB/s of pixel data and ratios to ours.  Also prints what each tool makes of the gantry-tilt CT.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom, read_series, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series

SHARED = Path(os.environ.get("MEDIMG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def synthetic_ct(folder: Path, shape=(300, 512, 512)) -> Path:
    """A CT-like series stored as uint16 + RescaleIntercept -1024, like a scanner writes it."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 < 1
    hu = np.where(body, 40, -1000).astype(np.int16) + (z % 7).astype(np.int16)
    hu = np.broadcast_to(hu, shape).copy()
    hu += rng.integers(-20, 20, size=shape[1:], dtype=np.int16)[None]
    volume = Volume(hu, (1.0, 0.7, 0.7), (-179.0, -179.0, -300.0), metadata={"modality": "CT"})
    write_dicom_series(volume, folder, series_description="synthetic CT 512x512x300")
    for path in sorted(folder.glob("*.dcm")):  # store as unsigned + intercept (the common scanner encoding)
        dataset = pydicom.dcmread(path)
        values = dataset.pixel_array.astype(np.int32) + 1024
        dataset.PixelRepresentation, dataset.BitsStored, dataset.HighBit = 0, 12, 11
        dataset.RescaleIntercept = "-1024"
        dataset.PixelData = values.astype(np.uint16).tobytes()
        dataset.save_as(path)
    return folder


def best(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def plain_read(folder: Path) -> int:
    return sum(len(p.read_bytes()) for p in folder.rglob("*") if p.is_file())


def ours(folder: Path):
    return read_dicom(folder, lazy=False)[0]


def ours_first_slice(folder: Path):
    (series,) = scan_dicom(folder).series[:1]
    volume = read_series(series, lazy=True)
    return np.asarray(volume.array[volume.shape[0] // 2])


def naive_pydicom(folder: Path):
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    normal = np.cross(*np.reshape([float(v) for v in datasets[0].ImageOrientationPatient], (2, 3)))
    datasets.sort(key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])


def simpleitk(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def dcm2niix(folder: Path, out: Path):
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    return dcm2niix_into(folder, out)


def dcm2niix_into(folder: Path, out: Path) -> list[Path]:
    """``dcm2niix -z n -b n -f out -o OUT IN`` into an existing (empty) folder; the ``.nii`` files it wrote."""
    binary = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    subprocess.run(
        [binary, "-z", "n", "-b", "n", "-f", "out", "-o", str(out), str(folder)],
        check=True,
        capture_output=True,
    )
    return sorted(out.glob("*.nii"))


def compare(label: str, folder: Path, repeat: int, scratch: Path) -> None:
    pixel_mb = sum(np.prod(s.shape) * 2 for s in scan_dicom(folder).series) / 1e6
    rows = [("plain file read (all bytes)", lambda: plain_read(folder))]
    rows.append(("napari-medimg, eager, HU applied", lambda: ours(folder)))
    rows.append(("napari-medimg, lazy: headers + middle slice", lambda: ours_first_slice(folder)))
    rows.append(("naive pydicom loop", lambda: naive_pydicom(folder)))
    rows.append(("SimpleITK ImageSeriesReader", lambda: simpleitk(folder)))
    rows.append(("dcm2niix (writes .nii, no gzip)", lambda: dcm2niix(folder, scratch)))
    plain_read(folder)  # warm the page cache
    results = {}
    for name, function in rows:
        try:
            results[name] = best(function, repeat)[0]
        except Exception as error:  # noqa: BLE001 (a peer that cannot read the series is reported, not fatal)
            results[name] = None
            print(f"  {name}: failed ({type(error).__name__}: {error})")
    reference = results["napari-medimg, eager, HU applied"]
    print(f"\n== {label}: {pixel_mb:.1f} MB of pixels (best of {repeat}, warm cache)")
    print(f"  {'reader':46s} {'time s':>8s} {'MB/s':>8s} {'time / ours':>12s}")
    for name, seconds in results.items():
        if seconds is None:
            continue
        print(f"  {name:46s} {seconds:8.3f} {pixel_mb / seconds:8.0f} {seconds / reference:12.2f}")


def gantry_tilt_report(folder: Path, scratch: Path) -> None:
    import SimpleITK as sitk

    print("\n== gantry tilt CT (siemens_ct_gantry_tilt): what each reader makes of the sheared stack")
    (volume,) = read_dicom(folder)
    direction = volume.direction
    print(
        f"  napari-medimg: tilt {volume.metadata['gantry_tilt_degrees']:.2f} deg detected, resampled; "
        f"spacing {np.round(volume.spacing, 4).tolist()}, axes orthogonal: "
        f"{np.allclose(direction.T @ direction, np.eye(3), atol=1e-9)}"
    )
    image = simpleitk(folder)
    sitk_direction = np.reshape(image.GetDirection(), (3, 3))
    print(
        f"  SimpleITK: spacing {np.round(image.GetSpacing(), 4).tolist()} (x, y, z), slice axis "
        f"{np.round(sitk_direction[:, 2], 4).tolist()}: no warning, shear dropped "
        f"(slices placed along the normal, {image.GetSpacing()[2]:.3f} mm apart)"
    )
    del sitk
    outputs = dcm2niix(folder, scratch)
    print(f"  dcm2niix: wrote {[p.name for p in outputs]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        start = time.perf_counter()
        folder = synthetic_ct(temporary / "ct", shape=(args.slices, 512, 512))
        print(f"wrote the synthetic series in {time.perf_counter() - start:.1f} s")
        compare(f"synthetic CT 512x512x{args.slices}", folder, args.repeat, temporary / "d2n")
        for name in ("siemens_xa30_t1w_sag_classic", "siemens_ct_gantry_tilt"):
            real = SHARED / "dicom" / name / "dicom"
            if real.is_dir():
                compare(name, real, args.repeat, temporary / "d2n")
        tilt = SHARED / "dicom" / "siemens_ct_gantry_tilt" / "dicom"
        if tilt.is_dir():
            gantry_tilt_report(tilt, temporary / "d2n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
