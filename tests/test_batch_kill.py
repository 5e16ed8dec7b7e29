"""A worker process killed (SIGKILL) in the middle of a case: the case is retried on a replaced worker, every
case's outputs exist exactly once, identical to a clean run, no temporary folder is left, and a rerun skips all."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pandas as pd
import pytest
from batch_cohort import synthetic_cases

from napari_medimg.io.nifti import read_nifti
from napari_medimg.pipeline.batch import case_name, combine_features, restore_environment, run_batch, run_case

RECIPE = {
    "version": 1,
    "steps": [
        {"op": "threshold", "params": {"method": "otsu"}},
        {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 20.0}},
        {"op": "connected_components"},
        {"op": "features", "params": {"groups": ["shape", "firstorder", "glcm", "glszm"]}},
    ],
}


def _kill_a_busy_worker(client, pids: dict, found: dict, stop: threading.Event) -> None:
    """Wait until a worker runs a case for a moment, then SIGKILL its process."""
    while not stop.is_set():
        busy = {
            address: [str(k) for k in keys if str(k).startswith("case-")]
            for address, keys in client.processing().items()
        }
        busy = {a: keys for a, keys in busy.items() if keys and a in pids}
        if busy:
            stop.wait(0.2)  # let the case run a moment: the kill must land mid-case
            address, keys = next(iter(busy.items()))
            found.update(address=address, pid=pids[address], keys=keys)
            os.kill(pids[address], signal.SIGKILL)
            return
        stop.wait(0.05)


@pytest.mark.slow
def test_killed_worker_yields_every_case_once(tmp_path):
    from distributed import Client, LocalCluster

    inputs = synthetic_cases(tmp_path / "in", 6, size=80, seed=3)
    names = [case_name(p) for p in inputs]
    clean = tmp_path / "clean"
    for path in inputs:
        record = run_case(RECIPE, path, clean)
        assert record["status"] == "done", record

    out = tmp_path / "out"
    environment = dict(os.environ)
    found: dict = {}
    stop = threading.Event()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    ) as cluster:
        with Client(cluster) as client:
            pids = client.run(os.getpid)
            killer = threading.Thread(target=_kill_a_busy_worker, args=(client, pids, found, stop))
            killer.start()
            try:
                summary = run_batch(RECIPE, inputs, out, scheduler=cluster.scheduler_address)
            finally:
                stop.set()
                killer.join()
            client.wait_for_workers(2, timeout=120)
            after = client.run(os.getpid)
    restore_environment(environment)  # what the test's own nannies wrote into this process
    assert found, "no worker was killed"
    assert found["pid"] not in after.values() and len(after) == 2  # the nanny replaced the dead worker
    # every case done; "skipped" only where the dead worker had finished a case just before the kill
    assert (summary["cases"], summary["done"] + summary["skipped"], summary["failed"]) == (6, 6, 0), summary
    # the cases the dead worker was running were redone by another process
    killed_cases = {name for name in names if any(key.startswith(f"case-{name}-") for key in found["keys"])}
    assert killed_cases
    status = {r["case"]: r["status"] for r in summary["results"]}
    for name in killed_cases:
        log = pd.read_json(out / name / "log.json", typ="series")
        assert log["pid"] != found["pid"] or status[name] == "skipped"
    assert any(status[name] == "done" for name in killed_cases)  # at least one was killed mid-case
    # exactly one folder per case, no temporary or partial entries anywhere
    entries = sorted(p.name for p in out.iterdir())
    assert entries == sorted([*names, "batch.json", "features.csv"])
    leftovers = [p for p in out.rglob(".*") if p.name != ".napari-medimg-output"]
    assert leftovers == []
    # identical to the clean run
    for name in names:
        np.testing.assert_array_equal(
            read_nifti(out / name / "labels.nii.gz").array, read_nifti(clean / name / "labels.nii.gz").array
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(out / name / "features.csv"), pd.read_csv(clean / name / "features.csv")
        )
    pd.testing.assert_frame_equal(pd.read_csv(out / "features.csv"), combine_features(clean, names))
    # resume: a second run skips every case
    again = run_batch(RECIPE, inputs, out, workers=1)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 6, 0)
