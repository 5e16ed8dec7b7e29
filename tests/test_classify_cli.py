"""``medimg classify``: breast cancer Wisconsin through train/predict/evaluate; metrics equal scikit-learn's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.datasets import load_breast_cancer, load_iris

from napari_medimg.cli import main


@pytest.fixture(scope="module")
def wisconsin(tmp_path_factory):
    """scikit-learn's breast cancer Wisconsin table (569 fine-needle aspirates, 30 features) as a CSV."""
    table = load_breast_cancer(as_frame=True).frame
    table.insert(0, "label", np.arange(1, len(table) + 1))
    path = tmp_path_factory.mktemp("wisconsin") / "wisconsin.csv"
    table.to_csv(path, index=False)
    return path, table


@pytest.mark.parametrize("model", ["svm", "forest"])
def test_wisconsin_train_meets_targets_and_equals_sklearn(wisconsin, tmp_path, capsys, model):
    path, table = wisconsin
    out, oof_path = tmp_path / f"{model}.skops", tmp_path / "oof.csv"
    code = main(
        ["classify", "train", str(path), "--target", "target", "--model", model, "--folds", "5"]
        + ["--out", str(out), "--cv-predictions", str(oof_path)]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("acc", "balanced_acc", "auc", "f1", "n", "folds"):
        assert key in result
    assert result["n"] == 569 and result["folds"] == 5 and result["features"] == 30  # 'label' is no feature
    assert result["acc"] >= 0.96
    assert result["auc"] >= 0.99

    # the same figures from scikit-learn's own functions on the out-of-fold predictions written beside
    oof = pd.read_csv(oof_path)
    np.testing.assert_array_equal(oof["true"], table["target"])
    y, predicted, score = oof["true"], oof["predicted_class"], oof["probability_1"]
    assert result["acc"] == pytest.approx(metrics.accuracy_score(y, predicted), abs=1e-12)
    assert result["balanced_acc"] == pytest.approx(metrics.balanced_accuracy_score(y, predicted), abs=1e-12)
    assert result["f1"] == pytest.approx(metrics.f1_score(y, predicted, average="macro"), abs=1e-12)
    assert result["precision"] == pytest.approx(
        metrics.precision_score(y, predicted, average="macro"), abs=1e-12
    )
    assert result["recall"] == pytest.approx(metrics.recall_score(y, predicted, average="macro"), abs=1e-12)
    assert result["auc"] == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)
    assert result["confusion_matrix"] == metrics.confusion_matrix(y, predicted).tolist()
    assert result["per_class"]["1"]["f1"] == pytest.approx(metrics.f1_score(y, predicted, pos_label=1))
    assert np.array_equal(predicted, np.argmax(oof[["probability_0", "probability_1"]].to_numpy(), axis=1))
    assert result["importances"]["method"] == ("permutation" if model == "svm" else "impurity")
    assert len(result["importances"]["values"]) == 30


