"""Closed-form eigenvalues of symmetric 3×3 matrices (``processing.symmetric_eigenvalues``, used by the
Hessian of ``vesselness``) against ``numpy.linalg.eigvalsh`` on the same matrices, same run.

``python benchmarks/bench_eigenvalues.py [--shape 8,256,256] [--repeats 3]`` prints seconds of both, the
ratio, the largest difference and the load average (the machine may be shared: compare the ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from napari_medimg.processing import symmetric_eigenvalues

KEYS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8,256,256")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    rng = np.random.default_rng(0)
    elements = {key: rng.normal(size=shape).astype(np.float32) for key in KEYS}
    matrices = np.empty((*shape, 3, 3), np.float32)
    for (i, j), values in elements.items():
        matrices[..., i, j] = matrices[..., j, i] = values

    def best(function) -> tuple[float, np.ndarray]:
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = function()
            times.append(time.perf_counter() - start)
        return min(times), out

    ours, closed = best(lambda: symmetric_eigenvalues(elements))
    peer, reference = best(lambda: np.linalg.eigvalsh(matrices))
    result = {
        "shape": list(shape),
        "closed_form_s": round(ours, 4),
        "eigvalsh_s": round(peer, 4),
        "ratio": round(peer / ours, 2),
        "max_abs_difference": float(np.abs(closed - reference).max()),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
