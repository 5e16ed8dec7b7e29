"""A scripted session: write a recipe, run it on one scan in Python, then on a small cohort with dask.

    python examples/recipe_cohort.py [OUT_FOLDER]

It makes three CT phantoms (NIfTI, in OUT_FOLDER/scans), runs the recipe on the first one with
``run_recipe`` (volumes and a table come back), saves the recipe as JSON, and runs ``run_batch`` (what
``medimg batch`` does) on all three with two worker processes; a second run resumes (skips every case).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from napari_medimg.io.nifti import write_nifti
from napari_medimg.pipeline.batch import run_batch
from napari_medimg.pipeline.recipe import Recipe, run_recipe, run_step, save_recipe
from napari_medimg.samples import make_ct_phantom


def main(out: Path) -> None:
    scans = out / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(3):
        phantom = make_ct_phantom(shape=(32, 128, 128), spacing=(5.0, 1.4, 1.4), seed=index)
        path = scans / f"phantom{index}.nii.gz"
        if not path.exists():
            write_nifti(phantom.image, path)
        paths.append(path)

    # a recipe: soft tissue and denser (manual HU range), clean-up, one label per object, features
    recipe = Recipe.from_dict(
        {
            "version": 1,
            "name": "dense objects",
            "steps": [
                {"op": "threshold", "params": {"method": "manual", "low": 20.0, "high": 400.0}},
                {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 500.0}},
                {"op": "connected_components"},
                {"op": "features", "params": {"groups": ["shape", "firstorder"], "bin_width": 25.0}},
            ],
        }
    ).validate()
    print(f"recipe hash {recipe.hash[:16]}")

    # one scan in Python: every step's output comes back
    phantom = make_ct_phantom(shape=(32, 128, 128), spacing=(5.0, 1.4, 1.4), seed=0)
    result = run_recipe(recipe, phantom.image.canonical())
    print(f"{int(result.labels.array.max())} objects; table {result.features.shape}")
    print(result.features[["label", "shape_VoxelVolume", "firstorder_Mean"]].round(1).to_string(index=False))
    # or single steps
    mask = run_step("threshold", phantom.image, method="otsu")
    print(f"otsu mask: {int(mask.array.sum())} voxels")

    # the same recipe on the cohort, two worker processes; then a rerun resumes
    recipe_path = save_recipe(recipe, out / "recipe.json", overwrite=True)
    for attempt in ("first run", "rerun"):
        summary = run_batch(recipe_path, paths, out / "results", workers=2)
        print(
            f"{attempt}: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed "
            f"in {summary['seconds']:.1f} s -> {summary['features']}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="recipe_example_")))
