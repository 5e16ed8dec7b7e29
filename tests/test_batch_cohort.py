"""A cohort of 20 real cases (8 DICOM series folders, 12 NIfTI crops) from ../shared/data: ``medimg batch`` end to
end, its combined table equal to running each case alone with ``medimg run``, and a rerun that skips every case."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from batch_cohort import COHORT_RECIPE, cohort

from napari_medimg.cli import main
from napari_medimg.io.nifti import read_nifti
from napari_medimg.pipeline.batch import case_name, on_grid_of, read_case


@pytest.mark.slow
@pytest.mark.shared_data
def test_cohort_batch_equals_each_case_run_alone(shared_data, tmp_path, capsys):
    inputs = cohort(shared_data, tmp_path / "cohort")
    assert len(inputs) == 20
    assert sum(p.is_dir() for p in inputs) == 8 and sum(p.name.endswith(".nii.gz") for p in inputs) == 12
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(COHORT_RECIPE))
    names = [case_name(p) for p in inputs]

    out = tmp_path / "batch"
    argv = ["batch", str(recipe), *map(str, inputs), "--out", str(out), "--workers", "2", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["cases"], summary["done"], summary["skipped"], summary["failed"]) == (20, 20, 0, 0)
    assert summary["seconds"] > 0 and "dask dashboard: http" in captured.err

    alone = tmp_path / "alone"
    for path in inputs:
        assert main(["run", str(recipe), str(path), "--out", str(alone)]) == 0
    capsys.readouterr()
    combined = pd.read_csv(out / "features.csv")
    assert list(combined.columns[:2]) == ["case", "label"]
    assert list(dict.fromkeys(combined["case"])) == [
        n for n in names if (alone / n / "features.csv").is_file()
    ]
    assert combined["case"].nunique() >= 18 and len(combined) >= 20  # (almost) every case has objects
    each = pd.concat(
        [
            pd.read_csv(alone / n / "features.csv").assign(case=n)
            for n in names
            if (alone / n / "features.csv").is_file()
        ],
        ignore_index=True,
    )[combined.columns]
    pd.testing.assert_frame_equal(combined, each)
    for name, path in zip(names, inputs, strict=True):
        batch_labels = read_nifti(out / name / "labels.nii.gz")
        np.testing.assert_array_equal(batch_labels.array, read_nifti(alone / name / "labels.nii.gz").array)
        scan = read_case(path)
        assert batch_labels.shape == scan.shape  # on the input's voxel grid ...
        np.testing.assert_allclose(batch_labels.affine, scan.affine, atol=1e-3)  # ... and world position
    # the sagittal DICOM blocks were segmented on the displayed axes and put back exactly
    dicom = read_case(inputs[0])
    assert dicom.canonical() is not dicom
    np.testing.assert_array_equal(on_grid_of(dicom.canonical(), dicom).array, dicom.array)

    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 20, 0)
    pd.testing.assert_frame_equal(pd.read_csv(out / "features.csv"), combined)
