"""CNN classifiers on MedMNIST v2 (train + val splits) against the paper's baselines.

For each data set a model is trained on the train split within a time budget, the checkpoint is chosen on the
validation split (AUC), and validation AUC/ACC are printed next to the best baseline rows of
``shared/data/medmnist/BASELINES.md`` (best AUC row and best ACC row, test split of the paper), with ratios.
The test splits are held back from us, so the comparison is our validation figures against their test figures;
the official test evaluation is done separately.  Models and ROC plots go to ``benchmarks/results/cnn/``.

    .venv/bin/python benchmarks/bench_cnn.py [--minutes 4.5] [--only breastmnist ...] [--cv 5]

With ``--cv K`` the recipe is cross-validated on train + val instead (K folds within ``--minutes`` in all):
pooled out-of-fold AUC/ACC with bootstrap 95 % intervals; otherwise the validation figures get intervals too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "medmnist"
RESULTS = ROOT / "benchmarks" / "results" / "cnn"

#: data set -> (column name in BASELINES.md, npz stem).  Every data set is trained with the same recipe
#: (napari_medimg.learn.cnn.recipe.DEFAULT_RECIPE, or the --recipe named from SEARCH_GRID), as the CLI does.
RUNS = {
    "breastmnist": ("BreastMNIST", "breastmnist"),
    "pneumoniamnist": ("PneumoniaMNIST", "pneumoniamnist"),
    "adrenalmnist3d": ("AdrenalMNIST3D", "adrenalmnist3d"),
    "adrenalmnist3d_64": ("AdrenalMNIST3D", "adrenalmnist3d_64"),  # 64^3: not run unless named in --only
}


def baselines(column: str) -> dict:
    """Best AUC row and best ACC row for ``column`` from the Markdown tables of BASELINES.md."""
    rows, header = [], None
    for line in (DATA / "BASELINES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| Method"):
            header = cells
        elif header and line.startswith("|") and not set(line) <= set("|-: "):
            if f"{column} AUC" in header and len(cells) == len(header):
                i = header.index(f"{column} AUC")
                rows.append((cells[0], float(cells[i]), float(cells[i + 1])))
        elif not line.startswith("|"):
            header = None
    if not rows:
        raise ValueError(f"{column} not found in BASELINES.md")
    best_auc = max(rows, key=lambda r: r[1])
    best_acc = max(rows, key=lambda r: r[2])
    return {"auc": best_auc[1], "auc_row": best_auc[0], "acc": best_acc[2], "acc_row": best_acc[0]}


def run(name: str, minutes: float, seed: int, recipe: str = "chosen") -> dict:
    from napari_medimg.learn.cnn.data import load_npz
    from napari_medimg.learn.cnn.files import save_model
    from napari_medimg.learn.cnn.metrics import plot_roc
    from napari_medimg.learn.cnn.recipe import recipe_configs
    from napari_medimg.learn.cnn.train import TrainConfig, train

    column, stem = RUNS[name]
    sets = load_npz(DATA / f"{stem}_trainval.npz")
    model, settings = recipe_configs(sets["train"].dims, SEARCH_GRID[recipe], minutes=minutes, seed=seed)
    config = TrainConfig(**settings)
    start = time.perf_counter()
    result = train(sets["train"], sets["val"], model, config)
    wall = time.perf_counter() - start
    out = RESULTS / name
    save_model(result.model, result.meta(), out, overwrite=True)
    metrics = result.metrics
    ours = {
        "auc": metrics["auc"],
        "acc": metrics["acc"],
        "balanced_acc": metrics["balanced_acc"],
        "f1": metrics["f1"],
        "n_val": metrics["n"],
        "n_train": len(sets["train"]),
        "wall_s": wall,
        "samples_per_s": result.samples_per_second,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
    }
    from napari_medimg.learn.cnn.data import normalise
    from napari_medimg.learn.cnn.train import predict_proba

    probabilities = predict_proba(
        result.model, normalise(sets["val"].images, result.normalisation), tta_axes=config.flip_axes
    )
    plot_roc(
        sets["val"].labels, probabilities, out / "roc_val.png", result.class_names, title=f"{column} val"
    )
    from napari_medimg.learn.cnn.metrics import bootstrap_intervals

    ours.update(bootstrap_intervals(sets["val"].labels, probabilities))  # val ACC is at the arg-max
    return {"dataset": column, "recipe": recipe, "ours": ours, "baseline": baselines(column)}


def run_cv(name: str, minutes: float, seed: int, k: int, recipe: str = "chosen") -> dict:
    """k-fold cross-validation of the recipe on train + val (out-of-fold figures with bootstrap intervals)."""
    from napari_medimg.learn.cnn.cv import cross_validate, merge_sets
    from napari_medimg.learn.cnn.data import load_npz
    from napari_medimg.learn.cnn.recipe import recipe_configs
    from napari_medimg.learn.cnn.train import TrainConfig

    column, stem = RUNS[name]
    sets = load_npz(DATA / f"{stem}_trainval.npz")
    data = merge_sets(sets["train"], sets["val"])
    model, settings = recipe_configs(data.dims, SEARCH_GRID[recipe], minutes=minutes, seed=seed)
    start = time.perf_counter()
    result = cross_validate(data, model, TrainConfig(**settings), k=k)
    metrics = result.metrics
    return {
        "dataset": column,
        "recipe": recipe,
        "k": k,
        "n": len(data),
        "oof_auc": metrics["auc"],
        "oof_auc_ci": metrics["auc_ci"],
        "oof_acc": metrics["acc"],
        "oof_acc_ci": metrics["acc_ci"],
        "threshold": metrics["threshold"],
        "fold_auc": [m["auc"] for m in result.fold_metrics],
        "best_epochs": [r.best_epoch for r in result.results],
        "wall_s": time.perf_counter() - start,
        "baseline": baselines(column),
    }


#: the first step's default recipe, the base of the search's first round (logged as "default")
FIRST_DEFAULT = {"balance": "weights", "augmentation": "light"}
#: the recipe search: one factor at a time around FIRST_DEFAULT, then combinations; "chosen" is the current
#: DEFAULT_RECIPE (napari_medimg.learn.cnn.recipe) that the search chose
SEARCH_GRID = {
    "chosen": {},
    **{
        name: {**FIRST_DEFAULT, **change}
        for name, change in {
            "default": {},
            "balance_none": {"balance": "none"},
            "balance_sampler": {"balance": "sampler"},
            "aug_flips": {"augmentation": "flips"},
            "lr_1e-3": {"lr": 1e-3},
            "narrow": {"width_2d": 16, "width_3d": 4},
            "aug_strong": {"augmentation": "strong"},
            "smooth_0.1": {"label_smoothing": 0.1},
            # second round: the best first-round change (flips only) with the other balancing choices
            "flips_sampler": {"augmentation": "flips", "balance": "sampler"},
            "flips_none": {"augmentation": "flips", "balance": "none"},
        }.items()
    },
}
#: data set -> (npz stem, epochs at most, examples used (None: all of train + val)).  The machine is shared
#: and loaded: budgets are in epochs (no time limit) so that the load does not decide between recipes.
SEARCH_SETS = {
    "breastmnist": ("breastmnist", 20, None),
    "pneumoniamnist": ("pneumoniamnist", 8, 1000),
    "adrenalmnist3d": ("adrenalmnist3d", 8, 600),
}


def search(recipes: list[str], sets: list[str], k: int, seed: int, log: Path, scale: float) -> None:
    """Cross-validate each recipe of :data:`SEARCH_GRID` on each data set; one JSON per pair in ``log``."""
    import numpy as np

    from napari_medimg.learn.cnn.cv import cross_validate, merge_sets
    from napari_medimg.learn.cnn.data import ImageSet, load_npz
    from napari_medimg.learn.cnn.recipe import recipe_configs
    from napari_medimg.learn.cnn.train import TrainConfig

    log.mkdir(parents=True, exist_ok=True)
    for recipe in recipes:
        for name in sets:
            path = log / f"{recipe}__{name}.json"
            if path.exists():
                continue
            stem, epochs, n_used = SEARCH_SETS[name]
            splits = load_npz(DATA / f"{stem}_trainval.npz")
            data = merge_sets(splits["train"], splits["val"])
            if n_used is not None and n_used < len(data):  # a seeded random subset, the same for every recipe
                keep = np.sort(np.random.default_rng(0).permutation(len(data))[:n_used])
                data = ImageSet(data.images[keep], data.labels[keep], data.class_names, data.spacing)
            model, training = recipe_configs(
                data.dims, {"epochs": max(1, round(epochs * scale)), **SEARCH_GRID[recipe]}, seed=seed
            )
            training.update(patience=10, threads=1)  # one thread each: far less CPU lost on a loaded machine
            load = os.getloadavg()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            result = cross_validate(data, model, TrainConfig(**training), k=k)
            m = result.metrics
            report = {
                "recipe": recipe,
                "settings": SEARCH_GRID[recipe],
                "dataset": name,
                "k": k,
                "n": len(data),
                "epochs": training["epochs"],
                "oof_auc": m["auc"],
                "oof_auc_ci": m["auc_ci"],
                "oof_acc": m["acc"],
                "oof_acc_ci": m["acc_ci"],
                "threshold": m["threshold"],
                "fold_auc": [f["auc"] for f in result.fold_metrics],
                "epochs_run": [len(r.history) for r in result.results],
                "best_epochs": [r.best_epoch for r in result.results],
                "wall_s": round(time.perf_counter() - wall, 1),
                "cpu_s": round(time.process_time() - cpu, 1),
                "load_start": load,
                "load_end": os.getloadavg()[0],
            }
            path.write_text(json.dumps(report, indent=2))
            print(json.dumps(report), flush=True)


def search_summary(log: Path) -> None:
    """Table of the logged search, and the recipe with the best mean out-of-fold AUC over the data sets."""
    rows = [json.loads(p.read_text()) for p in sorted(log.glob("*__*.json"))]
    names = sorted({r["dataset"] for r in rows})
    table = {}
    for r in rows:
        table.setdefault(r["recipe"], {})[r["dataset"]] = r
    print(f"{'recipe':16s} " + " ".join(f"{n:>34s}" for n in names) + "   mean AUC")
    means = {}
    for recipe, cells in table.items():
        parts = []
        for n in names:
            r = cells.get(n)
            parts.append(
                f"{'-':>34s}"
                if r is None
                else f"AUC {r['oof_auc']:.3f} [{r['oof_auc_ci'][0]:.3f},{r['oof_auc_ci'][1]:.3f}] "
                f"ACC {r['oof_acc']:.3f}".rjust(34)
            )
        complete = len(cells) == len(names)
        if complete:
            means[recipe] = sum(cells[n]["oof_auc"] for n in names) / len(names)
        print(
            f"{recipe:16s} " + " ".join(parts) + (f"   {means[recipe]:.4f}" if complete else "   (partial)")
        )
    if means:
        best = max(means, key=means.get)
        print(f"best mean out-of-fold AUC over {names}: {best} ({means[best]:.4f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.5, help="training budget per data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", nargs="+", choices=sorted(RUNS), default=["breastmnist", "pneumoniamnist", "adrenalmnist3d"]
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(SEARCH_GRID),
        default="default",
        help="the recipe (default: DEFAULT_RECIPE)",
    )
    parser.add_argument("--cv", type=int, metavar="K", help="k-fold cross-validation on train + val instead")
    parser.add_argument(
        "--search",
        nargs="*",
        metavar="RECIPE",
        help="recipe search by k-fold CV (all of SEARCH_GRID if none named)",
    )
    parser.add_argument("--search-log", type=Path, default=Path("/tmp/cnn_search"), help="one JSON per run")
    parser.add_argument("--search-scale", type=float, default=1.0, help="multiply the search's epochs")
    parser.add_argument("--summary", action="store_true", help="print the logged search and its best recipe")
    args = parser.parse_args()
    if args.summary:
        search_summary(args.search_log)
        return 0
    if args.search is not None:
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
        sets = [n for n in args.only if n in SEARCH_SETS]
        search(
            args.search or list(SEARCH_GRID),
            sets,
            args.cv or 3,
            args.seed,
            args.search_log,
            args.search_scale,
        )
        search_summary(args.search_log)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        "(other jobs share this machine; timings are pessimistic)"
    )
    print(
        f"{'data set':16s} {'val AUC':>8s} {'best AUC':>8s} {'ratio':>6s} {'val ACC':>8s} {'best ACC':>8s} "
        f"{'ratio':>6s} {'train s':>8s} {'samples/s':>9s}  epochs (best)  baseline rows"
    )
    if args.cv:
        for name in args.only:
            report = run_cv(name, args.minutes, args.seed, args.cv, args.recipe)
            print(json.dumps(report), flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        return 0
    reports = []
    for name in args.only:
        report = run(name, args.minutes, args.seed, args.recipe)
        reports.append(report)
        ours, base = report["ours"], report["baseline"]
        print(
            f"{report['dataset']:16s} {ours['auc']:8.4f} {base['auc']:8.3f} {ours['auc'] / base['auc']:6.3f} "
            f"{ours['acc']:8.4f} {base['acc']:8.3f} {ours['acc'] / base['acc']:6.3f} {ours['wall_s']:8.1f} "
            f"{ours['samples_per_s']:9.0f}  {ours['epochs']:3d} ({ours['best_epoch']:3d}) {ours['stopped']:12s}"
            f"  AUC: {base['auc_row']}; ACC: {base['acc_row']}\n"
            f"{'':16s} 95 % bootstrap: AUC {ours['auc_ci'][0]:.4f}-{ours['auc_ci'][1]:.4f}, "
            f"ACC {ours['acc_ci'][0]:.4f}-{ours['acc_ci'][1]:.4f}",
            flush=True,
        )
    (RESULTS / "summary.json").write_text(json.dumps(reports, indent=2))
    print("ours: validation split (model selection on it too); baselines: the paper's test split")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
