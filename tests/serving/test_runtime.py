"""Loading versions and decoding requests: every body shape gives the model's own answer; bad input is a 422
naming the field; values outside the training range still pass."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arsenale.errors import Forbidden, ModelFailed, NotFound, UnprocessableInput
from arsenale.platform import Client
from arsenale.registry.contract import build_contract
from arsenale.serving.models import ModelRef
from arsenale.serving.runtime import InProcessExecutor, RequestDecoder, load_predictor, predictor_from_client

from .conftest import Fitted, register, row


def _decoder(fitted: Fitted) -> RequestDecoder:
    return RequestDecoder(build_contract(fitted.X, fitted.y, fitted.model))


def _rows(fitted: Fitted, n: int) -> list[dict[str, Any]]:
    return [row(fitted, i) for i in range(n)]


def test_every_body_shape_gives_the_models_predictions(cancer: Fitted) -> None:
    dec = _decoder(cancer)
    X = cancer.X.iloc[:5]
    v2_matrix = {"inputs": [{"name": "input-0", "shape": [5, 30], "datatype": "FP64",
                             "data": X.to_numpy().ravel().tolist()}]}
    v2_columns = {"inputs": [{"name": c, "shape": [5], "datatype": "FP32", "data": X[c].tolist()}
                             for c in X.columns]}
    bodies = [{"records": _rows(cancer, 5)}, {"columns": X.to_dict("list")}, v2_matrix, v2_columns]
    expected = cancer.model.predict_proba(X)[:, 1]
    for body in bodies:
        frame = dec.frame([dec.decode(body)])
        assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(X.columns)
        np.testing.assert_allclose(cancer.model.predict_proba(frame)[:, 1], expected)
    single = dec.frame([dec.decode(row(cancer, 3))])
    assert cancer.model.predict(single)[0] == cancer.model.predict(X.iloc[[3]])[0]


def test_batches_of_parts_keep_row_order(pets: Fitted) -> None:
    dec = _decoder(pets)
    parts = [dec.decode({"records": _rows(pets, 3)}),
             dec.decode({"columns": pets.X.iloc[3:7].to_dict("list")})]
    frame = dec.frame(parts)
    assert list(frame["color"]) == list(pets.X["color"].iloc[:7])
    assert frame["legs"].dtype == np.int64
    np.testing.assert_array_equal(pets.model.predict(frame), pets.model.predict(pets.X.iloc[:7]))
    assert dec.records_of(parts[1])[0] == row(pets, 3)


def _refused(dec: RequestDecoder, body: Any) -> UnprocessableInput:
    with pytest.raises(UnprocessableInput) as info:
        dec.decode(body)
    assert info.value.http_status == 422
    return info.value


def test_contract_violations_name_the_field(cancer: Fitted, pets: Fitted) -> None:
    dec = _decoder(pets)
    good = row(pets)
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "size"}, "size"),
        "unexpected": ({**good, "tail": 1.0}, "tail"),
        "string for number": ({**good, "size": "big"}, "size"),
        "float in int column": ({**good, "legs": 2.5}, "legs"),
        "bool for number": ({**good, "size": True}, "size"),
        "unknown category": ({**good, "color": "purple"}, "color"),
        "null": ({**good, "size": None}, "size"),
        "number for string": ({**good, "color": 3}, "color"),
    }
    for what, (body, field) in cases.items():
        err = _refused(dec, {"records": [good, body]})
        assert err.field == field, what
    assert "purple" in _refused(dec, {**good, "color": "purple"}).message
    assert _refused(dec, {"columns": {**pets.X.iloc[:2].to_dict("list"), "legs": [2]}}).field == "legs"
    cdec = _decoder(cancer)
    nan_row = {**row(cancer), "mean area": float("nan")}
    assert _refused(cdec, {"records": [nan_row]}).field == "mean area"
    assert _refused(cdec, {"records": [{**row(cancer), "mean area": "1"}]}).field == "mean area"


def test_v2_shape_and_datatype_are_checked(cancer: Fitted, pets: Fitted) -> None:
    dec = _decoder(cancer)
    data = cancer.X.iloc[:2].to_numpy().ravel().tolist()
    bad_shape = {"inputs": [{"name": "x", "shape": [2, 29], "datatype": "FP64", "data": data}]}
    assert _refused(dec, bad_shape).field == "x"
    bad_count = {"inputs": [{"name": "x", "shape": [3, 30], "datatype": "FP64", "data": data}]}
    assert "needs 90 values" in _refused(dec, bad_count).message
    bad_type = {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "BYTES", "data": data}]}
    assert "datatype" in _refused(dec, bad_type).message
    pdec = _decoder(pets)
    tensors = [{"name": "color", "shape": [1], "datatype": "BYTES", "data": ["red"]},
               {"name": "size", "shape": [1], "datatype": "FP64", "data": [9.5]},
               {"name": "legs", "shape": [1], "datatype": "INT64", "data": [4]}]
    assert pdec.decode({"inputs": tensors}).n == 1
    wrong = [*tensors[:2], {"name": "legs", "shape": [1], "datatype": "FP32", "data": [4.0]}]
    assert _refused(pdec, {"inputs": wrong}).field == "legs"
    extra = [*tensors, {"name": "tail", "shape": [1], "datatype": "FP32", "data": [4.0]}]
    assert _refused(pdec, {"inputs": extra}).field == "tail"


def test_values_outside_the_training_range_are_served(cancer: Fitted, pets: Fitted) -> None:
    dec = _decoder(cancer)
    far = {k: v * 1000 for k, v in row(cancer).items()}
    assert dec.decode(far).n == 1
    assert _decoder(pets).decode({**row(pets), "legs": 1000, "size": -1e9}).n == 1
    integral = _decoder(pets).decode({**row(pets), "legs": 3.0})  # JSON encoders that write 3.0
    assert integral.n == 1


def test_predictor_loads_a_registered_version_with_probabilities(local_store: Client, cancer: Fitted) -> None:
    version = register("cancer", cancer)
    ref = ModelRef(model="cancer", version=version)
    predictor = predictor_from_client(local_store, ref)
    dec = RequestDecoder(predictor.contract)
    frame = dec.frame([dec.decode({"records": _rows(cancer, 4)})])
    out = predictor.predict(frame)
    np.testing.assert_array_equal(out["predictions"], cancer.model.predict(cancer.X.iloc[:4]))
    np.testing.assert_allclose(out["probabilities"], cancer.model.predict_proba(cancer.X.iloc[:4])[:, 1])
    with pytest.raises(ModelFailed, match="infinity"):
        predictor.predict(frame.assign(**{"mean radius": math.inf}))
    again = predictor.predict(frame)  # a refused batch does not change how the next one is run
    np.testing.assert_array_equal(again["predictions"], out["predictions"])


def test_load_predictor_builds_its_own_client(local_store: Client, cancer: Fitted) -> None:
    version = register("cancer", cancer)
    from arsenale.config import get_settings

    settings = get_settings()
    predictor = load_predictor(settings.resolved_uri(), settings.resolved_artifacts(),
                               ModelRef(model="cancer", version=version))
    assert predictor.ref.key == f"cancer/{version}"


def test_stored_code_needs_trust(local_store: Client) -> None:
    from tests.registry.pyfunc_example import ThresholdModel

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = ThresholdModel([1.0, 1.0], 1.5)
    import arsenale as ars

    ars.register_model("threshold", model, signature_from=X)
    ref = ModelRef(model="threshold", version=1)
    with pytest.raises(Forbidden):
        predictor_from_client(local_store, ref)
    out = predictor_from_client(local_store, ref, trusted=True).predict(X)
    assert out["predictions"].tolist() == [0, 0, 1, 1] and out["probabilities"].shape == (4,)


def test_in_process_executor_loads_predicts_unloads(local_store: Client, cancer: Fitted) -> None:
    register("cancer", cancer)

    async def scenario() -> None:
        ex = InProcessExecutor(local_store)
        ref = ModelRef(model="cancer", version=1)
        await ex.load([ref])
        await ex.load([ref])  # idempotent
        out = await ex.predict(ref.key, cancer.X.iloc[:3])
        assert out["predictions"].tolist() == cancer.model.predict(cancer.X.iloc[:3]).tolist()
        assert ex.in_flight == 0
        ex.unload([ref.key])
        with pytest.raises(NotFound):
            await ex.predict(ref.key, cancer.X.iloc[:3])
        await ex.close()

    asyncio.run(scenario())
