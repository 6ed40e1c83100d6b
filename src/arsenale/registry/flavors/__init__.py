"""How models are saved to a folder and loaded back, safely.

    flavor = flavor_for(model)              # sklearn, onnx or pyfunc
    meta = flavor.save(model, folder)       # files in folder + a small JSON-able dict
    loaded = get_flavor(meta["flavor"]).load(folder, meta, trusted=False)
    loaded.predict(X)

| flavor  | files                          | loads without trusted=True            |
| ------- | ------------------------------ | ------------------------------------- |
| sklearn | model.skops                    | yes, if it uses only allowlisted classes |
| onnx    | model.onnx                     | yes (a graph, not code)               |
| pyfunc  | code/<module>.py, data.skops   | never: it runs stored Python code     |
| pickle  | model.pkl (load only, legacy)  | never                                 |
"""

from __future__ import annotations

from arsenale.errors import InvalidInput
from arsenale.registry.flavors.base import Flavor, LoadedModel
from arsenale.registry.flavors.onnx import FLAVOR as _ONNX
from arsenale.registry.flavors.pickle import FLAVOR as _PICKLE
from arsenale.registry.flavors.pyfunc import FLAVOR as _PYFUNC
from arsenale.registry.flavors.sklearn import FLAVOR as _SKLEARN

__all__ = ["FLAVORS", "Flavor", "LoadedModel", "flavor_for", "get_flavor"]

FLAVORS: dict[str, Flavor] = {f.name: f for f in (_SKLEARN, _ONNX, _PYFUNC, _PICKLE)}

# The order matters: a scikit-learn estimator also has a callable predict.
_SAVE_ORDER: tuple[Flavor, ...] = (_SKLEARN, _ONNX, _PYFUNC)


def flavor_for(model: object) -> Flavor:
    """The flavor that stores `model`: sklearn estimators and pipelines, ONNX models
    (a `onnx.ModelProto` or its bytes), or pyfunc for any other object with `predict`."""
    for flavor in _SAVE_ORDER:
        if flavor.can_save(model):
            return flavor
    raise InvalidInput(
        f"cannot store a {type(model).__module__}.{type(model).__qualname__}: expected a scikit-learn "
        "estimator, an ONNX model (onnx.ModelProto or its bytes) or an object with a predict method",
        field="model")


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except (KeyError, TypeError):
        raise InvalidInput(f"unknown model flavor {name!r}; known: {', '.join(FLAVORS)}",
                           field="flavor") from None
