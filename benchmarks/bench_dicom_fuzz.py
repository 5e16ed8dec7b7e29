"""Fuzz the DICOM reader at scale: ``python benchmarks/bench_dicom_fuzz.py --cases 10000``.

Same mutations as ``tests/test_io_fuzz.py`` (which runs 1,200 cases in the suite): every mutated real file must
either read or raise napari-medimg's ``MedImgReadError``; any other exception or a case over 5 s fails the run.
Prints the outcome counts, the slowest case and the throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_io_fuzz import SEEDS, run_cases  # noqa: E402

SHARED = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    seeds = [SHARED / "dicom" / name for name in SEEDS]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = run_cases(seeds, args.cases, Path(folder), seed=args.seed)
        elapsed = time.perf_counter() - start
    print(
        f"{args.cases} mutated files from {len(seeds)} real seeds in {elapsed:.1f} s "
        f"({args.cases / elapsed:.0f} cases/s), slowest case {result['slowest_case_s'] * 1000:.1f} ms"
    )
    for outcome, count in sorted(result["outcomes"].items(), key=lambda item: -item[1]):
        print(f"  {outcome:24s} {count:6d}")
    print("no exception outside MedImgReadError, no hang")
    return 0


if __name__ == "__main__":
    sys.exit(main())
