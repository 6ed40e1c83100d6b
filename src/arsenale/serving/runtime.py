"""Loaded model versions, the in-process executor, and the request decoder compiled from a contract.

The decoder is the hot path of every inference request. Pandas per request would cost more than the
model call itself for one row, so each contract is compiled once into plain-Python type checks per
column and one numpy conversion per request; pandas is touched once per *batch*, only to build the
frame a model fitted on named columns expects. Values outside the training range pass: monitoring
counts them, refusing them would turn drift into an outage.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from arsenale.errors import ArsenaleError, ModelFailed, NotFound, UnprocessableInput
from arsenale.registry.contract import ColumnSchema, Contract
from arsenale.serving.executor import Predictor
from arsenale.serving.models import ModelRef

if TYPE_CHECKING:
    from arsenale.platform import Client

__all__ = ["InProcessExecutor", "ModelPredictor", "Part", "RequestDecoder", "load_predictor",
           "predictor_from_client", "v2_datatype"]

# ---------------------------------------------------------------- loading


class ModelPredictor:
    """A loaded version with one output convention: predictions, plus P(class 1) for binary classifiers."""

    def __init__(self, ref: ModelRef, model: Any, contract: Contract) -> None:
        self.ref = ref
        self.model = model
        self.contract = contract
        self._proba: Callable[[Any], Any] | None = None
        try:
            proba = model.predict_proba
        except AttributeError:
            proba = None
        classes = getattr(getattr(model, "raw", model), "classes_", None)
        # Only two-class models get a probability column: "P(class 1)" means nothing for three classes.
        if callable(proba) and (classes is None or len(classes) == 2):
            self._proba = proba
        self._as_array = _takes_array(getattr(model, "raw", model), contract)

    def predict(self, frame: Any) -> dict[str, Any]:
        if self._as_array and type(frame).__name__ == "DataFrame":
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_NO_NAMES, category=UserWarning)
                    return self._predict(frame.to_numpy())
            except ModelFailed:
                out = self._predict(frame)  # raises too when the input itself is what the model refuses
                self._as_array = False  # the model needs its DataFrame after all (it selects columns by name)
                return out
        return self._predict(frame)

    def _predict(self, X: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = {"predictions": np.asarray(self.model.predict(X))}
            if self._proba is not None:
                p = np.asarray(self._proba(X))
                if p.ndim == 2 and p.shape[1] == 2:
                    out["probabilities"] = p[:, 1]
                else:
                    self._proba = None
        except ArsenaleError:
            raise
        except Exception as e:  # the user's model: any failure is the model's, reported with its message
            raise ModelFailed(f"{self.ref.key} failed: {type(e).__name__}: {e}") from e
        return out


_NO_NAMES = "X does not have valid feature names"


def _takes_array(raw: Any, contract: Contract) -> bool:
    """Whether a scikit-learn model fitted on an all-float DataFrame can be given the bare array.

    Its input checks cost several times more on a DataFrame than on an array (a millisecond or more per
    call, whatever the rows), and the array holds the same values in the order the model was fitted on
    (the contract's), so the answer is identical. Only the "no feature names" warning has to be silenced."""
    names = getattr(raw, "feature_names_in_", None)
    schema = contract.inputs
    if names is None or schema is None or schema.kind != "dataframe":
        return False
    return list(names) == schema.names and all(c.dtype == "float" and c.shape is None for c in schema.columns)


def predictor_from_client(client: Client, ref: ModelRef, trusted: bool = False) -> ModelPredictor:
    """Download (verified, cached by content) and load one version with its flavor."""
    from arsenale.registry.flavors import get_flavor
    from arsenale.registry.fluent import _cache_dir

    mv = client.registry.get_version(ref.model, ref.version)
    folder = client.registry.download_version(mv.name, mv.version, _cache_dir(mv))
    model = get_flavor(mv.flavor).load(folder, mv.flavor_meta, trusted=trusted)
    return ModelPredictor(ref, model, Contract.model_validate(mv.contract or {}))


def load_predictor(uri: str, artifacts: str | None, ref: ModelRef, trusted: bool = False) -> Predictor:
    """The entry point of model worker processes: a client of their own, then the version loaded."""
    from arsenale.platform import Client

    return predictor_from_client(Client(uri, artifacts=artifacts), ref, trusted)


class InProcessExecutor:
    """Runs model calls in the server process: no serialisation, the lowest latency.

    A call shorter than the interpreter's GIL switch interval (5 ms) runs on the event loop: in a thread
    it would hold the GIL just as long, so the loop would read no more requests meanwhile, and the
    hand-off would add its own cost and up to a switch interval of latency. Measured on a 1-row
    logistic regression: inline is about twice the throughput. Slower models go to a thread, where
    numpy and native code release the GIL often enough for the loop to queue the next batch."""

    def __init__(self, client: Client, *, trusted: bool = False, inline_below_ms: float | None = None,
                 loader: Callable[[ModelRef], Predictor] | None = None) -> None:
        self._loader = loader or (lambda ref: predictor_from_client(client, ref, trusted))
        self._predictors: dict[str, Predictor] = {}
        self._ewma_ms: dict[str, float] = {}
        self._inline_below_ms = sys.getswitchinterval() * 1000 if inline_below_ms is None else inline_below_ms
        self._in_flight = 0
        self._lock = asyncio.Lock()

    async def load(self, refs: list[ModelRef]) -> None:
        async with self._lock:
            for ref in refs:
                if ref.key not in self._predictors:
                    self._predictors[ref.key] = await asyncio.to_thread(self._loader, ref)

    def unload(self, keys: list[str]) -> None:
        for key in keys:
            self._predictors.pop(key, None)
            self._ewma_ms.pop(key, None)

    def predictor(self, key: str) -> Predictor:
        try:
            return self._predictors[key]
        except KeyError:
            raise NotFound(f"model version {key} is not loaded", field="model") from None

    async def predict(self, key: str, frame: Any) -> dict[str, Any]:
        predictor = self.predictor(key)
        ewma = self._ewma_ms.get(key, 0.0)
        self._in_flight += 1
        try:
            start = time.perf_counter()
            if ewma < self._inline_below_ms:
                out = _call(predictor, frame)
            else:
                out = await asyncio.to_thread(_call, predictor, frame)
            ms = (time.perf_counter() - start) * 1000
            self._ewma_ms[key] = ms if key not in self._ewma_ms else 0.8 * ewma + 0.2 * ms
            return out
        finally:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def close(self) -> None:
        self._predictors.clear()


def _call(predictor: Predictor, frame: Any) -> dict[str, Any]:
    try:
        return predictor.predict(frame)
    except ArsenaleError:
        raise
    except Exception as e:  # a Predictor that does not wrap its own failures
        raise ModelFailed(f"{predictor.ref.key} failed: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------- decoding

_V2_KIND = {"BOOL": "bool", "UINT8": "int", "UINT16": "int", "UINT32": "int", "UINT64": "int", "INT8": "int",
            "INT16": "int", "INT32": "int", "INT64": "int", "FP16": "float", "FP32": "float", "FP64": "float",
            "BYTES": "bytes"}
_ACCEPTS = {"float": {"int", "float"}, "int": {"int"}, "bool": {"bool"}, "string": {"bytes"},
            "category": {"bytes"}, "datetime": {"bytes"}}
_V2_OF = {"float": "FP64", "int": "INT64", "bool": "BOOL", "string": "BYTES", "category": "BYTES",
          "datetime": "BYTES"}
_NUMBER = frozenset({int, float})
_NONE = type(None)
_FORMAT_KEYS = frozenset({"records", "columns", "inputs", "parameters", "id", "outputs"})


def v2_datatype(dtype: str | np.dtype[Any]) -> str:
    """The Open Inference Protocol datatype of a contract dtype or a numpy dtype."""
    if isinstance(dtype, str):
        return _V2_OF.get(dtype, "BYTES")
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "iu":
        return f"{'U' if dtype.kind == 'u' else ''}INT{dtype.itemsize * 8}"
    if dtype.kind == "f":
        return f"FP{dtype.itemsize * 8}"
    return "BYTES"


@dataclass(slots=True)
class Part:
    """One request's validated rows: a float block (rows × columns) or one array per column."""

    n: int
    block: np.ndarray | None = None
    columns: list[np.ndarray] | None = None
    records: list[dict[str, Any]] | None = None  # the rows as sent, when they came as records


def _bad(message: str, field: str) -> UnprocessableInput:
    return UnprocessableInput(message, field=field)


def _example(values: Any, pred: Callable[[Any], bool]) -> Any:
    return next((v for v in values if pred(v)), None)


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class _Column:
    """The checks and conversion of one contract column, decided once."""

    def __init__(self, col: ColumnSchema) -> None:
        self.name = col.name
        self.dtype = col.dtype
        self.nullable = col.nullable
        self.categories = frozenset(col.categories) if col.categories is not None else None
        self.category_list = list(col.categories) if col.categories is not None else None
        allowed: dict[str, frozenset[type]] = {
            "float": _NUMBER, "int": frozenset({int}), "bool": frozenset({bool}), "string": frozenset({str}),
            "category": frozenset({str}), "datetime": frozenset({str})}
        self.allowed = allowed[col.dtype] | ({_NONE} if col.nullable else frozenset())

    def convert(self, values: Sequence[Any]) -> np.ndarray:
        types = set(map(type, values))
        if not types <= self.allowed:
            self._type_error(values, types)
        if self.dtype == "float":
            arr = np.array(values, dtype="float64")
            if not self.nullable and np.isnan(arr).any():
                raise _bad(f"column {self.name!r}: NaN, but it is not nullable", self.name)
            return arr
        if self.dtype == "int":
            if _NONE in types:
                return np.array(values, dtype="float64")
            try:
                return np.array(values, dtype="int64")
            except OverflowError:
                raise _bad(f"column {self.name!r}: an integer does not fit in 64 bits", self.name) from None
        if self.dtype == "bool":
            return np.array(values, dtype="bool" if _NONE not in types else object)
        if self.dtype == "datetime":
            return self._datetimes(values)
        if self.categories is not None:
            unknown = set(values) - self.categories - {None}
            if unknown:
                raise _bad(f"column {self.name!r}: {sorted(unknown)[0]!r} is not one of the categories "
                           f"seen in training ({', '.join(map(repr, self.category_list or []))})", self.name)
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr

    def _type_error(self, values: Sequence[Any], types: set[type]) -> None:
        if _NONE in types and not self.nullable:
            raise _bad(f"column {self.name!r}: null, but it is not nullable", self.name)
        if self.dtype == "int" and float in types and types <= {int, float, _NONE}:
            frac = _example(values, lambda v: isinstance(v, float) and not (math.isfinite(v) and v == int(v)))
            if frac is None:  # 3.0 is an integer written by a JSON encoder that knows only doubles
                return
            raise _bad(f"column {self.name!r}: expected int, got the float {frac!r}", self.name)
        wrong = _example(values, lambda v: type(v) not in self.allowed)
        raise _bad(f"column {self.name!r}: expected {self.dtype}, got {type(wrong).__name__} ({wrong!r})",
                   self.name)

    def _datetimes(self, values: Sequence[Any]) -> np.ndarray:
        import pandas as pd

        try:
            parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
        except (TypeError, ValueError) as e:
            raise _bad(f"column {self.name!r}: expected ISO timestamps ({e})", self.name) from None
        return parsed.dt.tz_localize(None).to_numpy()


class RequestDecoder:
    """Turns a parsed JSON body into validated rows, and batches of rows into the model's input frame.

    Accepted bodies: `{"records": [{...}, ...]}`, `{"columns": {"a": [...], ...}}`, a single record
    `{...}`, and the Open Inference Protocol V2 `{"inputs": [{"name", "shape", "datatype", "data"}]}`
    with one tensor per column or one tensor holding the whole input."""

    def __init__(self, contract: Contract | None) -> None:
        schema = contract.inputs if contract is not None else None
        self.schema = schema
        self.names: list[str] = schema.names if schema is not None else []
        self.k = len(self.names)
        self.dataframe = schema is not None and schema.kind == "dataframe"
        self.tensor: list[int | None] | None = None
        if schema is not None and schema.columns and schema.columns[0].shape is not None:
            self.tensor = list(schema.columns[0].shape)
        self.columns = [_Column(c) for c in schema.columns] if schema is not None else []
        self.by_name = {c.name: c for c in self.columns}
        # All-float inputs (the common case) are checked and converted as one block.
        self.fast = bool(self.columns) and self.tensor is None and all(c.dtype == "float"
                                                                        for c in self.columns)
        self.fast_allowed = _NUMBER | ({_NONE} if any(c.nullable for c in self.columns) else frozenset())
        self.not_nullable = np.array([not c.nullable for c in self.columns], dtype=bool)
        get: Any = itemgetter(*self.names) if self.names else (lambda r: ())
        self._row: Callable[[Mapping[str, Any]], Any] = (lambda r: (get(r),)) if self.k == 1 else get
        self.signature = schema.model_dump_json() if schema is not None else ""
        self._index: Any = None

    # ---- body → Part

    def decode(self, body: Any) -> Part:
        if self.schema is None:
            return self._untyped(body)
        if not isinstance(body, dict):
            if isinstance(body, list):
                return self.records(body, "body")
            raise _bad("the body must be a JSON object: {\"records\": [...]}, {\"columns\": {...}}, a single "
                       "record, or an inference request with \"inputs\"", "body")
        if "inputs" in body and "inputs" not in self.by_name:
            return self.v2(body["inputs"])
        if "records" in body and "records" not in self.by_name:
            records = body["records"]
            if not isinstance(records, list):
                raise _bad("records must be a list of objects", "records")
            return self.records(records, "records")
        if "columns" in body and "columns" not in self.by_name:
            columns = body["columns"]
            if not isinstance(columns, dict):
                raise _bad("columns must be an object mapping each column to its values", "columns")
            return self.from_columns(columns)
        record = body if not (body.keys() & _FORMAT_KEYS) else {k: v for k, v in body.items()
                                                                if k not in _FORMAT_KEYS or k in self.by_name}
        return self.records([record], "body")

    def records(self, records: list[Any], field: str) -> Part:
        if not records:
            raise _bad(f"{field} holds no rows", field)
        if self.tensor is not None:
            try:
                return self.from_columns({n: [r[n] for r in records] for n in self.names})
            except (KeyError, TypeError):
                pass  # fall through to the precise message below
        try:
            rows = list(map(self._row, records))
        except KeyError as e:
            raise _bad(f"missing column {e.args[0]!r}", str(e.args[0])) from None
        except TypeError:
            raise _bad(f"{field} must be a list of objects, one per row", field) from None
        k = self.k
        for rec in records:
            if len(rec) != k:
                extra = next(name for name in rec if name not in self.by_name)
                raise _bad(f"unexpected column {extra!r}", str(extra))
        if self.fast and set(map(type, chain.from_iterable(rows))) <= self.fast_allowed:
            block = np.array(rows, dtype="float64")
            self._check_nan(block)
            return Part(len(rows), block=block, records=records)
        part = self._slow(list(zip(*rows)), len(rows))
        part.records = records
        return part

    def from_columns(self, columns: Mapping[str, Any]) -> Part:
        for name in self.names:
            if name not in columns:
                raise _bad(f"missing column {name!r}", name)
        if len(columns) != self.k:
            extra = next(name for name in columns if name not in self.by_name)
            raise _bad(f"unexpected column {extra!r}", str(extra))
        values = [columns[name] for name in self.names]
        if self.tensor is not None:
            return self._tensor(values[0], self.names[0])
        n = None
        for name, vals in zip(self.names, values):
            if not isinstance(vals, list):
                raise _bad(f"column {name!r} must be a list of values", name)
            if n is None:
                n = len(vals)
            elif len(vals) != n:
                raise _bad(f"column {name!r} has {len(vals)} values, the others {n}", name)
        if not n:
            raise _bad("columns hold no rows", "columns")
        if self.fast and set(chain.from_iterable(map(lambda v: map(type, v), values))) <= self.fast_allowed:
            block = np.array(values, dtype="float64").T
            self._check_nan(block)
            return Part(n, block=block)
        return self._slow(values, n)

    def v2(self, inputs: Any) -> Part:
        if not isinstance(inputs, list) or not inputs:
            raise _bad("inputs must be a non-empty list of tensors", "inputs")
        tensors = []
        for i, t in enumerate(inputs):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise _bad(f"inputs[{i}] must be a tensor with a name, shape, datatype and data",
                           f"inputs[{i}]")
            tensors.append(t)
        if len(tensors) == 1 and (tensors[0]["name"] not in self.by_name or self.k == 1 and self.tensor):
            return self._v2_whole(tensors[0])
        columns: dict[str, Any] = {}
        n = None
        for t in tensors:
            name = t["name"]
            col = self.by_name.get(name)
            if col is None:
                raise _bad(f"unexpected input tensor {name!r}", name)
            data, shape = self._v2_data(t, name, {col.dtype})
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise _bad(f"tensor {name!r}: shape {shape} is not [rows] or [rows, 1]", name)
            if n is not None and shape[0] != n:
                raise _bad(f"tensor {name!r}: {shape[0]} rows, the others {n}", name)
            n = shape[0]
            columns[name] = data
        return self.from_columns(columns)

    def _v2_whole(self, t: dict[str, Any]) -> Part:
        name = t["name"]
        data, shape = self._v2_data(t, name, {c.dtype for c in self.columns})
        if self.tensor is not None:
            want = self.tensor
            if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want[1:], shape[1:])):
                raise _bad(f"tensor {name!r}: shape {shape} does not match "
                           f"{['*' if w is None else w for w in want]}", name)
            return self._tensor(np.asarray(data).reshape(shape).tolist(), name)
        if len(shape) != 2 or shape[1] != self.k:
            order = f"{self.names[:5]}{'…' if self.k > 5 else ''}"
            raise _bad(f"tensor {name!r}: shape {shape} is not [rows, {self.k}] (one value per column, in "
                       f"the order {order})", name)
        return self.from_columns({c: data[j::self.k] for j, c in enumerate(self.names)})

    def _v2_data(self, t: dict[str, Any], name: str, dtypes: set[str]) -> tuple[list[Any], list[int]]:
        datatype, shape, data = t.get("datatype"), t.get("shape"), t.get("data")
        kind = _V2_KIND.get(datatype) if isinstance(datatype, str) else None
        if kind is None:
            raise _bad(f"tensor {name!r}: unknown datatype {datatype!r}", name)
        bad = [d for d in dtypes if kind not in _ACCEPTS[d]]
        if bad:
            raise _bad(f"tensor {name!r}: datatype {datatype} cannot carry {bad[0]} values", name)
        if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and not isinstance(s, bool)
                                                               and s >= 0 for s in shape):
            raise _bad(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}", name)
        if not isinstance(data, list):
            raise _bad(f"tensor {name!r}: data must be a list", name)
        if data and isinstance(data[0], list):
            try:
                data = np.asarray(data, dtype=object).reshape(-1).tolist()
            except ValueError:
                raise _bad(f"tensor {name!r}: data is not rectangular", name) from None
        if len(data) != math.prod(shape):
            raise _bad(f"tensor {name!r}: shape {shape} needs {math.prod(shape)} values, the data has "
                       f"{len(data)}", name)
        return data, shape

    # ---- helpers

    def _check_nan(self, block: np.ndarray) -> None:
        nan = np.isnan(block)
        if nan.any():
            cols = nan.any(axis=0) & self.not_nullable
            if cols.any():
                name = self.names[int(np.flatnonzero(cols)[0])]
                raise _bad(f"column {name!r}: null or NaN, but it is not nullable", name)

    def _slow(self, values: Sequence[Sequence[Any]], n: int) -> Part:
        return Part(n, columns=[col.convert(v) for col, v in zip(self.columns, values)])

    def _tensor(self, data: Any, field: str) -> Part:
        assert self.tensor is not None
        col = self.columns[0]
        try:
            arr = np.asarray(data)
        except ValueError:
            raise _bad(f"{field}: not a rectangular array", field) from None
        want = self.tensor
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], arr.shape[1:])):
            expected = ["*" if w is None else w for w in want]
            raise _bad(f"{field}: shape {list(arr.shape)} does not match {expected}", field)
        if col.dtype in ("float", "int") and arr.dtype.kind not in "iuf":
            raise _bad(f"{field}: expected {col.dtype} values, got {arr.dtype}", field)
        if col.dtype == "int" and arr.dtype.kind == "f":
            raise _bad(f"{field}: expected int values, got floats", field)
        if arr.dtype.kind == "f" and not col.nullable and np.isnan(arr).any():
            raise _bad(f"{field}: NaN, but it is not nullable", field)
        return Part(int(arr.shape[0]), block=arr)

    def _untyped(self, body: Any) -> Part:
        """A model registered without data has no contract: pass records through as a frame."""
        import pandas as pd

        if isinstance(body, dict) and "records" in body:
            body = body["records"]
        elif isinstance(body, dict) and "columns" in body:
            body = pd.DataFrame(body["columns"]).to_dict("records")
        elif isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not body:
            raise _bad("expected records", "records")
        arr = np.empty(len(body), dtype=object)
        arr[:] = body
        return Part(len(body), columns=[arr])

    # ---- batch of Parts → frame

    def frame(self, parts: Sequence[Part]) -> Any:
        """The input the model was fitted on: a DataFrame with the contract's columns, or an array."""
        if self.schema is None:
            import pandas as pd

            return pd.DataFrame([r for p in parts for r in p.columns[0]])  # type: ignore[index]
        if parts[0].block is not None and all(p.block is not None for p in parts):
            blocks: list[np.ndarray] = [p.block for p in parts]  # type: ignore[misc]
            block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
            if self.tensor is not None:
                return block
            return self._frame_from_block(block)
        columns = []
        for j in range(self.k):
            pieces = [p.block[:, j] if p.block is not None else p.columns[j]  # type: ignore[index]
                      for p in parts]
            columns.append(pieces[0] if len(pieces) == 1 else np.concatenate(pieces))
        if not self.dataframe:
            return np.column_stack(columns)
        import pandas as pd

        data = {}
        for col, arr in zip(self.columns, columns):
            if col.dtype == "category" and col.category_list is not None:
                data[col.name] = pd.Categorical(arr, categories=col.category_list)
            else:
                data[col.name] = arr
        return pd.DataFrame(data, copy=False)

    def _frame_from_block(self, block: np.ndarray) -> Any:
        if not self.dataframe:
            return block
        import pandas as pd

        if self._index is None:
            self._index = pd.Index(self.names)
        # A ready Index: building one from the list of names costs ten times more than the frame itself.
        return pd.DataFrame(block, columns=self._index, copy=False)

    def records_of(self, part: Part) -> list[dict[str, Any]]:
        """The rows as records, for the inference log."""
        if part.records is not None:
            return part.records
        if self.schema is None:
            return list(part.columns[0])  # type: ignore[index]
        if self.tensor is not None:
            return [{self.names[0]: row} for row in part.block.tolist()]  # type: ignore[union-attr]
        if part.block is not None:
            return [dict(zip(self.names, row)) for row in part.block.tolist()]
        columns: list[np.ndarray] = part.columns or []
        cols = [c.tolist() if c.dtype != object else list(c) for c in columns]
        return [dict(zip(self.names, row)) for row in zip(*cols)]
