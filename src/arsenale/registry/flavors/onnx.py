"""ONNX models: a graph, not code, so loading one is safe without `trusted`.

Saved as `model.onnx`; served by onnxruntime on the CPU provider. `predict(X)` feeds
X (a numpy array, a DataFrame's values or nested lists), cast to the dtype the first
input declares (float32 for skl2onnx models), and returns the first output — the label
for converted classifiers. `predict_proba` exists when the graph has a second output
named like probabilities; a ZipMap output (a list of {class: p} dicts) comes back as
an (n, classes) array. onnx and onnxruntime are optional and imported lazily.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from arsenale.errors import InvalidInput
from arsenale.registry.flavors.base import LoadedModel, check_folder, safe_member

FILE = "model.onnx"

_ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(string)": "object",
}


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise InvalidInput(f"the onnx flavor needs the `{module}` package: pip install onnx onnxruntime",
                           field="model") from None


def _parse_bytes(data: bytes) -> Any | None:
    """The ModelProto in `data`, or None when it is not a usable ONNX model."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        return None
    try:
        proto = onnx.load_model_from_string(bytes(data))
    except (DecodeError, ValueError, RuntimeError):
        return None
    if proto.ir_version <= 0 or not proto.graph.output:
        return None
    return proto


def _is_model_proto(model: object) -> bool:
    if "onnx" not in sys.modules:
        return False
    import onnx

    return isinstance(model, onnx.ModelProto)


class OnnxFlavor:
    name = "onnx"

    def can_save(self, model: object) -> bool:
        if _is_model_proto(model):
            return True
        if isinstance(model, (bytes, bytearray, memoryview)):
            return _parse_bytes(bytes(model)) is not None
        return False

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        onnx = _require("onnx")
        folder = check_folder(folder)
        proto: Any
        if isinstance(model, (bytes, bytearray, memoryview)):
            proto = _parse_bytes(bytes(model))
            if proto is None:
                raise InvalidInput("these bytes are not an ONNX model", field="model")
        elif _is_model_proto(model):
            proto = model
        else:
            raise InvalidInput(f"not an ONNX model: {type(model).__name__}", field="model")
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:
            raise InvalidInput(f"the ONNX model is invalid: {e}", field="model") from e
        (folder / FILE).write_bytes(proto.SerializeToString())
        return {
            "flavor": self.name,
            "format": "onnx",
            "file": FILE,
            "ir_version": int(proto.ir_version),
            "opsets": {op.domain or "ai.onnx": int(op.version) for op in proto.opset_import},
            "inputs": [i.name for i in proto.graph.input],
            "outputs": [o.name for o in proto.graph.output],
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "onnx_version": onnx.__version__,
        }

    def load(self, folder: Path, meta: dict[str, Any], *, trusted: bool) -> LoadedModel:
        ort = _require("onnxruntime")
        path = safe_member(check_folder(folder), meta.get("file", FILE))
        try:
            # From bytes, not the path: a graph cannot then pull "external data" from other files.
            session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph classes
            raise InvalidInput(f"onnxruntime cannot load {path.name}: {e}", field="model") from e
        first = session.get_inputs()[0]
        dtype = _ORT_DTYPES.get(first.type, "float32")
        rank = len(first.shape) if isinstance(first.shape, list) else None
        outputs = [o.name for o in session.get_outputs()]

        def run(X: Any, output: str) -> Any:
            feed = {first.name: _as_array(X, dtype, rank)}
            try:
                return session.run([output], feed)[0]
            except Exception as e:  # onnxruntime's InvalidArgument/Fail carry the useful message
                raise InvalidInput(f"the ONNX model rejected the input: {e}", field="X") from e

        def predict(X: Any) -> Any:
            return run(X, outputs[0])

        proba_name = next((o for o in outputs[1:] if "prob" in o.lower()), None)
        predict_proba = None
        if proba_name is not None:
            def predict_proba(X: Any) -> Any:
                return _dense_proba(run(X, proba_name))

        return LoadedModel(session, self.name, predict=predict, predict_proba=predict_proba, meta=meta)


def _as_array(X: Any, dtype: str, rank: int | None) -> Any:
    import numpy as np

    if hasattr(X, "to_numpy"):  # DataFrame or Series
        X = X.to_numpy()
    try:
        arr = np.asarray(X, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"input cannot be converted to {dtype}: {e}", field="X") from e
    if arr.ndim == 1 and rank == 2:  # one row given as a flat list
        arr = arr.reshape(1, -1)
    return arr


def _dense_proba(out: Any) -> Any:
    """ZipMap outputs a list of {class: probability} dicts; make it an (n, classes) array."""
    import numpy as np

    if isinstance(out, list) and (not out or isinstance(out[0], dict)):
        if not out:
            return np.empty((0, 0), dtype=np.float32)
        keys = list(out[0])
        return np.array([[row[k] for k in keys] for row in out], dtype=np.float32)
    return out


FLAVOR = OnnxFlavor()
