"""``medimg classify train|predict|evaluate``: object classifiers on feature tables (CSV)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODEL_CHOICES = ("svm", "tree", "forest", "gb")


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "classify",
        help="train, apply and evaluate object classifiers (svm, tree, forest, gb) on feature tables",
        description="Object classifiers on per-object feature tables (one CSV row per object, e.g. from "
        "'medimg features'). Models are saved as skops bundles (never pickle) with the feature names, "
        "classes, settings, library versions and cross-validated metrics.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    train = actions.add_parser(
        "train",
        help="cross-validate and fit a classifier; prints JSON metrics",
        description="Stratified k-fold cross-validation (metrics on the out-of-fold predictions, by "
        "scikit-learn's functions), then a fit on every row, saved to --out. Feature columns: every numeric "
        "column except the target and id columns (label, id, case, ...), unless --features names them.",
    )
    train.add_argument("table", type=Path, metavar="TABLE.csv", help="feature table with a class column")
    train.add_argument("--target", required=True, metavar="COLUMN", help="the class column")
    train.add_argument("--model", choices=MODEL_CHOICES, default="forest", help="classifier (default forest)")
    train.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    train.add_argument("--out", type=Path, required=True, metavar="MODEL", help="model bundle to write")
    train.add_argument("--features", default=None, metavar="C1,C2", help="comma-separated feature columns")
    train.add_argument("--kernel", choices=("rbf", "linear"), default="rbf", help="SVM kernel (default rbf)")
    train.add_argument("--c", type=float, default=1.0, metavar="C", help="SVM regularisation C (default 1)")
    train.add_argument("--n-estimators", type=int, default=200, metavar="N", help="trees (forest, gb)")
    train.add_argument("--max-depth", type=int, default=None, metavar="D", help="tree depth limit")
    train.add_argument("--learning-rate", type=float, default=0.1, metavar="R", help="gb shrinkage")
    train.add_argument("--seed", type=int, default=0, help="random seed of folds and models (default 0)")
    train.add_argument(
        "--cv-predictions",
        type=Path,
        default=None,
        metavar="OOF.csv",
        help="also write the out-of-fold predictions and probabilities the metrics were computed from",
    )
    train.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    train.set_defaults(handler=run_train)

    predict = actions.add_parser(
        "predict",
        help="apply a model to a table; writes predicted_class and probability_<class> columns",
        description="Checks that the table has every column the model was trained on (by name) and refuses "
        "otherwise, naming the missing columns.",
    )
    predict.add_argument("model", type=Path, metavar="MODEL", help="model bundle from 'classify train'")
    predict.add_argument("table", type=Path, metavar="TABLE.csv", help="feature table")
    predict.add_argument("--out", type=Path, required=True, metavar="PRED.csv", help="predictions CSV")
    predict.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    predict.set_defaults(handler=run_predict)

    evaluate = actions.add_parser(
        "evaluate",
        help="metrics of a model on a labelled table (JSON)",
        description="Applies the model (no re-training) and prints accuracy, balanced accuracy, precision, "
        "recall, F1, ROC-AUC and the confusion matrix as JSON.",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="model bundle from 'classify train'")
    evaluate.add_argument("table", type=Path, metavar="TABLE.csv", help="feature table with the class column")
    evaluate.add_argument("--target", required=True, metavar="COLUMN", help="the class column")
    evaluate.set_defaults(handler=run_evaluate)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def read_table(path: Path):
    """A pandas table from a CSV file, with clear errors for a missing, empty or unreadable file."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not a readable CSV table: {str(error).strip().splitlines()[0]}"
        ) from None
    if table.empty:
        raise ValueError(f"{path} has no rows")
    return table


def _refuse_existing(path: Path | None, overwrite: bool) -> None:
    if path is not None and path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def _write_csv(table, path: Path, overwrite: bool) -> None:
    from ..io.atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as temporary:
        table.to_csv(temporary, index=False)


def _summary(metrics: dict) -> dict:
    keys = ("acc", "balanced_acc", "auc", "f1", "precision", "recall", "n", "folds")
    return {**{key: metrics.get(key) for key in keys}, **metrics}


def run_train(args) -> int:
    import numpy as np
    import pandas as pd

    from ..learn.classify import save_classifier, train_classifier

    _refuse_existing(args.out, args.overwrite)
    _refuse_existing(args.cv_predictions, args.overwrite)
    table = read_table(args.table)
    features = [name.strip() for name in args.features.split(",") if name.strip()] if args.features else None
    classifier, cv = train_classifier(
        table,
        target=args.target,
        model=args.model,
        folds=args.folds,
        features=features,
        kernel=args.kernel,
        c=args.c,
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    save_classifier(classifier, args.out, overwrite=args.overwrite)
    for column in classifier.metrics.get("ignored_columns", []):
        if column["typo"]:
            print(
                f"medimg classify: warning: column {column['column']!r} is left out of the features: "
                f"{column['numeric_share']:.0%} of its values are numbers, not {column['example']!r}",
                file=sys.stderr,
            )
    if args.cv_predictions is not None and cv is not None:
        oof = pd.DataFrame(
            {"row": np.arange(len(cv.y_true)), "true": cv.y_true, "predicted_class": cv.y_pred}
        )
        for column, name in enumerate(cv.classes):
            oof[f"probability_{name}"] = cv.probabilities[:, column]
        _write_csv(oof, args.cv_predictions, args.overwrite)
    result = {
        **_summary(classifier.metrics),
        "model": args.model,
        "features": len(classifier.feature_names),
        "importances": classifier.importances,
        "out": str(args.out),
    }
    print(json.dumps(result, indent=2))
    return 0


def run_predict(args) -> int:
    from ..learn.classify import load_classifier

    _refuse_existing(args.out, args.overwrite)
    classifier = load_classifier(args.model)
    table = read_table(args.table)
    predictions = classifier.predict_table(table)
    _write_csv(predictions, args.out, args.overwrite)
    counts = predictions["predicted_class"].value_counts().to_dict()
    print(
        f"{len(predictions)} rows -> {args.out}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        file=sys.stderr,
    )
    return 0


def run_evaluate(args) -> int:
    from ..learn.classify import load_classifier

    classifier = load_classifier(args.model)
    metrics = classifier.evaluate(read_table(args.table), target=args.target)
    print(
        json.dumps({**_summary(metrics), "folds": None, "model": classifier.settings.get("model")}, indent=2)
    )
    return 0
