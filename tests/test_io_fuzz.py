"""Fuzz: real DICOM files mutated many ways either read or raise our MedImgReadError (no other error, no hang).

``benchmarks/fuzz_dicom.py --cases 10000`` runs the same cases at scale.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from napari_medimg.io.dicom import read_dicom
from napari_medimg.io.errors import MedImgReadError

#: small real files (uncompressed classic CT/MR and an enhanced MR) used as seeds
SEEDS = (
    "pydicom_samples/CT_small.dcm",
    "pydicom_samples/MR_small.dcm",
    "pydicom_samples/emri_small.dcm",
    "siemens_xa30_t1w_sag_classic/dicom/5001001_1.3.12.2.1107.5.2.43.67093.30000023011319484937100000298.dcm",
)
CASE_SECONDS = 5.0


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of a file's bytes, biased towards the header where parsing happens."""
    buffer = bytearray(data)
    header_end = min(len(buffer), 2048)
    kind = int(rng.integers(0, 7))
    if kind == 0:  # truncate anywhere
        return bytes(buffer[: int(rng.integers(0, len(buffer)))])
    if kind == 1:  # flip a few random bytes in the header
        for _ in range(int(rng.integers(1, 8))):
            buffer[int(rng.integers(0, header_end))] = int(rng.integers(0, 256))
        return bytes(buffer)
    if kind == 2:  # a length field set to something huge or odd
        at = int(rng.integers(132, max(header_end - 4, 133)))
        buffer[at : at + 4] = rng.choice(
            [b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x01\x00\x00\x00", b"\xff\xff\x00\x00"]
        )
        return bytes(buffer)
    if kind == 3:  # insert random bytes
        at = int(rng.integers(0, header_end))
        return bytes(buffer[:at]) + rng.bytes(int(rng.integers(1, 64))) + bytes(buffer[at:])
    if kind == 4:  # delete a range
        at = int(rng.integers(0, header_end))
        return bytes(buffer[:at] + buffer[at + int(rng.integers(1, 64)) :])
    if kind == 5:  # zero a range
        at = int(rng.integers(0, len(buffer)))
        size = int(rng.integers(1, 256))
        buffer[at : at + size] = bytes(len(buffer[at : at + size]))
        return bytes(buffer)
    # replace a whole random stretch of the body with noise
    at = int(rng.integers(0, len(buffer)))
    size = int(rng.integers(1, 4096))
    buffer[at : at + size] = rng.bytes(len(buffer[at : at + size]))
    return bytes(buffer)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_cases(seed_files: list[Path], cases: int, folder: Path, seed: int = 0, read=None) -> dict:
    """Run ``cases`` mutations through ``read`` (default: ``read_dicom(path, lazy=False)``); returns counts of
    outcomes. Raises AssertionError on a foreign error or a hang."""
    read = read or (lambda path: read_dicom(path, lazy=False))
    rng = np.random.default_rng(seed)
    originals = [path.read_bytes() for path in seed_files]
    outcomes: Counter = Counter()
    slowest = 0.0
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(cases):
            source = int(rng.integers(0, len(originals)))
            data = mutate(originals[source], rng)
            path = folder / f"case{case % 8}.dcm"
            path.write_bytes(data)
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
            try:
                volumes = read(path)
                assert all(np.asarray(v.array).size > 0 for v in volumes)
                outcomes["read"] += 1
            except MedImgReadError as error:
                outcomes[type(error).__name__] += 1
            except _Hang:
                raise AssertionError(
                    f"case {case} (seed file {seed_files[source].name}) ran over {CASE_SECONDS} s"
                ) from None
            except Exception as error:
                raise AssertionError(
                    f"case {case} (seed file {seed_files[source].name}) raised "
                    f"{type(error).__name__}: {error}"
                ) from error
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - start)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return {"outcomes": dict(outcomes), "slowest_case_s": slowest}


@pytest.mark.shared_data
def test_fuzzed_real_dicom_reads_or_raises_our_error(shared_data, tmp_path):
    seeds = [shared_data / "dicom" / name for name in SEEDS]
    result = run_cases(seeds, 1200, tmp_path)
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == 1200
    assert outcomes["read"] > 50 and sum(v for k, v in outcomes.items() if k != "read") > 300
    assert result["slowest_case_s"] < CASE_SECONDS


#: compressed (RLE, JPEG Lossless, JPEG-LS, JPEG 2000) and mosaic seeds
COMPRESSED_SEEDS = (
    "siemens_mosaic_rle/dicom/4.dcm",
    "siemens_mosaic_jpeg_lossless/dicom/5.dcm",
    "siemens_mosaic_jpegls/dicom/7.dcm",
    "siemens_mosaic_jpeg2000/dicom/9.dcm",
    "siemens_mosaic_epi_5sl_2vol/dicom/epi_pe_ap-00001.dcm",
)


def _address_space_limit(extra_bytes: int):
    """Lower this process's soft address-space limit to its current size plus ``extra_bytes``; returns a restorer."""
    import resource

    with open("/proc/self/status") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size_kb * 1024 + extra_bytes, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.shared_data
def test_fuzzed_compressed_and_mosaic_dicom_reads_or_raises_our_error(shared_data, tmp_path):
    seeds = [shared_data / "dicom" / name for name in COMPRESSED_SEEDS]
    restore = _address_space_limit(3 * 2**30)  # a decoder allocating without bound fails as MemoryError
    try:
        result = run_cases(seeds, 500, tmp_path, seed=1)
    finally:
        restore()
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == 500
    assert outcomes["read"] > 30 and sum(v for k, v in outcomes.items() if k != "read") > 100


#: pydicom's own samples (installed with it) of the big-endian and colour readers and of the imagecodecs decoders
#: (JPEG Lossless, 12-bit JPEG, JPEG 2000)
PYDICOM_SAMPLE_SEEDS = (
    "MR_small_bigendian.dcm",
    "rtdose_expb.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "JPGExtended.dcm",
    "MR_small_jp2klossless.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
)


def test_fuzzed_pydicom_samples_read_or_raise_our_error(tmp_path):
    from pydicom.data import get_testdata_file

    from napari_medimg.io.volumes import read_volume

    seeds = [Path(get_testdata_file(name)) for name in PYDICOM_SAMPLE_SEEDS]
    restore = _address_space_limit(3 * 2**30)
    try:
        result = run_cases(seeds, 640, tmp_path, seed=2, read=lambda path: [read_volume(path, lazy=False)])
    finally:
        restore()
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == 640
    assert outcomes["read"] > 30 and sum(v for k, v in outcomes.items() if k != "read") > 50
