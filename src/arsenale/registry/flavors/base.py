"""The flavor contract: how one kind of model is written to a folder and read back.

A flavor writes plain files into a folder (the registry then stores each file as a
content-addressed blob) and returns a small JSON-able `flavor_meta` dict that is kept
with the model version. Loading gets the same folder and meta back, plus the caller's
`trusted` flag: anything that could run code the platform did not ship (unknown
classes, stored Python source, pickle) is refused with `Forbidden` unless trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from arsenale.errors import IntegrityError, InvalidInput


@runtime_checkable
class Flavor(Protocol):
    """One way of storing a model: a name, a test, a writer and a reader."""

    name: str

    def can_save(self, model: object) -> bool: ...

    def save(self, model: object, folder: Path) -> dict[str, Any]: ...

    def load(self, folder: Path, meta: dict[str, Any], *, trusted: bool) -> LoadedModel: ...


class LoadedModel:
    """A model read back from the registry, with one calling convention for every flavor.

    `predict(X)` always exists; `predict_proba(X)` exists only when the model offers it,
    so `hasattr(loaded, "predict_proba")` is the honest test. `raw` is the underlying
    object (an estimator, an onnxruntime session, the user's pyfunc instance).
    """

    __slots__ = ("_predict", "_predict_proba", "flavor", "meta", "raw")

    def __init__(self, raw: Any, flavor: str, *, predict: Callable[[Any], Any],
                 predict_proba: Callable[[Any], Any] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self.flavor = flavor
        self.meta = dict(meta or {})
        self._predict = predict
        self._predict_proba = predict_proba

    def predict(self, X: Any) -> Any:
        return self._predict(X)

    @property
    def predict_proba(self) -> Callable[[Any], Any]:
        if self._predict_proba is None:
            raise AttributeError(f"this {self.flavor} model has no predict_proba")
        return self._predict_proba

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor!r}, raw={type(self.raw).__name__})"


def safe_member(folder: Path, relative: Any, field: str = "meta") -> Path:
    """`folder / relative`, refusing names from meta that would escape the folder."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise InvalidInput(f"flavor meta names an invalid file: {relative!r}", field=field)
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise IntegrityError(f"flavor meta names a file outside the model folder: {relative!r}")
    path = folder / rel
    if not path.is_file():
        raise InvalidInput(f"the model folder has no file {relative!r}", field=field)
    return path


def check_folder(folder: Path | str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"not a folder: {folder}", field="folder")
    return folder
