"""Model flavors: every model comes back predicting the same, and nothing runs code unless trusted."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from arsenale.errors import Forbidden, IntegrityError, InvalidInput
from arsenale.registry import flavors
from arsenale.registry.flavors import FLAVORS, LoadedModel, flavor_for, get_flavor
from tests.registry.pyfunc_example import ThresholdModel


class AddConstant(TransformerMixin, BaseEstimator):
    """A custom transformer: a class skops does not know, so loading it needs trust."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def fit(self, X: Any, y: Any = None) -> AddConstant:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) + self.value


class Evil:
    """A pickle that creates a directory when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.makedirs, (str(self.marker),))


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def save(model: object, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    meta = flavor_for(model).save(model, folder)
    return json.loads(json.dumps(meta))  # what the registry stores is JSON


def load(folder: Path, meta: dict[str, Any], *, trusted: bool = False) -> LoadedModel:
    return get_flavor(meta["flavor"]).load(folder, meta, trusted=trusted)


def test_public_names() -> None:
    assert sorted(flavors.__all__) == ["FLAVORS", "Flavor", "LoadedModel", "flavor_for", "get_flavor"]
    assert set(FLAVORS) == {"sklearn", "onnx", "pyfunc", "pickle"}
    for name, flavor in FLAVORS.items():
        assert isinstance(flavor, flavors.Flavor)
        assert flavor.name == name


# ---------------------------------------------------------------- sklearn

@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(max_iter=1000),
    lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
], ids=["logreg", "forest", "pipeline"])
def test_sklearn_round_trip(make: Any, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    model = make().fit(X, y)
    assert flavor_for(model).name == "sklearn"
    meta = save(model, tmp_path)
    assert meta["flavor"] == "sklearn" and meta["format"] == "skops"
    assert meta["sklearn_version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]  # no pickle, no joblib

    loaded = load(tmp_path, meta)  # allowlisted types only: no trust needed
    assert loaded.flavor == "sklearn"
    assert type(loaded.raw) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_forest_trees_are_trusted_through_the_allowlist(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    meta = save(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), tmp_path)
    assert "sklearn.tree._tree.Tree" in meta["untrusted_types"]
    assert "sklearn.tree._tree.Tree" in meta["trusted_types"]


def test_regressor_has_no_predict_proba(tmp_path: Path, cancer: Any) -> None:
    X, y = cancer
    model = LinearRegression().fit(X, y)
    loaded = load(tmp_path, save(model, tmp_path))
    assert not hasattr(loaded, "predict_proba")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_custom_class_is_refused_unless_trusted(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = make_pipeline(AddConstant(2.0), StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    meta = save(model, tmp_path)
    name = f"{__name__}.AddConstant"
    assert name in meta["untrusted_types"] and name not in meta["trusted_types"]

    with pytest.raises(Forbidden, match="AddConstant"):
        load(tmp_path, meta)
    # Widening the recorded trust in the meta changes nothing: the file is what is checked.
    forged = {**meta, "trusted_types": meta["untrusted_types"]}
    with pytest.raises(Forbidden, match="AddConstant"):
        load(tmp_path, forged)

    loaded = load(tmp_path, meta, trusted=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_functions_are_not_trusted_even_from_numpy(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    clip = FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": 5.0})
    model = make_pipeline(clip, LogisticRegression(max_iter=500)).fit(X, y)
    meta = save(model, tmp_path)
    with pytest.raises(Forbidden, match="numpy.clip"):
        load(tmp_path, meta)
    np.testing.assert_array_equal(load(tmp_path, meta, trusted=True).predict(X), model.predict(X))


def test_allowlist_trusts_classes_of_the_scientific_stack_only() -> None:
    from arsenale.registry.flavors.sklearn import split_types

    names = ["sklearn.tree._tree.Tree", "collections.OrderedDict", "scipy.sparse._csr.csr_matrix",
             "numpy.clip", "numpy.testing._private.utils.runstring", "numpy.memmap", "builtins.eval",
             "scipy.io._fortran.FortranFile", "os.system", "sklearn.nope.Missing", f"{__name__}.AddConstant"]
    allowed, refused = split_types(names)
    assert allowed == ["sklearn.tree._tree.Tree", "collections.OrderedDict", "scipy.sparse._csr.csr_matrix"]
    assert refused == names[3:]


def test_ufuncs_stay_trusted(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500)).fit(X, y)
    np.testing.assert_array_equal(load(tmp_path, save(model, tmp_path)).predict(X), model.predict(X))


def test_meta_cannot_point_outside_the_folder(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    meta = save(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "m")
    with pytest.raises(IntegrityError):
        load(tmp_path / "m", {**meta, "file": "../m/model.skops"})
    with pytest.raises(IntegrityError):
        load(tmp_path / "m", {**meta, "file": str(tmp_path / "m" / "model.skops")})
    with pytest.raises(InvalidInput):
        load(tmp_path / "m", {**meta, "file": "nope.skops"})


def test_corrupt_skops_file_is_invalid_input(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    meta = save(LogisticRegression(max_iter=500).fit(X, y), tmp_path)
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(InvalidInput):
        load(tmp_path, meta)


# ---------------------------------------------------------------- flavor selection

def test_flavor_for_picks_by_kind() -> None:
    assert flavor_for(ThresholdModel([1.0], 0.0)).name == "pyfunc"
    for bad in (object(), 42, "predict", b"not an onnx model", ThresholdModel):
        with pytest.raises(InvalidInput, match="cannot store"):
            flavor_for(bad)
    with pytest.raises(InvalidInput, match="unknown model flavor"):
        get_flavor("tensorflow")


# ---------------------------------------------------------------- onnx

@pytest.fixture(scope="module")
def onnx_tools() -> Any:
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    return pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (pip install skl2onnx)")


@pytest.mark.parametrize("as_bytes", [False, True], ids=["proto", "bytes"])
def test_onnx_round_trip(as_bytes: bool, onnx_tools: Any, tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    proto = onnx_tools.to_onnx(model, X[:1].astype(np.float32))
    onnx_model = proto.SerializeToString() if as_bytes else proto
    assert flavor_for(onnx_model).name == "onnx"
    meta = save(onnx_model, tmp_path)
    assert meta["flavor"] == "onnx" and meta["inputs"] and meta["outputs"][0] == "output_label"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]

    loaded = load(tmp_path, meta)  # a graph is not code: no trust needed
    assert loaded.flavor == "onnx"
    assert type(loaded.raw).__name__ == "InferenceSession"
    labels = loaded.predict(X)
    assert (labels == model.predict(X)).mean() >= 0.99  # float32 inference may flip a borderline row
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-4)
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    np.testing.assert_array_equal(loaded.predict(frame), labels)
    np.testing.assert_array_equal(loaded.predict(X[0].tolist()), labels[:1])


def test_onnx_without_zipmap_gives_dense_probabilities(onnx_tools: Any, tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    proto = onnx_tools.to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}})
    loaded = load(tmp_path, save(proto, tmp_path))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-4)


def test_onnx_bad_input_is_invalid_input(onnx_tools: Any, tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    loaded = load(tmp_path, save(onnx_tools.to_onnx(model, X[:1].astype(np.float32)), tmp_path))
    with pytest.raises(InvalidInput):
        loaded.predict(X[:, :2])
    with pytest.raises(InvalidInput):
        loaded.predict([["a", "b", "c", "d"]])


# ---------------------------------------------------------------- pyfunc

@pytest.fixture()
def threshold_model(cancer: Any) -> ThresholdModel:
    X, _ = cancer
    scaler = StandardScaler().fit(X)
    weights = np.linspace(-1.0, 1.0, X.shape[1])
    return ThresholdModel(weights, 0.25, scaler)


def test_pyfunc_round_trip(threshold_model: ThresholdModel, tmp_path: Path, cancer: Any) -> None:
    X, _ = cancer
    meta = save(threshold_model, tmp_path)
    assert meta["flavor"] == "pyfunc"
    assert meta["module"] == "tests.registry.pyfunc_example" and meta["class"] == "ThresholdModel"
    assert meta["code"] == "code/pyfunc_example.py" and len(meta["code_digest"]) == 64
    assert (tmp_path / "code" / "pyfunc_example.py").read_text() == \
        Path(sys.modules["tests.registry.pyfunc_example"].__file__ or "").read_text()
    assert (tmp_path / "data.skops").is_file()

    loaded = load(tmp_path, meta, trusted=True)
    assert not [m for m in sys.modules if m.startswith("_arsenale_pyfunc")]  # no private module left behind
    assert type(loaded.raw).__module__.startswith("_arsenale_pyfunc_pyfunc_example_")
    assert loaded.flavor == "pyfunc"
    assert type(loaded.raw).__name__ == "ThresholdModel"
    assert type(loaded.raw) is not ThresholdModel  # the stored code, not the installed module
    assert loaded.raw.labels == ["no", "yes"] and loaded.raw.threshold == 0.25
    np.testing.assert_array_equal(loaded.predict(X), threshold_model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), threshold_model.predict_proba(X))


def test_pyfunc_is_refused_unless_trusted(threshold_model: ThresholdModel, tmp_path: Path) -> None:
    meta = save(threshold_model, tmp_path)
    with pytest.raises(Forbidden, match=r"runs stored Python code \(code/pyfunc_example.py, digest"):
        load(tmp_path, meta)


def test_pyfunc_detects_tampered_code(threshold_model: ThresholdModel, tmp_path: Path) -> None:
    meta = save(threshold_model, tmp_path)
    code = tmp_path / "code" / "pyfunc_example.py"
    code.write_text(code.read_text() + "\nraise SystemExit('tampered')\n")
    with pytest.raises(IntegrityError):
        load(tmp_path, meta, trusted=True)


def test_pyfunc_rejects_what_it_cannot_store(tmp_path: Path) -> None:
    class Local:
        def predict(self, X: Any) -> Any:
            return X

    with pytest.raises(InvalidInput, match="top level"):
        flavor_for(Local()).save(Local(), tmp_path)


# ---------------------------------------------------------------- pickle

def test_pickle_is_load_only_and_needs_trust(tmp_path: Path, iris: Any) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    meta = {"flavor": "pickle", "file": "model.pkl"}
    flavor = get_flavor("pickle")
    assert not flavor.can_save(model)
    with pytest.raises(InvalidInput):
        flavor.save(model, tmp_path)
    with pytest.raises(Forbidden, match="pickle"):
        load(tmp_path, meta)
    loaded = load(tmp_path, meta, trusted=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_refused_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(Forbidden):
        load(tmp_path, {"flavor": "pickle", "file": "model.pkl"})
    assert not marker.exists()
