"""Retrieval quality and embedding drift of vector index versions, on SQLite and PostgreSQL: recall@k, MRR, nDCG
and hit rate checked against hand-computed values on an index whose rankings are known, the tracked run, and
drift that is absent between identical versions and found when vectors move; bad input changes nothing."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import arsenale as ars
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm import retrieval as rt
from arsenale.llm.vectors import VectorIndex, hashing_embedder
from arsenale.platform import Client

# With the hashing embedder (bag of words; 4096 buckets, so these few words do not collide), the rankings are
# known: "apple banana cherry" -> [a, b]; "grape honey" -> [d, then a by row order among the zero scores];
# "apple" -> [b (1/√2), a (1/√3)]; "banana" -> [b, a].
DOCS = [{"id": "a", "text": "apple banana cherry"}, {"id": "b", "text": "apple banana"},
        {"id": "c", "text": "dates elder fig"}, {"id": "d", "text": "grape honey"}]
QUESTIONS = ["apple banana cherry", "grape honey", "apple", "banana"]
RELEVANT = [["a"], ["d", "c"], ["a"], ["c"]]
NDCG_Q2 = 1 / (1 + 1 / math.log2(3))  # d found at rank 1, c missed: DCG 1, ideal DCG 1 + 1/log2(3)
NDCG_Q3 = 1 / math.log2(3)  # a found at rank 2


@pytest.fixture
def kb(store: Client) -> VectorIndex:
    index = VectorIndex("kb", embedder=hashing_embedder(4096))
    index.add(DOCS)
    return index


# ---- per question, no store -------------------------------------------------------------------------------


def test_per_question_metrics_by_hand() -> None:
    got, rel = ["x", "a", "y", "b"], frozenset({"a", "b", "c"})
    assert rt.recall(got, rel, 2) == pytest.approx(1 / 3) and rt.recall(got, rel, 4) == pytest.approx(2 / 3)
    assert rt.hit(got, rel, 1) == 0.0 and rt.hit(got, rel, 2) == 1.0
    assert rt.reciprocal_rank(got, rel, 1) == 0.0 and rt.reciprocal_rank(got, rel, 4) == 0.5
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert rt.ndcg(got, rel, 4) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert rt.ndcg(["a", "b"], frozenset({"a", "b"}), 2) == pytest.approx(1.0)
    assert rt.ndcg(["a", "a"], frozenset({"a", "b"}), 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_mmd_test_tells_same_from_shifted() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(120, 8)), rng.normal(size=(120, 8))
    same = rt.mmd_test(x, y, permutations=200, seed=1)
    assert same.p_value is not None and same.p_value > 0.05
    assert rt.mmd_test(x, y, permutations=200, seed=1) == same  # seeded: the same answer every time
    assert rt.mmd_test(x, x.copy(), permutations=50).p_value == 1.0
    shifted = rt.mmd_test(x, y + np.eye(8)[0] * 1.5, permutations=200, seed=1)
    assert shifted.p_value == pytest.approx(1 / 201) and shifted.statistic > same.statistic


# ---- recall@k on a store ----------------------------------------------------------------------------------


def test_recall_at_k_exact_numbers(kb: VectorIndex) -> None:
    result = rt.recall_at_k(kb, QUESTIONS, RELEVANT, k=2)
    assert list(result.rows["retrieved_ids"]) == [["a", "b"], ["d", "a"], ["b", "a"], ["b", "a"]]
    assert list(result.rows["recall"]) == [1.0, 0.5, 1.0, 0.0]
    assert list(result.rows["reciprocal_rank"]) == [1.0, 1.0, 0.5, 0.0]
    assert list(result.rows["ndcg"]) == pytest.approx([1.0, NDCG_Q2, NDCG_Q3, 0.0])
    assert (result.index, result.version, result.k, result.dataset, result.run_id) == ("kb", 1, 2, None, None)
    assert result.recall == 0.625 and result.mrr == 0.625 and result.hit_rate == 0.75
    assert result.precision == 0.375 and result.ndcg == pytest.approx((1 + NDCG_Q2 + NDCG_Q3) / 4)
    assert result.metrics["recall_at_2"] == 0.625 and "recall@2=0.625" in repr(result)
    top1 = rt.recall_at_k(kb, QUESTIONS, RELEVANT, k=1)
    assert (top1.recall, top1.hit_rate, top1.mrr, top1.precision) == (0.375, 0.5, 0.5, 0.5)
    # A single relevant id may be given as a string.
    assert rt.recall_at_k(kb, ["apple"], ["a"], k=2).recall == 1.0


def test_recall_pins_a_version_and_reads_old_ones(kb: VectorIndex) -> None:
    kb.delete(["a"])  # version 2: "a" is gone, so its questions lose their relevant chunk
    latest = rt.recall_at_k(kb, QUESTIONS, RELEVANT, k=2)
    # "banana" -> [b, then c by row order among the zero scores]: c is relevant to it.
    assert latest.version == 2 and list(latest.rows["recall"]) == [0.0, 0.5, 0.0, 1.0]
    old = rt.recall_at_k(kb, QUESTIONS, RELEVANT, k=2, version=1)
    assert old.version == 1 and old.recall == 0.625


def test_recall_batches_questions_through_the_embedder(store: Client) -> None:
    calls: list[int] = []
    embed = hashing_embedder(4096)

    def counting(texts: list[str]) -> Any:
        calls.append(len(texts))
        return embed(texts)

    index = VectorIndex("batched", embedder=counting)
    index.add(DOCS)
    result = rt.recall_at_k(index, QUESTIONS, RELEVANT, k=2)
    assert calls == [4, 4] and result.recall == 0.625  # the documents once, then all questions in one batch


def test_recall_from_a_frame_and_a_dataset_logs_a_run(kb: VectorIndex, store: Client) -> None:
    frame = pd.DataFrame({"question": QUESTIONS, "relevant_ids": RELEVANT})
    assert rt.recall_at_k(kb, frame, k=2).recall == 0.625
    # A dataset holds the relevant ids as JSON text (or one id per row).
    store.datasets.register("kb-eval", frame.assign(relevant_ids=['["a"]', '["d", "c"]', "a", '["c"]']))
    result = rt.recall_at_k(kb, "kb-eval", k=2, log=True, run_name="kb-recall")
    assert (result.dataset, result.recall) == ("kb-eval@1", 0.625) and result.run_id
    run = store.tracking.get_run(result.run_id)
    assert (run.info.status, run.info.run_name, run.data.tags["ars.eval"]) == ("FINISHED", "kb-recall", "retrieval")
    assert {k: run.data.params[k] for k in ("index", "index_version", "k", "dataset")} == {
        "index": "kb", "index_version": "1", "k": "2", "dataset": "kb-eval@1"}
    assert run.data.metrics["recall_at_2"] == 0.625 and run.data.metrics["hit_rate_at_2"] == 0.75
    assert run.data.metrics["retrieval.questions"] == 4
    rows = pd.read_parquet(io.BytesIO(store.tracking.read_artifact(result.run_id, rt.ROWS_ARTIFACT)))
    assert list(rows["recall"]) == [1.0, 0.5, 1.0, 0.0]
    assert [i.name for i in store.datasets.inputs(result.run_id)] == ["kb-eval"]
    # Inside an active run, the evaluation is a nested run.
    with ars.start_run(experiment="rag") as parent:
        nested = rt.recall_at_k(kb, QUESTIONS, RELEVANT, k=2, log=True)
    assert store.tracking.get_run(str(nested.run_id)).info.parent_run_id == parent.run_id


def test_recall_bad_input_changes_nothing(kb: VectorIndex, store: Client) -> None:
    before = kb.versions()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"questions": QUESTIONS, "relevant": RELEVANT, "version": 9}, NotFound, "no version 9"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "version": "1"}, InvalidInput, "version must be"),
        ({"questions": [], "relevant": []}, InvalidInput, "empty"),
        ({"questions": QUESTIONS, "relevant": RELEVANT[:3]}, InvalidInput, "4 questions but 3"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "k": 0}, InvalidInput, "k must be"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "k": -3}, InvalidInput, "k must be"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "k": True}, InvalidInput, "k must be"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "k": 10**6}, InvalidInput, "k must be"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "k": 2.0}, InvalidInput, "k must be"),
        ({"questions": QUESTIONS, "relevant": None}, InvalidInput, "relevant must be"),
        ({"questions": QUESTIONS, "relevant": "a"}, InvalidInput, "relevant must be"),
        ({"questions": ["q"], "relevant": [[]]}, InvalidInput, "relevant\\[0\\] is empty"),
        ({"questions": ["q"], "relevant": [[1]]}, InvalidInput, "ids are non-empty strings"),
        ({"questions": ["q"], "relevant": [3]}, InvalidInput, "an id or a list"),
        ({"questions": ["q"], "relevant": [["x"] * 20_000]}, InvalidInput, "limit"),
        ({"questions": [None], "relevant": [["a"]]}, InvalidInput, "non-empty text"),
        ({"questions": ["  "], "relevant": [["a"]]}, InvalidInput, "non-empty text"),
        ({"questions": ["q"] * 100_001, "relevant": [["a"]] * 100_001}, InvalidInput, "limit is 100000"),
        ({"questions": 42, "relevant": RELEVANT}, InvalidInput, "questions must be"),
        ({"questions": pd.DataFrame({"q": ["x"]})}, InvalidInput, "no column 'question'"),
        ({"questions": pd.DataFrame({"question": ["x"], "relevant_ids": [["a"]]}), "relevant": [["a"]]},
         InvalidInput, "do not pass it too"),
        ({"questions": "no-such-dataset"}, NotFound, "no-such-dataset"),
        ({"questions": QUESTIONS, "relevant": RELEVANT, "log": "yes"}, InvalidInput, "log must be"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            rt.recall_at_k(kb, log=kwargs.pop("log", True), **kwargs)
    with pytest.raises(InvalidInput, match="index must be an ars.VectorIndex"):
        rt.recall_at_k("kb", QUESTIONS, RELEVANT)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="has no versions"):
        rt.recall_at_k(VectorIndex("empty"), QUESTIONS, RELEVANT)
    assert kb.versions() == before and ars.search_runs() == []


# ---- embedding drift ----------------------------------------------------------------------------------------


def _random_index(name: str, n: int = 80, dim: int = 16, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    index = VectorIndex(name, dim=dim)
    base = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    index.add([{"id": f"x{i}", "text": f"doc {i}"} for i in range(n)], vectors=base)
    return index, base


def test_identical_versions_show_no_drift(store: Client) -> None:
    index, base = _random_index("same")
    index.add([{"id": "x0", "text": "doc 0"}], vectors=base[:1])  # version 2: the same rows, reordered
    drift = rt.embedding_drift(index, 1, 2)
    assert (drift.from_count, drift.to_count, drift.added, drift.removed, drift.common) == (80, 80, 0, 0, 80)
    assert (drift.changed, drift.changed_share, drift.changed_mean_cosine) == (0, 0.0, None)
    assert drift.centroid_cosine == pytest.approx(1.0) and drift.centroid_shift == pytest.approx(0.0, abs=1e-9)
    assert drift.p_value == 1.0 and drift.mmd2 == pytest.approx(0.0, abs=1e-9) and not drift.drifted
    assert rt.embedding_drift(index, 1, 1).p_value == 1.0


def test_shifted_vectors_are_detected_and_counted(store: Client) -> None:
    index, base = _random_index("moved")
    shifted = base + np.float32(2.0) * np.eye(16, dtype=np.float32)[0]
    index.add([{"id": f"x{i}", "text": f"doc {i}"} for i in range(40)], vectors=shifted[:40])  # v2: half moved
    drift = rt.embedding_drift(index, 1, 2, permutations=200)
    assert (drift.common, drift.changed, drift.changed_share, drift.added, drift.removed) == (80, 40, 0.5, 0, 0)
    unit = base[:40] / np.linalg.norm(base[:40], axis=1, keepdims=True)
    moved = shifted[:40] / np.linalg.norm(shifted[:40], axis=1, keepdims=True)
    assert drift.changed_mean_cosine == pytest.approx(float(np.mean(np.sum(unit * moved, axis=1))), abs=1e-5)
    assert drift.p_value is not None and drift.p_value < 0.05 and drift.drifted
    assert drift.centroid_cosine is not None and drift.centroid_cosine < 0.9
    assert rt.embedding_drift(index, 1, 2, permutations=200) == drift  # seeded
    assert drift.to_dict()["centroid_shift"] == pytest.approx(1 - drift.centroid_cosine)


def test_corpus_changes_are_counted_and_samples_bounded(store: Client) -> None:
    index, _ = _random_index("corpus", n=120)
    index.delete([f"x{i}" for i in range(20)])  # v2
    index.add([{"id": f"new{i}", "text": f"new {i}"} for i in range(30)],
              vectors=np.random.default_rng(5).normal(size=(30, 16)))  # v3
    drift = rt.embedding_drift(index, 1, 3, sample=50, permutations=50)
    assert (drift.from_count, drift.to_count, drift.added, drift.removed, drift.common, drift.changed) == (
        120, 130, 30, 20, 100, 0)
    assert drift.sample == 50 and drift.p_value is not None and not drift.drifted  # the same distribution
    index.delete([f"x{i}" for i in range(20, 120)] + [f"new{i}" for i in range(30)])  # v4: empty
    empty = rt.embedding_drift(index, 3, 4)
    assert (empty.to_count, empty.removed, empty.mmd2, empty.p_value, empty.centroid_cosine, empty.drifted) == (
        0, 130, None, None, None, False)


def test_drift_bad_input_changes_nothing(store: Client) -> None:
    index, _ = _random_index("bad", n=10)
    before = index.versions()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"from_version": 1, "to_version": 7}, NotFound, "no version 7"),
        ({"from_version": "1", "to_version": 1}, InvalidInput, "from_version must be"),
        ({"from_version": 1, "to_version": None}, InvalidInput, "to_version must be"),
        ({"from_version": 1, "to_version": 1, "sample": 1}, InvalidInput, "sample must be"),
        ({"from_version": 1, "to_version": 1, "sample": 10**9}, InvalidInput, "sample must be"),
        ({"from_version": 1, "to_version": 1, "permutations": 0}, InvalidInput, "permutations must be"),
        ({"from_version": 1, "to_version": 1, "threshold": 1.5}, InvalidInput, "threshold must be"),
        ({"from_version": 1, "to_version": 1, "seed": -1}, InvalidInput, "seed must be"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            rt.embedding_drift(index, **kwargs)
    with pytest.raises(InvalidInput, match="index must be"):
        rt.embedding_drift(None, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        rt.embedding_drift(VectorIndex("nothing"), 1, 2)
    assert index.versions() == before


def test_public_path() -> None:
    assert ars.llm.retrieval.recall_at_k is rt.recall_at_k
    assert ars.llm.retrieval.embedding_drift is rt.embedding_drift
