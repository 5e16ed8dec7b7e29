"""Model bundles: save → load gives identical predictions; schema mismatch, tampered and foreign files refused."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

from napari_medimg.io.errors import OverwriteError
from napari_medimg.learn.bundle import BundleError, load_bundle
from napari_medimg.learn.classify import SchemaError, load_classifier, save_classifier, train_classifier


@pytest.fixture(scope="module")
def table():
    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module", params=["svm", "forest", "gb", "tree"])
def trained(request, table):
    classifier, _ = train_classifier(table, target="target", model=request.param, folds=2, n_estimators=15)
    return classifier


def test_round_trip_identical_predictions(trained, table, tmp_path):
    path = save_classifier(trained, tmp_path / "model.skops")
    loaded = load_classifier(path)
    np.testing.assert_array_equal(loaded.predict_proba(table), trained.predict_proba(table))
    np.testing.assert_array_equal(loaded.predict(table), trained.predict(table))
    assert loaded.feature_names == trained.feature_names and loaded.classes == [0, 1]
    assert loaded.metrics == json.loads(json.dumps(trained.metrics))
    assert loaded.settings["model"] == trained.settings["model"]
    _, meta = load_bundle(path)
    assert {"scikit-learn", "skops", "numpy", "napari_medimg"} <= set(meta["versions"])
    with pytest.raises(OverwriteError):
        save_classifier(trained, path)


def test_schema_mismatch_names_what_differs(table):
    classifier, _ = train_classifier(table, target="target", model="tree", folds=0)
    with pytest.raises(SchemaError, match="'mean radius'"):
        classifier.predict(table.drop(columns=["mean radius"]))
    with pytest.raises(SchemaError, match="must be numeric"):
        classifier.predict(table.assign(**{"mean area": "large"}))
    renamed = table.rename(columns={"worst texture": "Worst Texture"})
    with pytest.raises(SchemaError, match="'worst texture'"):
        classifier.check_table(renamed)
    # columns in another order are matched by name: the same predictions
    shuffled = table[table.columns[::-1]]
    np.testing.assert_array_equal(classifier.predict(shuffled), classifier.predict(table))
    with pytest.raises(SchemaError, match="class\\(es\\) 7"):
        classifier.evaluate(table.assign(target=7))


def _rewrite_schema(source, target, change):
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    change(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _first_object(node):
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node and node.get("__loader__") == "ObjectNode":
            return node
        for value in node.values():
            found = _first_object(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _first_object(value)
            if found is not None:
                return found
    return None


def test_tampered_bundle_refused_never_executed(table, tmp_path, monkeypatch):
    classifier, _ = train_classifier(table, target="target", model="forest", folds=0, n_estimators=5)
    path = save_classifier(classifier, tmp_path / "model.skops")

    def swap_in_os_system(schema):
        node = _first_object(schema)
        node["__module__"], node["__class__"] = "os", "system"

    tampered = tmp_path / "tampered.skops"
    _rewrite_schema(path, tampered, swap_in_os_system)
    called = []
    monkeypatch.setattr("os.system", lambda *a: called.append(a))
    with pytest.raises(BundleError, match="untrusted type\\(s\\) os.system"):
        load_classifier(tampered)
    assert not called

    def swap_in_foreign_class(schema):
        node = _first_object(schema)
        node["__module__"], node["__class__"] = "sklearn.utils._testing", "MinimalClassifier"

    foreign_type = tmp_path / "foreign_type.skops"
    _rewrite_schema(path, foreign_type, swap_in_foreign_class)
    with pytest.raises(BundleError, match="untrusted type"):
        load_classifier(foreign_type)

    flipped = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
        start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    flipped[start + member.compress_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.skops"
    damaged.write_bytes(bytes(flipped))
    with pytest.raises(BundleError, match="damaged"):
        load_classifier(damaged)


def test_foreign_files_refused(table, tmp_path):
    plain = tmp_path / "plain.skops"
    sio.dump(DecisionTreeClassifier().fit(table.drop(columns="target"), table["target"]), plain)
    with pytest.raises(BundleError, match="not a napari-medimg model bundle"):
        load_classifier(plain)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"evil": True}))
    with pytest.raises(BundleError, match="never loaded"):
        load_classifier(pickled)
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "missing.skops")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "table.csv")
    with pytest.raises(BundleError):
        load_classifier(tmp_path / "table.csv")


def test_registry_operations_apply_saved_models(table, tmp_path):
    from napari_medimg import ops
    from napari_medimg.geometry import Volume
    from napari_medimg.learn.pixels import FeatureSettings, save_pixel_classifier, train_pixel_classifier

    classifier, _ = train_classifier(table, target="target", model="tree", folds=0)
    path = save_classifier(classifier, tmp_path / "objects.skops")
    assert ops.get("classify_objects").inputs == ("table",)
    predicted = ops.run("classify_objects", table.drop(columns="target"), model=str(path))
    np.testing.assert_array_equal(predicted["predicted_class"].astype(int), table["target"])
    assert {"probability_0", "probability_1", "mean radius"} <= set(predicted.columns)

    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (40, 40)).astype(np.float32)
    image[:, 20:] += 4
    strokes = np.zeros(image.shape, np.uint8)
    strokes[::5, 5], strokes[::5, 35] = 1, 2
    settings = FeatureSettings(sigmas_mm=(1.0,), groups=("gaussian",))
    pixels = train_pixel_classifier(
        [Volume(image, spacing=(0.5, 0.5))], [strokes], settings=settings, n_estimators=5
    )
    pixel_path = save_pixel_classifier(pixels, tmp_path / "pixels.skops")
    schema = ops.get("pixel_classify").schema()["properties"]
    assert schema["output"]["enum"] == ["labels", "probability"]
    labels = ops.run("pixel_classify", Volume(image, spacing=(0.5, 0.5)), model=str(pixel_path))
    assert labels.shape == image.shape and (labels.array[:, 25:] == 2).mean() > 0.95
    np.testing.assert_allclose(labels.spacing, (0.5, 0.5))
    probability = ops.run(
        "pixel_classify", Volume(image, spacing=(0.5, 0.5)), model=str(pixel_path), output="probability"
    )
    assert probability.array.dtype == np.float32 and probability.array[:, 30:].mean() > 0.9
    with pytest.raises(FileNotFoundError):
        ops.run("classify_objects", table, model=str(tmp_path / "none.skops"))
