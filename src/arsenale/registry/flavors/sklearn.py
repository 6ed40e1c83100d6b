"""scikit-learn estimators and pipelines, stored with skops (never pickle or joblib).

skops refuses, at load, every type it does not trust by default. We extend its trust
only to *classes* whose top-level package is in `ALLOWED_ROOTS` (scikit-learn, numpy,
scipy, collections) and that do not live in a testing module. Functions are not
extended trust even inside those packages (`numpy.testing...runstring` executes a
string; `numpy.load` can unpickle): skops already trusts numpy ufuncs, and anything
else — a custom transformer class, `numpy.clip` in a FunctionTransformer — makes the
load fail with `Forbidden` naming the types, unless the caller passes `trusted=True`.
The types are read from the stored file at load time, not from the saved meta, so
editing the meta cannot widen what is trusted.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from arsenale.errors import Forbidden, InvalidInput
from arsenale.registry.flavors.base import LoadedModel, check_folder, safe_member

ALLOWED_ROOTS = frozenset({"sklearn", "numpy", "scipy", "collections"})
# Even classes are refused from test helpers, compilers and file I/O modules (memmap, DataSource, scipy.io).
_DENIED_SEGMENTS = frozenset({"testing", "_testing", "tests", "_testutils", "conftest", "f2py", "distutils",
                              "io", "_io", "npyio", "_npyio_impl", "_datasource", "memmap", "externals"})
_DENIED_NAMES = frozenset({"numpy.memmap", "numpy.lib.npyio.DataSource", "numpy.lib.npyio.NpzFile"})
FILE = "model.skops"


def _resolve(name: str) -> object | None:
    """The object a skops type name points at, importing only inside the allowlisted packages."""
    parts = name.split(".")
    if parts[0] not in ALLOWED_ROOTS or _DENIED_SEGMENTS.intersection(parts) or name in _DENIED_NAMES:
        return None
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def is_allowed(name: str) -> bool:
    """True for a class (not a function) defined in an allowlisted package."""
    obj = _resolve(name)
    if not isinstance(obj, type):
        return False
    module = getattr(obj, "__module__", "") or ""
    real = f"{module}.{obj.__qualname__}"
    return (module.split(".")[0] in ALLOWED_ROOTS and not _DENIED_SEGMENTS.intersection(module.split("."))
            and real not in _DENIED_NAMES and not (isinstance(obj, type) and _is_file_backed(obj)))


def _is_file_backed(cls: type) -> bool:
    """numpy.memmap and its subclasses open files when built."""
    import numpy as np

    return issubclass(cls, np.memmap)


def split_types(names: list[str]) -> tuple[list[str], list[str]]:
    """(allowed, refused) among the types skops does not trust by itself."""
    allowed = [n for n in names if is_allowed(n)]
    refused = [n for n in names if n not in allowed]
    return allowed, refused


def _is_sklearn_estimator(model: object) -> bool:
    if "sklearn" not in sys.modules:  # nothing can be an estimator before sklearn is imported
        return False
    from sklearn.base import BaseEstimator

    return isinstance(model, BaseEstimator)


class SklearnFlavor:
    name = "sklearn"

    def can_save(self, model: object) -> bool:
        return _is_sklearn_estimator(model)

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        import sklearn
        import skops
        import skops.io as sio

        if not self.can_save(model):
            raise InvalidInput(f"not a scikit-learn estimator: {type(model).__name__}", field="model")
        folder = check_folder(folder)
        path = folder / FILE
        try:
            sio.dump(model, path)
        except Exception as e:  # skops raises TypeError and friends for objects it cannot represent
            path.unlink(missing_ok=True)
            raise InvalidInput(f"skops cannot store this {type(model).__name__}: {e}", field="model") from e
        untrusted = sorted(sio.get_untrusted_types(file=path))
        return {
            "flavor": self.name,
            "format": "skops",
            "file": FILE,
            "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
            "untrusted_types": untrusted,
            "trusted_types": split_types(untrusted)[0],
            "sklearn_version": sklearn.__version__,
            "skops_version": skops.__version__,
            "python_version": ".".join(map(str, sys.version_info[:3])),
        }

    def load(self, folder: Path, meta: dict[str, Any], *, trusted: bool) -> LoadedModel:
        import skops.io as sio

        path = safe_member(check_folder(folder), meta.get("file", FILE))
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as e:
            raise InvalidInput(f"{path.name} is not a readable skops file: {e}", field="model") from e
        allowed, refused = split_types(untrusted)
        if refused and not trusted:
            raise Forbidden(
                f"this scikit-learn model needs types outside the trusted packages "
                f"({', '.join(sorted(ALLOWED_ROOTS))} classes): {', '.join(sorted(refused))}; "
                "pass trusted=True after reviewing them")
        try:
            model = sio.load(path, trusted=allowed + refused if trusted else allowed)
        except Exception as e:
            raise InvalidInput(f"cannot load {path.name}: {type(e).__name__}: {e}", field="model") from e
        return LoadedModel(
            model, self.name,
            predict=_method(model, "predict"),
            predict_proba=getattr(model, "predict_proba", None) if _has(model, "predict_proba") else None,
            meta=meta)


def _has(model: object, method: str) -> bool:
    """hasattr, which for sklearn also honours `available_if` (e.g. SVC without probability=True)."""
    try:
        return callable(getattr(model, method))
    except AttributeError:
        return False


def _method(model: object, method: str) -> Any:
    if _has(model, method):
        return getattr(model, method)

    def missing(X: Any) -> Any:
        raise InvalidInput(f"{type(model).__name__} has no {method} method", field="model")

    return missing


FLAVOR = SklearnFlavor()
