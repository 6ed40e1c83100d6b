"""Cache keys and safe serialization of step values.

A step's cache key is the BLAKE3 of
  - its code: the normalized source of the step function (parsed and unparsed, without decorators or
    docstring, so comments, formatting and docs do not count). The code of helper functions the step calls
    is NOT part of the key: change a helper and the step still hits its cache. Put code that changes in the
    step itself, change a param, or pass `cache=False`;
  - its param values (canonical JSON; a value JSON cannot hold counts by the digest of its serialization);
  - the content digest of each input (the digest of the serialized upstream output in the artifact store);
  - the serializer it declares.
The same graph and values therefore give the same keys on every executor.

Values are stored without pickle:

| value                                    | format  | bytes                               |
| ---------------------------------------- | ------- | ----------------------------------- |
| pandas DataFrame / Series                | parquet | Parquet (pyarrow)                   |
| pyarrow Table                            | arrow   | Parquet                             |
| numpy array (not of objects)             | npy     | .npy, loaded with allow_pickle=False |
| None, bool, int, float, str, list, dict  | json    | JSON (tuples come back as lists)    |
| scikit-learn estimator                   | skops   | skops, via the registry's sklearn flavor |
| anything else, if the step says so       | pickle  | pickle: `serializer="trusted-pickle"` |

Anything else is refused with an error naming its type.
"""

from __future__ import annotations

import ast
import io
import json
import marshal
import math
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import blake3

from arsenale.errors import Forbidden, InvalidInput

__all__ = ["CACHE_VERSION", "cache_key", "code_hash", "deserialize", "is_json_value", "serialize"]

CACHE_VERSION = 1
FORMATS = ("parquet", "parquet-series", "arrow", "npy", "json", "skops", "pickle")


class Unserializable(InvalidInput):
    """A step returned a value no safe format holds."""


# ---- code ------------------------------------------------------------------------------------------------


def code_hash(func: Any) -> str:
    """BLAKE3 of the function's normalized source (falls back to its bytecode when there is no source)."""
    import inspect

    func = inspect.unwrap(func)
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
        fn = tree.body[0]
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn.decorator_list = []
            body = fn.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                fn.body = body[1:] or [ast.Pass()]
        text = ast.unparse(tree)
    except (OSError, TypeError, SyntaxError, IndexError):
        text = "bytecode:" + marshal.dumps(func.__code__.co_code).hex()
    return blake3.blake3(text.encode()).hexdigest()


# ---- values ----------------------------------------------------------------------------------------------


def is_json_value(value: Any, _depth: int = 0) -> bool:
    """True for values JSON round-trips (tuples count, as lists; dict keys must be strings)."""
    if _depth > 100:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return True
    if type(value) in (list, tuple):
        return all(is_json_value(v, _depth + 1) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and is_json_value(v, _depth + 1) for k, v in value.items())
    return False


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def serialize(value: Any, serializer: str = "safe") -> tuple[bytes, str]:
    """(bytes, format) for `value`; `Unserializable` naming the type when no safe format fits."""
    mods = sys.modules
    if "pandas" in mods:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return _parquet_frame(value), "parquet"
        if isinstance(value, pd.Series):
            name = value.name if value.name is not None else "__series__"
            return _parquet_frame(value.to_frame(name=name)), "parquet-series"
    if "pyarrow" in mods:
        import pyarrow as pa

        if isinstance(value, pa.Table):
            import pyarrow.parquet as pq

            buf = io.BytesIO()
            pq.write_table(value, buf)
            return buf.getvalue(), "arrow"
    if "numpy" in mods:
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype != object:
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            return buf.getvalue(), "npy"
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return canonical_json(value.item()).encode(), "json"
    if is_json_value(value):
        return canonical_json(value).encode(), "json"
    from arsenale.registry.flavors.sklearn import FLAVOR as SKLEARN

    if SKLEARN.can_save(value):
        with tempfile.TemporaryDirectory(prefix="ars-skops-") as tmp:
            SKLEARN.save(value, Path(tmp))
            return _canonical_skops((Path(tmp) / "model.skops").read_bytes()), "skops"
    if serializer == "trusted-pickle":
        import pickle

        return pickle.dumps(value, protocol=5), "pickle"
    raise Unserializable(
        f"cannot store a value of type {_type_name(value)} safely: steps return pandas/pyarrow tables, numpy "
        "arrays, JSON values or scikit-learn estimators; declare @step(serializer=\"trusted-pickle\") to pickle "
        "it", field="output")


