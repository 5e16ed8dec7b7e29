"""4D and compressed DICOM: napari-medimg vs dcm2niix in the same run, and the header parser vs pydicom.

Run: ``python benchmarks/bench_dicom_4d.py`` (needs the ``bench`` extra for dcm2niix).  Writes to a temporary
folder

* a synthetic Siemens mosaic fMRI, 64 x 64 x 36 x 200 (200 classic MOSAIC files, each a copy of the first file
  of ``../shared/data/dicom/siemens_mosaic_fmri_hf_oblique`` with its CSA header, new UIDs, instance numbers,
  acquisition times and pixel noise), and
* a synthetic 512 x 512 x 300 CT compressed as JPEG 2000 (lossless, pylibjpeg-openjpeg encoder),

then converts each to an uncompressed NIfTI with ``medimg convert`` (called in this process, as the library
call; and as a new ``medimg`` process, start-up and imports included) and with ``dcm2niix -z n -b n`` (and
``-b y``, which also writes the JSON sidecar ours always writes) (best of ``--repeat``, warm cache) and prints
the wall and CPU times and their ratios, the median wall ratio over ``4 * --repeat`` interleaved pairs of runs
(a pair shares its moment: the machine's drift between blocks of runs does not bias it): each program writing
a new output on a settled disk (the previous output deleted and ``os.sync`` before every run, untimed: back to
back, whoever runs after dcm2niix waits for the disk to write dcm2niix's output), the same against dcm2niix
followed by an fsync of its output (ours is durable before it is renamed into place; dcm2niix's output is
still in the page cache when it returns), ``--overwrite`` back to back (ours then also frees its previous
output), and the eager read into memory (values rescaled, what
``bench_dicom.py`` compares with dcm2niix), the time to the first
slice of the lazy read
(headers + one slice, what napari waits for), and the header pass with the byte-level parser
(``io/_fastheader.py``) against ``pydicom.dcmread(specific_tags=..., stop_before_pixels=True)``.  A third part
(``--only lossless``) times the decoding of one JPEG Lossless frame through pydicom with gdcm and with ours
(libjpeg-turbo in imagecodecs).  The machine's load average is printed with the figures.
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

from napari_medimg.cli import main as medimg
from napari_medimg.geometry import Volume
from napari_medimg.io._fastheader import _WANTED, parse_header
from napari_medimg.io.dicom import read_series, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dicom import best as _best  # noqa: E402
from bench_dicom import dcm2niix, dcm2niix_into  # noqa: E402  (dcm2niix -z n -b n -f out -o OUT IN)

SHARED = Path(os.environ.get("MEDIMG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MOSAIC = SHARED / "dicom" / "siemens_mosaic_fmri_hf_oblique" / "dicom"


def synthetic_mosaic(folder: Path, volumes: int) -> Path:
    """``volumes`` MOSAIC files of 6 x 6 tiles of 64 x 64 (36 slices) from one real Siemens file."""
    folder.mkdir(parents=True)
    template = pydicom.dcmread(sorted(MOSAIC.iterdir())[0])
    rng = np.random.default_rng(0)
    base = template.pixel_array.astype(np.int32)
    series_uid = pydicom.uid.generate_uid()
    for index in range(volumes):
        dataset = template.copy()
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        dataset.InstanceNumber = index + 1
        seconds = 9 * 3600 + 3 * 60 + 3.2 * index
        dataset.AcquisitionTime = (
            f"{int(seconds // 3600):02d}{int(seconds % 3600 // 60):02d}{seconds % 60:09.6f}"
        )
        noise = rng.integers(0, 8, base.shape)
        dataset.PixelData = np.clip(base + noise * (base > 0), 0, 4095).astype(np.uint16).tobytes()
        dataset.save_as(folder / f"IM-{index + 1:04d}.dcm")
    return folder


def _encode(args) -> None:
    path, out = args
    dataset = pydicom.dcmread(path)
    dataset.compress(pydicom.uid.JPEG2000Lossless, encoding_plugin="pylibjpeg")
    dataset.save_as(out)


def synthetic_j2k_ct(folder: Path, slices: int) -> Path:
    """A 512 x 512 x ``slices`` CT (uint16 + RescaleIntercept -1024) compressed as JPEG 2000 lossless."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:slices, :512, :512]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 < 1
    hu = np.where(body, 40, -1000).astype(np.int16) + (z % 7).astype(np.int16)
    hu = np.broadcast_to(hu, (slices, 512, 512)).copy()
    hu += rng.integers(-20, 20, size=(512, 512), dtype=np.int16)[None]
    plain = folder.with_name(folder.name + "_plain")
    write_dicom_series(
        Volume(hu, (1.0, 0.7, 0.7), (-179.0, -179.0, -300.0), metadata={"modality": "CT"}), plain
    )
    for path in sorted(plain.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        dataset.PixelData = (dataset.pixel_array.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        dataset.PixelRepresentation, dataset.BitsStored, dataset.HighBit = 0, 12, 11
        dataset.RescaleIntercept = "-1024"
        dataset.save_as(path)
    folder.mkdir()
    for path in sorted(plain.glob("*.dcm")):  # one at a time: the encoder is not thread-safe
        _encode((path, folder / path.name))
    shutil.rmtree(plain)
    return folder


def best(function, repeat: int) -> float:
    return _best(function, repeat)[0]


def ours(folder: Path, out: Path, overwrite: bool = True) -> None:
    if medimg(["convert", str(folder), str(out)] + ["--overwrite"] * overwrite) != 0:
        raise RuntimeError("medimg convert failed")


def ours_process(folder: Path, out: Path) -> None:
    """``medimg convert`` as a new process, as a user runs it (Python start-up and imports included)."""
    binary = shutil.which("medimg") or str(Path(sys.executable).with_name("medimg"))
    subprocess.run([binary, "convert", str(folder), str(out), "--overwrite"], check=True, capture_output=True)


_PEAK = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(usage.ru_maxrss if status == 0 else -1)\n"
)


def peak_memory_mb(command: list[str]) -> float:
    """Peak resident memory (MB) of ``command`` run as a new process.  It is started by a small Python
    process: a child of this one would count this process's pages (shared with it until its ``exec``)."""
    result = subprocess.run([sys.executable, "-c", _PEAK, *command], capture_output=True, text=True)
    kilobytes = int(result.stdout.strip().splitlines()[-1])
    if kilobytes < 0:
        raise RuntimeError(f"{command[0]} failed")
    return kilobytes / 1024


def dcm2niix_with_json(folder: Path, out: Path) -> None:
    """dcm2niix with its BIDS JSON sidecar (``-b y``), the output ``medimg convert`` always writes."""
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    binary = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    subprocess.run(
        [binary, "-z", "n", "-b", "y", "-f", "out", "-o", str(out), str(folder)],
        check=True,
        capture_output=True,
    )


def eager_read(folder: Path) -> np.ndarray:
    """The whole series read into memory, values rescaled (HU for CT): what napari and the analysis commands
    load, and what ``bench_dicom.py`` compares with dcm2niix (the issue's "0.54x on uncompressed CT")."""
    (series,) = scan_dicom(folder).series
    return read_series(series, lazy=False).array


def first_slice(folder: Path) -> np.ndarray:
    (series,) = scan_dicom(folder).series
    volume = read_series(series, lazy=True)
    return np.asarray(volume.array[(0,) * (volume.ndim - 2)])


def compare(label: str, folder: Path, expected_shape: tuple, repeat: int, scratch: Path) -> None:
    import nibabel as nib

    for path in folder.iterdir():  # warm the page cache
        path.read_bytes()
    ours_out = scratch / "ours.nii"
    ours(folder, ours_out)
    dcm2niix(folder, scratch / "d2n")
    ours_shape = nib.load(ours_out).shape
    theirs = sorted((scratch / "d2n").glob("*.nii"))
    theirs_shape = nib.load(theirs[0]).shape if theirs else None
    t_ours = best(lambda: ours(folder, ours_out), repeat)
    t_theirs = best(lambda: dcm2niix(folder, scratch / "d2n"), repeat)
    t_first = best(lambda: first_slice(folder), repeat)
    t_read = best(lambda: eager_read(folder), repeat)
    cpu_read = min(cpu_seconds(lambda: eager_read(folder)) for _ in range(repeat))
    t_process = best(lambda: ours_process(folder, ours_out), repeat)
    t_json = best(lambda: dcm2niix_with_json(folder, scratch / "d2n"), repeat)
    cpu_ours, cpu_theirs = (
        min(cpu_seconds(lambda: ours(folder, ours_out)) for _ in range(repeat)),
        min(cpu_seconds(lambda: dcm2niix(folder, scratch / "d2n")) for _ in range(repeat)),
    )
    cpu_process = min(cpu_seconds(lambda: ours_process(folder, ours_out)) for _ in range(repeat))
    cpu_json = min(cpu_seconds(lambda: dcm2niix_with_json(folder, scratch / "d2n")) for _ in range(repeat))
    print(f"\n== {label} (best of {repeat}, warm cache, load average {os.getloadavg()[0]:.1f})")
    print(f"  {'':44s} {'wall s':>8s} {'CPU s':>8s}")
    print(
        f"  napari-medimg convert (.nii), in process       {t_ours:8.3f} {cpu_ours:8.3f}  shape {ours_shape}"
    )
    print(
        f"  dcm2niix -z n -b n                             {t_theirs:8.3f} {cpu_theirs:8.3f}  shape {theirs_shape}"
    )
    print(
        f"  ratio ours / dcm2niix                          {t_ours / t_theirs:8.2f} {cpu_ours / cpu_theirs:8.2f}"
    )
    print(f"  `medimg convert` as a new process              {t_process:8.3f} {cpu_process:8.3f}")
    print(f"  dcm2niix -z n -b y (with its JSON, like ours)  {t_json:8.3f} {cpu_json:8.3f}")
    print(
        f"  ratio process / dcm2niix -b n                  {t_process / t_theirs:8.2f} {cpu_process / cpu_theirs:8.2f}"
    )
    print(
        f"  ratio in process / dcm2niix -b y               {t_ours / t_json:8.2f} {cpu_ours / cpu_json:8.2f}"
    )
    print(f"  lazy first slice (headers + 1 slice)           {t_first:8.3f}")
    print(f"  eager read into memory (values rescaled)       {t_read:8.3f} {cpu_read:8.3f}")
    print(
        f"  ratio eager read / dcm2niix -b n               {t_read / t_theirs:8.2f} {cpu_read / cpu_theirs:8.2f}"
    )
    print(
        f"  interleaved pairs ({4 * repeat} each), median wall ratio (quartiles; share of pairs ours wins):"
    )
    fresh_out, fresh_peer = scratch / "fresh" / "ours.nii", scratch / "fresh-d2n"
    rows = (
        (
            "convert / dcm2niix, new output, disk settled",
            Timed(lambda: ours(folder, fresh_out, overwrite=False), lambda: settle(fresh_out.parent)),
            Timed(lambda: dcm2niix_into(folder, fresh_peer), lambda: settle(fresh_peer)),
        ),
        (
            "the same, dcm2niix + fsync of its output",
            Timed(lambda: ours(folder, fresh_out, overwrite=False), lambda: settle(fresh_out.parent)),
            Timed(lambda: dcm2niix_synced(folder, fresh_peer), lambda: settle(fresh_peer)),
        ),
        (
            "convert --overwrite / dcm2niix, back to back",
            Timed(lambda: ours(folder, ours_out)),
            Timed(lambda: dcm2niix(folder, scratch / "d2n")),
        ),
        (
            "eager read / dcm2niix, back to back",
            Timed(lambda: eager_read(folder)),
            Timed(lambda: dcm2niix(folder, scratch / "d2n")),
        ),
    )
    for name, mine, peer in rows:
        ratios = paired_ratios(mine, peer, 4 * repeat)
        quartiles = np.percentile(ratios, [25, 50, 75])
        print(
            f"    {name:44s} {quartiles[1]:5.2f} ({quartiles[0]:.2f}-{quartiles[2]:.2f}; {np.mean(ratios < 1):.0%})"
        )
    binary = shutil.which("medimg") or str(Path(sys.executable).with_name("medimg"))
    converter = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    ours_mb = peak_memory_mb([binary, "convert", str(folder), str(ours_out), "--overwrite"])
    (scratch / "d2n").mkdir(exist_ok=True)
    for old in (scratch / "d2n").iterdir():
        old.unlink()
    theirs_mb = peak_memory_mb(
        [converter, "-z", "n", "-b", "n", "-f", "out", "-o", str(scratch / "d2n"), str(folder)]
    )
    print(
        f"  peak memory, new process (MB): ours {ours_mb:.0f}, dcm2niix {theirs_mb:.0f}, output {ours_out.stat().st_size / 1e6:.0f}"
    )
    assert tuple(ours_shape) == expected_shape, ours_shape


def dcm2niix_synced(folder: Path, out: Path) -> None:
    """dcm2niix, then its output made durable as ours is (fsync of the file and its folder): dcm2niix leaves
    the 59 MB in the page cache, where the kernel writes them out later."""
    for path in [*dcm2niix_into(folder, out), out]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def settle(folder: Path) -> None:
    """Before a timed run: an empty output folder (the previous output deleted, not timed) and no pending disk
    writes (``os.sync``).  Back to back, a run that follows dcm2niix waits for the disk to write dcm2niix's
    59 MB, which dcm2niix itself never waits for, and ``--overwrite`` pays for freeing the previous output."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    os.sync()


class Timed:
    """A function to time and an untimed preparation run before each call."""

    def __init__(self, function, prepare=None):
        self.function, self.prepare = function, prepare

    def __call__(self) -> float:
        if self.prepare is not None:
            self.prepare()
        start = time.perf_counter()
        self.function()
        return time.perf_counter() - start


def paired_ratios(first: Timed, second: Timed, pairs: int) -> np.ndarray:
    """Wall-time ratios ``first / second`` of ``pairs`` runs of each, interleaved (which runs first
    alternates): on a machine whose speed drifts, a pair shares its moment, blocks of runs do not."""
    ratios = []
    for index in range(pairs):
        if index % 2 == 0:
            mine, peer = first(), second()
        else:
            peer, mine = second(), first()
        ratios.append(mine / peer)
    return np.asarray(ratios)


def cpu_seconds(function) -> float:
    """User + system CPU seconds of ``function`` in this process and the children it waited for (dcm2niix)."""
    import resource

    def used():
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    start = used()
    function()
    return used() - start


def header_pass(label: str, folder: Path, repeat: int) -> None:
    from napari_medimg.io.dicom.header import frames_of_file

    files = sorted(folder.glob("*.dcm"))
    tags = [tag for tag, (keyword, _) in _WANTED.items() if not keyword.startswith("_")]

    def fast():
        for path in files:
            with open(path, "rb") as handle:
                parse_header(handle, path.stat().st_size)

    def specific():
        for path in files:
            pydicom.dcmread(path, specific_tags=tags, stop_before_pixels=True)

    t_fast, t_specific = best(fast, repeat), best(specific, repeat)
    t_records_fast = best(lambda: [frames_of_file(p, fast=True) for p in files], repeat)
    t_records_slow = best(lambda: [frames_of_file(p, fast=False) for p in files], repeat)
    print(f"\n== header pass, {label}: {len(files)} files (load average {os.getloadavg()[0]:.1f})")
    print(f"  _fastheader.parse_header                       {t_fast:7.3f} s")
    print(
        f"  pydicom.dcmread(specific_tags, stop_before)    {t_specific:7.3f} s  ratio {t_specific / t_fast:5.1f}x"
    )
    print(f"  frame records, fast parser                     {t_records_fast:7.3f} s")
    print(
        f"  frame records, pydicom                         {t_records_slow:7.3f} s  ratio {t_records_slow / t_records_fast:5.1f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument(
        "--only", choices=("mosaic", "j2k", "lossless"), default=None, help="run one of the three parts"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        if args.only in (None, "mosaic"):
            run_mosaic(args, temporary)
        if args.only in (None, "j2k"):
            run_j2k(args, temporary)
        if args.only in (None, "lossless"):
            run_lossless_decoders(args.repeat)
    return 0


def run_mosaic(args, temporary: Path) -> None:
    """The mosaic fMRI part of the benchmark."""
    start = time.perf_counter()
    mosaic = synthetic_mosaic(temporary / "fmri", args.volumes)
    print(f"wrote the synthetic mosaic fMRI in {time.perf_counter() - start:.1f} s")
    compare(
        f"mosaic fMRI 64x64x36x{args.volumes}", mosaic, (64, 64, 36, args.volumes), args.repeat, temporary
    )
    header_pass(f"mosaic fMRI ({args.volumes} MOSAIC files)", mosaic, args.repeat)


def run_j2k(args, temporary: Path) -> None:
    """The JPEG 2000 CT part of the benchmark."""
    start = time.perf_counter()
    ct = synthetic_j2k_ct(temporary / "j2k", args.slices)
    print(f"\nwrote the JPEG 2000 CT in {time.perf_counter() - start:.1f} s")
    compare(f"JPEG 2000 CT 512x512x{args.slices}", ct, (512, 512, args.slices), args.repeat, temporary)


def run_lossless_decoders(repeat: int) -> None:
    """JPEG Lossless: one 512 x 512 12-bit CT-like frame (libjpeg-turbo's encoder, first-order prediction as
    in JPEG Lossless SV1) decoded by pydicom with gdcm (pydicom's first choice) and with libjpeg-turbo (ours,
    ``io/dicom/imagecodecs_decoders.py``), interleaved, median of ``20 * repeat`` decodes each."""
    import imagecodecs
    from pydicom.dataset import Dataset, FileMetaDataset

    from napari_medimg.io.dicom import imagecodecs_decoders

    rng = np.random.default_rng(0)
    y, x = np.ogrid[:512, :512]
    plane = 1024 + 400 * np.sin(x / 20.0) * np.cos(y / 30.0) + rng.normal(0, 20, (512, 512))
    values = np.clip(plane, 0, 4095).astype(np.uint16)
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLosslessSV1
    dataset.Rows = dataset.Columns = 512
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    encoded = imagecodecs.jpeg8_encode(values, lossless=True, predictor=1, bitspersample=12)
    dataset.PixelData = pydicom.encaps.encapsulate([encoded])
    dataset["PixelData"].VR = "OB"
    imagecodecs_decoders.register()
    times: dict = {"gdcm": [], imagecodecs_decoders.PLUGIN: []}
    for _ in range(20 * repeat):
        for plugin, runs in times.items():
            start = time.perf_counter()
            decoded = pydicom.pixels.pixel_array(dataset, decoding_plugin=plugin)
            runs.append(time.perf_counter() - start)
            assert np.array_equal(decoded, values), plugin
    gdcm, ours = (float(np.median(times[p])) for p in ("gdcm", imagecodecs_decoders.PLUGIN))
    print(
        f"\n== JPEG Lossless SV1, 512 x 512 x 12 bits ({len(encoded) / 1e3:.0f} kB), load average "
        f"{os.getloadavg()[0]:.1f}: median decode gdcm {gdcm * 1e3:.2f} ms, libjpeg-turbo {ours * 1e3:.2f} ms, "
        f"ratio ours / gdcm {ours / gdcm:.2f}; both equal the values encoded"
    )


if __name__ == "__main__":
    sys.exit(main())
