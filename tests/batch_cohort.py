"""Cohorts for the batch tests and benchmark, built in a temporary folder from ../shared/data (never copied
into the repository): DICOM series folders holding contiguous blocks of slices of a real T1w series
(copies), and NIfTI crops of the MNI152 T1 template."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

T1W_SERIES = Path("dicom/siemens_xa30_t1w_sag_classic/dicom")
MNI_T1 = Path("segmentation/mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")

#: the recipe the cohort tests and the benchmark run: threshold, clean-up, objects, features
COHORT_RECIPE = {
    "version": 1,
    "name": "cohort: bright tissue objects",
    "steps": [
        {"op": "threshold", "params": {"method": "otsu"}},
        {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 200.0}},
        {"op": "connected_components", "params": {}},
        {"op": "features", "params": {"groups": ["shape", "firstorder", "glcm"], "bin_width": 25.0}},
    ],
}


def dicom_cases(shared_data: Path, folder: Path, count: int = 8, slices: int = 12) -> list[Path]:
    """``count`` DICOM series folders of ``slices`` contiguous slices each (copies in the temporary folder)."""
    import pydicom

    files = sorted((shared_data / T1W_SERIES).glob("*.dcm"))
    position = {}
    for path in files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ImagePositionPatient"])
        position[path] = float(dataset.ImagePositionPatient[0])  # sagittal: slices step along x
    files.sort(key=position.__getitem__)
    step = max(1, (len(files) - slices) // max(1, count - 1))
    cases = []
    for index in range(count):
        case = folder / f"t1w_block{index:02d}"
        case.mkdir(parents=True)
        for path in files[index * step : index * step + slices]:
            shutil.copyfile(path, case / path.name)
        cases.append(case)
    return cases


def nifti_cases(shared_data: Path, folder: Path, count: int = 12, size: int = 48) -> list[Path]:
    """``count`` NIfTI crops (``size``³ voxels) of the MNI152 T1 template at spread positions."""
    import nibabel as nib

    image = nib.load(shared_data / MNI_T1)
    shape = np.array(image.shape)
    rng = np.random.default_rng(15)
    low, high = shape // 5, shape - shape // 5 - size
    cases = []
    for index in range(count):
        start = [int(rng.integers(lo, max(lo + 1, hi))) for lo, hi in zip(low, high, strict=True)]
        crop = image.slicer[tuple(slice(s, s + size) for s in start)]
        path = folder / f"mni_crop{index:02d}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(crop.dataobj), crop.affine), path)
        cases.append(path)
    return cases


def cohort(
    shared_data: Path, folder: Path, dicom: int = 8, nifti: int = 12, slices: int = 12, size: int = 48
) -> list[Path]:
    """DICOM folders (``slices`` each) then NIfTI crops (``size``³): ``dicom + nifti`` cases (20 by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    return dicom_cases(shared_data, folder, dicom, slices) + nifti_cases(shared_data, folder, nifti, size)


def synthetic_cases(folder: Path, count: int, size: int = 64, seed: int = 0) -> list[Path]:
    """``count`` NIfTI volumes of bright ellipsoids in noise (no shared data needed)."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = np.indices((size, size, size), dtype=np.float32)
    cases = []
    for index in range(count):
        array = rng.normal(100, 20, (size, size, size)).astype(np.float32)
        for _ in range(6):
            centre = rng.uniform(10, size - 10, 3)
            radii = rng.uniform(3, 8, 3)
            inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
            array[inside] += rng.uniform(200, 400)
        path = folder / f"synthetic{index:02d}.nii.gz"
        nib.save(nib.Nifti1Image(array.astype(np.int16), np.diag([0.8, 0.8, 1.5, 1.0])), path)
        cases.append(path)
    return cases