def test_predict_and_evaluate_round_trip(wisconsin, tmp_path, capsys):
    path, table = wisconsin
    model = tmp_path / "tree.skops"
    assert main(["classify", "train", str(path), "--target", "target", "--model", "tree", "--folds", "3"]
                + ["--out", str(model)]) == 0  # fmt: skip
    capsys.readouterr()
    predictions = tmp_path / "pred.csv"
    assert main(["classify", "predict", str(model), str(path), "--out", str(predictions)]) == 0
    written = pd.read_csv(predictions)
    assert list(written.columns) == ["label", "predicted_class", "probability_0", "probability_1"]
    np.testing.assert_array_equal(written["label"], table["label"])
    # a fully grown tree fits its training rows exactly: evaluate on them gives 1.0
    assert (written["predicted_class"] == table["target"]).mean() == 1.0
    capsys.readouterr()
    assert main(["classify", "evaluate", str(model), str(path), "--target", "target"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["acc"] == 1.0 and evaluated["n"] == 569
    # refuses to replace the predictions without --overwrite
    assert main(["classify", "predict", str(model), str(path), "--out", str(predictions)]) == 2
    assert "exists" in capsys.readouterr().err


def test_multiclass_gb_auc_one_vs_rest(tmp_path, capsys):
    table = load_iris(as_frame=True).frame
    table["species"] = np.array(["setosa", "versicolor", "virginica"])[table.pop("target")]
    path = tmp_path / "iris.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "gb.skops"
    assert main(["classify", "train", str(path), "--target", "species", "--model", "gb", "--folds", "3"]
                + ["--n-estimators", "30", "--out", str(out), "--cv-predictions", str(tmp_path / "oof.csv")]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    oof = pd.read_csv(tmp_path / "oof.csv")
    classes = ["setosa", "versicolor", "virginica"]
    probabilities = oof[[f"probability_{name}" for name in classes]].to_numpy()
    expected = metrics.roc_auc_score(oof["true"], probabilities, multi_class="ovr", labels=classes)
    assert result["auc"] == pytest.approx(expected, abs=1e-12) and result["auc"] > 0.95
    assert len(result["confusion_matrix"]) == 3 and sorted(result["per_class"]) == classes


def test_bad_input_is_one_clear_line(wisconsin, tmp_path, capsys):
    path, table = wisconsin
    model = tmp_path / "forest.skops"
    assert main(["classify", "train", str(path), "--target", "target", "--model", "forest", "--folds", "2"]
                + ["--n-estimators", "10", "--out", str(model)]) == 0  # fmt: skip
    capsys.readouterr()

    lacking = tmp_path / "lacking.csv"
    table.drop(columns=["worst area", "mean texture"]).to_csv(lacking, index=False)
    assert main(["classify", "predict", str(model), str(lacking), "--out", str(tmp_path / "p.csv")]) == 2
    error = capsys.readouterr().err
    assert "'mean texture'" in error and "'worst area'" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()

    damaged = tmp_path / "damaged.skops"
    damaged.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert main(["classify", "predict", str(damaged), str(path), "--out", str(tmp_path / "p.csv")]) == 2
    error = capsys.readouterr().err
    assert "damaged" in error and len(error.strip().splitlines()) == 1

    assert (
        main(["classify", "train", str(path), "--target", "diagnosis", "--out", str(tmp_path / "m.skops")])
        == 2
    )
    assert "no target column 'diagnosis'" in capsys.readouterr().err
    assert main(["classify", "evaluate", str(model), str(path), "--target", "nothing"]) == 2
    assert "'nothing'" in capsys.readouterr().err
    assert (
        main(["classify", "train", str(tmp_path / "none.csv"), "--target", "t", "--out", str(tmp_path / "m")])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "t": [0, 0, 0, 1]}).to_csv(tiny, index=False)
    assert (
        main(["classify", "train", str(tiny), "--target", "t", "--folds", "2", "--out", str(tmp_path / "m")])
        == 2
    )
    assert "needs at least 2 per class" in capsys.readouterr().err


def test_a_typo_in_a_feature_column_is_said_and_missing_values_are_counted(wisconsin, tmp_path, capsys):
    """A column with one text cell is not numeric: left out of the features, as before, but now said (JSON
    and a warning line) instead of silently; missing values are counted where they are imputed."""
    path, table = wisconsin
    typo = table.copy()
    typo["mean radius"] = typo["mean radius"].astype(object)
    typo.loc[7, "mean radius"] = "13,5"  # a decimal comma
    typo.loc[3, "mean texture"] = np.nan
    typo["site"] = "hospital A"  # text, not a feature: listed, no warning
    typo.to_csv(tmp_path / "typo.csv", index=False)
    command = ["classify", "train", str(tmp_path / "typo.csv"), "--target", "target", "--model", "tree"]
    assert main([*command, "--folds", "2", "--out", str(tmp_path / "m.skops")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["features"] == 29 and result["imputed_values"] == 1
    ignored = {entry["column"]: entry for entry in result["ignored_columns"]}
    assert set(ignored) == {"mean radius", "site"}
    assert ignored["mean radius"]["example"] == "13,5" and ignored["mean radius"]["numeric_share"] > 0.99
    assert (
        ignored["site"]["numeric_share"] == 0.0
        and not ignored["site"]["typo"]
        and ignored["mean radius"]["typo"]
    )
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and "'mean radius'" in warnings[0] and "'13,5'" in warnings[0]
