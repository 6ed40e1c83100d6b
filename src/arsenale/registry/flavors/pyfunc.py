"""Any object with a `predict` method, stored as code plus data.

Saving writes the source file of the class's module as `code/<module>.py` and the
instance's state (`vars(model)`) with skops as `data.skops`; the meta records the
module, the class and the BLAKE3 digest of the code. The class must be defined at the
top level of a module that is a single file (no relative imports of siblings).

Loading executes the stored Python code, which is exactly as dangerous as unpickling,
so it is refused with `Forbidden` unless the caller passes `trusted=True`. When trusted,
the code is checked against its digest, imported under a private module name (removed
from `sys.modules` once executed), the instance is made with `cls.__new__(cls)` — no
`__init__` runs — and its `__dict__` is restored from the data.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
from pathlib import Path
from typing import Any

import blake3

from arsenale.errors import Forbidden, IntegrityError, InvalidInput
from arsenale.registry.flavors.base import LoadedModel, check_folder, safe_member

DATA_FILE = "data.skops"


class PyfuncFlavor:
    name = "pyfunc"

    def can_save(self, model: object) -> bool:
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        if not self.can_save(model):
            raise InvalidInput(f"{type(model).__name__} has no callable predict method", field="model")
        folder = check_folder(folder)
        cls = type(model)
        qualname = cls.__qualname__
        if "." in qualname:
            raise InvalidInput(f"class {qualname} must be defined at the top level of its module to be stored "
                               "as a pyfunc model", field="model")
        try:
            source_file = inspect.getsourcefile(cls)
        except (TypeError, OSError):
            source_file = None
        if not source_file or not Path(source_file).is_file():
            raise InvalidInput(f"the source of class {qualname} is not in a file (defined interactively?); "
                               "move it to a module to store it as a pyfunc model", field="model")
        stem = cls.__module__.rsplit(".", 1)[-1]
        if cls.__module__ == "__main__" or not stem.isidentifier():
            stem = Path(source_file).stem if Path(source_file).stem.isidentifier() else "model_code"
        try:
            state = vars(model)
        except TypeError:
            raise InvalidInput(f"{qualname} has no __dict__ (uses __slots__?); it cannot be stored as a pyfunc "
                               "model", field="model") from None
        code = Path(source_file).read_bytes()
        code_rel = f"code/{stem}.py"
        (folder / "code").mkdir(exist_ok=True)
        (folder / code_rel).write_bytes(code)
        data_path = folder / DATA_FILE
        try:
            sio.dump(dict(state), data_path)
        except Exception as e:  # skops raises TypeError and friends for values it cannot represent
            data_path.unlink(missing_ok=True)
            raise InvalidInput(f"skops cannot store the state of {qualname}: {e}", field="model") from e
        return {
            "flavor": self.name,
            "format": "code+skops",
            "module": cls.__module__,
            "class": qualname,
            "code": code_rel,
            "code_digest": blake3.blake3(code).hexdigest(),
            "data": DATA_FILE,
            "untrusted_types": sorted(sio.get_untrusted_types(file=data_path)),
            "python_version": ".".join(map(str, sys.version_info[:3])),
        }

    def load(self, folder: Path, meta: dict[str, Any], *, trusted: bool) -> LoadedModel:
        import skops.io as sio

        folder = check_folder(folder)
        code_path = safe_member(folder, meta.get("code"), "meta.code")
        data_path = safe_member(folder, meta.get("data", DATA_FILE), "meta.data")
        class_name = meta.get("class")
        if not isinstance(class_name, str) or not class_name.isidentifier():
            raise InvalidInput(f"flavor meta names an invalid class: {class_name!r}", field="meta.class")
        code = code_path.read_bytes()
        digest = blake3.blake3(code).hexdigest()
        if meta.get("code_digest") != digest:
            raise IntegrityError(f"stored code {meta.get('code')} does not match its recorded digest")
        if not trusted:
            raise Forbidden(f"this model runs stored Python code ({meta.get('code')}, digest {digest[:16]}…); "
                            "pass trusted=True after reviewing it")
        module = _import_private(code_path, digest)
        cls: Any = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise InvalidInput(f"the stored code defines no class {class_name}", field="meta.class")
        try:
            state = sio.load(data_path, trusted=sio.get_untrusted_types(file=data_path))
        except Exception as e:
            raise InvalidInput(f"cannot load the model's data {data_path.name}: {e}", field="model") from e
        if not isinstance(state, dict):
            raise InvalidInput("the model's data is not a dict of attributes", field="model")
        new: Any = cls.__new__  # the class's own __new__; __init__ is not run
        obj = new(cls)
        obj.__dict__.update(state)
        proba = getattr(obj, "predict_proba", None)
        return LoadedModel(obj, self.name, predict=obj.predict,
                           predict_proba=proba if callable(proba) else None, meta=meta)


def _import_private(path: Path, digest: str) -> Any:
    """Execute `path` as a fresh module with a unique private name; sys.modules holds it only meanwhile."""
    name = f"_arsenale_pyfunc_{path.stem}_{digest[:12]}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot import stored code {path.name}", field="model")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up while the class is built
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise InvalidInput(f"the stored code {path.name} failed to import: {type(e).__name__}: {e}",
                           field="model") from e
    finally:
        sys.modules.pop(name, None)
    return module


FLAVOR = PyfuncFlavor()
