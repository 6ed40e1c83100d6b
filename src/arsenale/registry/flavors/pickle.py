"""Legacy pickle files: load only, and only when the caller marks the source as trusted.

Unpickling runs whatever code the file names, so Arsenale never writes pickles and
never reads one by default. This flavor exists to bring existing models in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arsenale.errors import Forbidden, InvalidInput
from arsenale.registry.flavors.base import LoadedModel, check_folder, safe_member

FILE = "model.pkl"


class PickleFlavor:
    name = "pickle"

    def can_save(self, model: object) -> bool:
        return False

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        raise InvalidInput("Arsenale does not write pickles; use the sklearn, onnx or pyfunc flavor",
                           field="flavor")

    def load(self, folder: Path, meta: dict[str, Any], *, trusted: bool) -> LoadedModel:
        path = safe_member(check_folder(folder), meta.get("file", FILE))
        if not trusted:
            raise Forbidden(f"this model is a pickle file ({path.name}); unpickling runs arbitrary code, "
                            "so pass trusted=True only if you trust where it came from")
        import pickle

        try:
            with open(path, "rb") as f:
                obj = pickle.load(f)  # only with trusted=True, see above
        except Exception as e:
            raise InvalidInput(f"cannot unpickle {path.name}: {type(e).__name__}: {e}", field="model") from e
        predict = getattr(obj, "predict", None)
        if not callable(predict):
            raise InvalidInput(f"the unpickled {type(obj).__name__} has no predict method", field="model")
        proba = getattr(obj, "predict_proba", None) if _has(obj, "predict_proba") else None
        return LoadedModel(obj, self.name, predict=predict, predict_proba=proba, meta=meta)


def _has(obj: object, name: str) -> bool:
    try:
        return callable(getattr(obj, name))
    except AttributeError:
        return False


FLAVOR = PickleFlavor()