def _canonical_skops(data: bytes) -> bytes:
    """The same skops file with object ids renumbered in order of appearance and fixed zip timestamps.

    skops names members and memo entries by `id()` of the saved objects and stamps the current time, so the
    same model would give different bytes (and downstream cache keys) in every process. Renumbering keeps the
    references consistent, so the file loads exactly as before."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    ids: dict[str, str] = {}

    def new_id(old: str) -> str:
        return ids.setdefault(old, str(len(ids)))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "__id__" and isinstance(v, int):
                    out[k] = int(new_id(str(v)))
                elif k == "file" and isinstance(v, str) and v.endswith(".npy") and v[:-4].isdigit():
                    out[k] = new_id(v[:-4]) + ".npy"
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        members = []
        for info in src.infolist():
            name = info.filename
            if name.endswith(".npy") and name[:-4].isdigit():
                name = new_id(name[:-4]) + ".npy"
            body = json.dumps(schema, indent=2).encode() if name == "schema.json" else src.read(info.filename)
            members.append((name, info.compress_type, body))
        for name, compress, body in sorted(members):
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = compress
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, body)
    return buf.getvalue()


def _parquet_frame(df: Any) -> bytes:
    buf = io.BytesIO()
    try:
        df.to_parquet(buf)
    except Exception as exc:  # pyarrow refuses object columns of mixed types, non-string column names, ...
        raise Unserializable(f"cannot store this pandas {type(df).__name__} as Parquet: {exc}",
                             field="output") from exc
    return buf.getvalue()


def deserialize(data: bytes, fmt: str, *, trusted: bool = False) -> Any:
    """The value `serialize` stored; pickle only when `trusted` (the producing step declared it)."""
    if fmt in ("parquet", "parquet-series"):
        import pandas as pd

        df = pd.read_parquet(io.BytesIO(data))
        if fmt == "parquet-series":
            s = df.iloc[:, 0]
            return s.rename(None) if s.name == "__series__" else s
        return df
    if fmt == "arrow":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "json":
        return json.loads(data)
    if fmt == "skops":
        from arsenale.registry.flavors.sklearn import FILE
        from arsenale.registry.flavors.sklearn import FLAVOR as SKLEARN

        with tempfile.TemporaryDirectory(prefix="ars-skops-") as tmp:
            (Path(tmp) / FILE).write_bytes(data)
            return SKLEARN.load(Path(tmp), {"file": FILE}, trusted=trusted).raw
    if fmt == "pickle":
        if not trusted:
            raise Forbidden("refusing to unpickle a step output: only steps declaring "
                            "serializer=\"trusted-pickle\" may read pickled values")
        import pickle

        return pickle.loads(data)
    raise InvalidInput(f"unknown stored value format {fmt!r}", field="format")


def param_token(value: Any, serializer: str = "safe") -> Any:
    """What a param contributes to the key: itself when JSON holds it, else the digest of its bytes."""
    if is_json_value(value) and not (isinstance(value, float) and not math.isfinite(value)):
        return value
    data, fmt = serialize(value, serializer)
    return {"$digest": blake3.blake3(data).hexdigest(), "$format": fmt}


def cache_key(code: str, params: dict[str, Any], inputs: dict[str, str], serializer: str) -> str:
    """BLAKE3 of code hash, param tokens and input digests (see the module docstring)."""
    doc = {"v": CACHE_VERSION, "code": code, "params": params, "inputs": inputs, "serializer": serializer}
    return blake3.blake3(canonical_json(doc).encode()).hexdigest()
