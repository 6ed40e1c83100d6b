"""Cache keys from normalized code, params and input digests; safe serialization with no pickle by default."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arsenale.errors import Forbidden
from arsenale.pipelines.cache import Unserializable, cache_key, code_hash, deserialize, serialize
from tests.pipelines.example_pipelines import Opaque


def load_module(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_code_hash_ignores_comments_formatting_docstrings_and_decorators(tmp_path: Path) -> None:
    a = load_module(tmp_path, "ars_code_a", "def f(x):\n    return x + 1\n")
    b = load_module(tmp_path, "ars_code_b", "import functools\n\n@functools.lru_cache\ndef f(x):\n"
                                            "    '''Add one.'''\n    # a comment\n    return (x +\n        1)\n")
    c = load_module(tmp_path, "ars_code_c", "def f(x):\n    return x + 2\n")
    assert code_hash(a.f) == code_hash(b.f)
    assert code_hash(a.f) != code_hash(c.f)


def test_cache_key_depends_on_code_params_inputs_and_serializer() -> None:
    base = cache_key("c" * 64, {"C": 1.0}, {"x": "d" * 64}, "safe")
    assert base == cache_key("c" * 64, {"C": 1.0}, {"x": "d" * 64}, "safe")
    assert len({base, cache_key("e" * 64, {"C": 1.0}, {"x": "d" * 64}, "safe"),
                cache_key("c" * 64, {"C": 0.5}, {"x": "d" * 64}, "safe"),
                cache_key("c" * 64, {"C": 1.0}, {"x": "f" * 64}, "safe"),
                cache_key("c" * 64, {"C": 1.0}, {"x": "d" * 64}, "trusted-pickle")}) == 5


def test_safe_formats_round_trip() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    data, fmt = serialize(df)
    assert fmt == "parquet" and data[:4] == b"PAR1"
    pd.testing.assert_frame_equal(deserialize(data, fmt), df)
    s = pd.Series([1.5, 2.5], name="amount")
    pd.testing.assert_series_equal(deserialize(*serialize(s)), s)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    data, fmt = serialize(arr)
    assert fmt == "npy"
    np.testing.assert_array_equal(deserialize(data, fmt), arr)
    table = pa.table({"a": [1, 2]})
    assert deserialize(*serialize(table)).equals(table)
    assert deserialize(*serialize({"k": [1, 2.5, None, "s"]})) == {"k": [1, 2.5, None, "s"]}
    assert serialize(np.float64(0.25)) == (b"0.25", "json")


def test_scikit_learn_estimators_are_stored_with_skops() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    data, fmt = serialize(model)
    assert fmt == "skops" and data[:2] == b"PK"
    back = deserialize(data, fmt)
    assert back.predict([[0.2], [2.8]]).tolist() == [0, 1]


def test_unsafe_values_are_refused_with_their_type() -> None:
    with pytest.raises(Unserializable, match="tests.pipelines.example_pipelines.Opaque"):
        serialize(Opaque(1))
    with pytest.raises(Unserializable, match="numpy.ndarray|cannot store"):
        serialize(np.array([Opaque(1)], dtype=object))
    with pytest.raises(Unserializable, match="set"):
        serialize({1, 2})


def test_pickle_only_when_trusted() -> None:
    data, fmt = serialize(Opaque(3), "trusted-pickle")
    assert fmt == "pickle"
    with pytest.raises(Forbidden, match="refusing to unpickle"):
        deserialize(data, fmt)
    assert deserialize(data, fmt, trusted=True).value == 3


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)


@given(json_values)
def test_json_values_round_trip_and_serialize_deterministically(value: object) -> None:
    data, fmt = serialize(value)
    assert fmt == "json"
    assert deserialize(data, fmt) == value
    assert serialize(value)[0] == data


def test_skops_bytes_are_the_same_in_every_process() -> None:
    """skops names members by id(); the stored bytes (and so downstream cache keys) must not depend on that."""
    import subprocess

    code = ("import sys, blake3; from sklearn.linear_model import LogisticRegression; "
            "from arsenale.pipelines.cache import serialize; "
            "m = LogisticRegression(C=0.5).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]); "
            "print(blake3.blake3(serialize(m)[0]).hexdigest())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=env).stdout.strip() for _ in range(2)}
    assert len(digests) == 1
