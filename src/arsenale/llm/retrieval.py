"""Retrieval quality of a vector index version, and how its embeddings moved between two versions.

    import arsenale.llm.retrieval as rt
    result = rt.recall_at_k(index, ["how long do refunds take?", ...], [["faq-refund"], ...], k=5)
    result.recall, result.mrr, result.ndcg, result.hit_rate    # means over the questions
    result.rows                                                # one row per question: retrieved ids, each score
    rt.recall_at_k(index, "support-eval@2", k=5, log=True)    # a dataset with question + relevant_ids; a run
    drift = rt.embedding_drift(index, 1, 2)                   # centroid shift, MMD test, changed vectors

Relevance is binary: a question's `relevant` ids are the chunks that answer it. Per question, over the top
`k` hits: recall = relevant retrieved / relevant; precision = relevant retrieved / k; hit = any relevant
retrieved; reciprocal rank = 1 / rank of the first relevant hit (0 when none, so the mean is MRR@k);
nDCG = DCG / ideal DCG with gain 1 / log2(rank + 1). Every question is searched on the same version (the
latest when none is given is pinned once), so a concurrent `add` cannot mix two versions in one result.
With `log=True` the result is a tracked run (nested in the active run, like `arsenale.llm.eval`): params
`index`, `index_version`, `k` (and `dataset`), one metric per aggregate, the rows as `retrieval/rows.parquet`.

`embedding_drift` compares two versions' vectors (normalised to unit length, since cosine is what search
ranks by): the cosine between their centroids, a kernel two-sample test (MMD with a Gaussian kernel whose
width is the median distance, p-value by permutation, on a seeded sample of at most `sample` vectors per
side, so it answers in about a second at any index size), which ids were added or removed, and among the
ids in both versions, how many vectors changed and how similar the changed ones stayed (a new embedder
changes them all; a corpus edit changes none). The tabular drift tests in `arsenale.monitoring.stattests`
are per column; this is the multivariate one, returning the same `Stat`.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from arsenale.errors import InvalidInput
from arsenale.llm.vectors import MAX_K, VectorIndex
from arsenale.monitoring.stattests import Stat

if TYPE_CHECKING:
    import pandas as pd

    from arsenale.platform import Client

__all__ = ["EmbeddingDrift", "RetrievalResult", "embedding_drift", "hit", "mmd_test", "ndcg",
           "recall", "recall_at_k", "reciprocal_rank"]

ROWS_ARTIFACT = "retrieval/rows.parquet"
MAX_QUESTIONS = 100_000
MAX_RELEVANT = 10_000
MAX_SAMPLE = 5_000
MAX_PERMUTATIONS = 10_000
_EMBED_BATCH = 256
_CHANGED_ATOL = 1e-6  # float32 noise of one embedder run to the next is far below this


# ---- per question ----------------------------------------------------------------------------------------


def recall(retrieved: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Share of the relevant ids found in the top `k` retrieved."""
    return len(set(retrieved[:k]) & relevant) / len(relevant)


def hit(retrieved: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """1.0 when any relevant id is in the top `k`."""
    return 1.0 if set(retrieved[:k]) & relevant else 0.0


def reciprocal_rank(retrieved: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """1 / the rank of the first relevant id in the top `k`, 0 when there is none."""
    for rank, doc in enumerate(retrieved[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg(retrieved: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Binary-gain nDCG@k: hits near the top count more (1 / log2(rank + 1)), normalised by the best order."""
    seen: set[str] = set()
    dcg = 0.0
    for rank, doc in enumerate(retrieved[:k], start=1):
        if doc in relevant and doc not in seen:
            dcg += 1.0 / math.log2(rank + 1)
            seen.add(doc)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


# ---- the evaluation set ------------------------------------------------------------------------------------


@dataclass
class RetrievalResult:
    """One index version on one evaluation set: per-question rows and their means."""

    index: str
    version: int
    k: int
    recall: float  # mean recall@k
    precision: float  # mean precision@k
    mrr: float  # mean reciprocal rank (within the top k)
    ndcg: float  # mean nDCG@k
    hit_rate: float  # share of questions with a relevant chunk in the top k
    rows: pd.DataFrame  # question, relevant_ids, retrieved_ids, recall, precision, reciprocal_rank, ndcg, hit
    dataset: str | None = None  # name@version, when the questions came from a registered dataset
    run_id: str | None = None  # the tracked run, when logged

    @property
    def metrics(self) -> dict[str, float]:
        """The aggregates under the names the tracked run logs them."""
        k = self.k
        return {f"recall_at_{k}": self.recall, f"precision_at_{k}": self.precision, f"mrr_at_{k}": self.mrr,
                f"ndcg_at_{k}": self.ndcg, f"hit_rate_at_{k}": self.hit_rate}

    def __repr__(self) -> str:
        return (f"<RetrievalResult {self.index} v{self.version} on {len(self.rows)} questions: "
                f"recall@{self.k}={self.recall:.3f} mrr={self.mrr:.3f} ndcg={self.ndcg:.3f} "
                f"hit_rate={self.hit_rate:.3f}>")


def _relevant_ids(value: Any, i: int) -> frozenset[str]:
    if isinstance(value, str):
        ids = [value]
        if value.startswith("["):  # a JSON list, as a dataset column of text holds them
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                ids = parsed
    elif hasattr(value, "tolist") and not isinstance(value, str):  # an array read from Parquet
        ids = value.tolist()
    elif isinstance(value, Sequence | set | frozenset):
        ids = list(value)
    else:
        raise InvalidInput(f"relevant[{i}] must be an id or a list of ids, got {type(value).__name__}",
                           field="relevant")
    if not ids:
        raise InvalidInput(f"relevant[{i}] is empty: every question needs at least one relevant id",
                           field="relevant")
    if len(ids) > MAX_RELEVANT:
        raise InvalidInput(f"relevant[{i}] holds {len(ids)} ids; the limit is {MAX_RELEVANT}", field="relevant")
    for doc in ids:
        if not isinstance(doc, str) or not doc:
            raise InvalidInput(f"relevant[{i}] holds {doc!r:.40}; ids are non-empty strings", field="relevant")
    return frozenset(ids)


def _from_frame(frame: Any, what: str) -> tuple[list[Any], list[Any]]:
    cols = [str(c) for c in frame.columns]
    for col in ("question", "relevant_ids"):
        if col not in cols:
            raise InvalidInput(f"{what} has no column {col!r}; it needs question and relevant_ids "
                               f"(columns: {', '.join(cols)})", field="questions")
    return list(frame["question"]), list(frame["relevant_ids"])


def _eval_set(questions: Any, relevant: Any, client: Any) -> tuple[list[str], list[frozenset[str]], Any]:
    """(questions, relevant id sets, the dataset (name, version) or None), all checked."""
    dataset = None
    if isinstance(questions, str) or (hasattr(questions, "name") and hasattr(questions, "version")):
        if relevant is not None:
            raise InvalidInput("relevant comes from the dataset's relevant_ids column; do not pass it too",
                               field="relevant")
        from arsenale.llm.eval import _dataset_ref

        name, version = _dataset_ref(questions)
        info = client.datasets.get(name, version)
        dataset = (info.name, info.version)
        qs, rel = _from_frame(client.datasets.read(info.name, info.version).to_pandas(),
                              f"dataset {info.name}@{info.version}")
    elif hasattr(questions, "columns") and hasattr(questions, "__getitem__"):  # a DataFrame
        if relevant is not None:
            raise InvalidInput("relevant comes from the frame's relevant_ids column; do not pass it too",
                               field="relevant")
        qs, rel = _from_frame(questions, "the frame")
    elif isinstance(questions, Sequence):
        if relevant is None or isinstance(relevant, str) or not isinstance(relevant, Sequence):
            raise InvalidInput("relevant must be a list with the relevant ids of each question", field="relevant")
        qs, rel = list(questions), list(relevant)
    else:
        raise InvalidInput("questions must be a list of texts, a DataFrame with question and relevant_ids, or a "
                           "registered dataset ('name', 'name@3', ars.Dataset)", field="questions")
    if not qs:
        raise InvalidInput("the evaluation set is empty: give at least one question", field="questions")
    if len(qs) > MAX_QUESTIONS:
        raise InvalidInput(f"the evaluation set holds {len(qs)} questions; the limit is {MAX_QUESTIONS}",
                           field="questions")
    if len(qs) != len(rel):
        raise InvalidInput(f"{len(qs)} questions but {len(rel)} relevant id lists: give one list per question",
                           field="relevant")
    for i, q in enumerate(qs):
        if not isinstance(q, str) or not q.strip():
            raise InvalidInput(f"questions[{i}] must be a non-empty text", field="questions")
    return qs, [_relevant_ids(r, i) for i, r in enumerate(rel)], dataset


def _check_index(index: Any) -> VectorIndex:
    if not isinstance(index, VectorIndex):
        raise InvalidInput(f"index must be an ars.VectorIndex, got {type(index).__name__}", field="index")
    return index


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be an integer between 1 and {MAX_K}; got {k!r:.40}", field="k")
    return k


def _retrieve(index: VectorIndex, questions: list[str], k: int, version: int) -> list[list[str]]:
    """The top-k ids of each question; questions are embedded in batches when the index has an embedder
    (a model is much faster on a batch than on one text at a time)."""
    if index.embedder is None:
        return [[h.id for h in index.search(q, k=k, version=version)] for q in questions]
    out: list[list[str]] = []
    for start in range(0, len(questions), _EMBED_BATCH):
        batch = questions[start:start + _EMBED_BATCH]
        vectors = np.asarray(index.embedder(batch), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise InvalidInput(f"the embedder's output has shape {vectors.shape}; expected ({len(batch)}, dim)",
                               field="embedder")
        out += [[h.id for h in index.search(v, k=k, version=version)] for v in vectors]
    return out


def recall_at_k(index: VectorIndex, questions: Any, relevant: Sequence[Any] | None = None, *, k: int = 10,
                version: int | None = None, log: bool = False, run_name: str | None = None,
                experiment: str | None = None, client: Client | None = None) -> RetrievalResult:
    """Recall@k (and precision@k, MRR, nDCG@k, hit rate) of `index` at `version` (the latest by default) on
    an evaluation set: `questions` (texts) with `relevant` (per question, the ids of the chunks that answer
    it), or a DataFrame or registered dataset ('name', 'name@3', ars.Dataset) with the columns `question`
    and `relevant_ids` (per row a list of ids, one id, or a JSON list of ids as text). Everything is
    checked before the first search. `log=True` records a tracked run."""
    import pandas as pd

    from arsenale.llm.eval import _client

    index = _check_index(index)
    k = _check_k(k)
    if not isinstance(log, bool):
        raise InvalidInput("log must be True or False", field="log")
    c = _client(client)
    qs, rel, dataset = _eval_set(questions, relevant, c)
    pinned = index.get(version).version  # NotFound for an unknown version, before any search
    retrieved = _retrieve(index, qs, k, pinned)
    table = pd.DataFrame({
        "question": qs, "relevant_ids": [sorted(r) for r in rel], "retrieved_ids": retrieved,
        "recall": [recall(got, r, k) for got, r in zip(retrieved, rel, strict=True)],
        "precision": [len(set(got) & r) / k for got, r in zip(retrieved, rel, strict=True)],
        "reciprocal_rank": [reciprocal_rank(got, r, k) for got, r in zip(retrieved, rel, strict=True)],
        "ndcg": [ndcg(got, r, k) for got, r in zip(retrieved, rel, strict=True)],
        "hit": [hit(got, r, k) for got, r in zip(retrieved, rel, strict=True)],
    })
    result = RetrievalResult(index=index.name, version=pinned, k=k, recall=float(table["recall"].mean()),
                             precision=float(table["precision"].mean()),
                             mrr=float(table["reciprocal_rank"].mean()), ndcg=float(table["ndcg"].mean()),
                             hit_rate=float(table["hit"].mean()), rows=table,
                             dataset=None if dataset is None else f"{dataset[0]}@{dataset[1]}")
    if log:
        result.run_id = _log(c, result, dataset, run_name=run_name, experiment=experiment)
    return result


def _log(client: Any, result: RetrievalResult, dataset: tuple[str, int] | None, *, run_name: str | None,
         experiment: str | None) -> str:
    """The result as a tracked run, nested in the active run like an LLM evaluation."""
    from arsenale.llm.eval import _active_parent, _experiment_id
    from arsenale.tracking.fluent import PARENT_TAG
    from arsenale.tracking.source import source_tags

    parent = _active_parent(client)
    tags = {**source_tags(), "ars.eval": "retrieval", **({PARENT_TAG: parent} if parent else {})}
    params = {"index": result.index, "index_version": result.version, "k": result.k,
              **({"dataset": result.dataset} if result.dataset else {})}
    run = client.tracking.create_run(_experiment_id(client, experiment, parent), run_name=run_name, tags=tags,
                                     params=params, parent_run_id=parent)
    run_id: str = run.info.run_id
    status = "FAILED"
    try:
        if dataset is not None:
            client.datasets.record_input(run_id, *dataset)
        now = int(time.time() * 1000)
        metrics = [(key, value, 0, now) for key, value in result.metrics.items()]
        client.tracking.log_batch(run_id, metrics=[*metrics, ("retrieval.questions", float(len(result.rows)),
                                                              0, now)])
        buf = io.BytesIO()
        result.rows.to_parquet(buf, index=False)
        client.tracking.log_artifact_bytes(run_id, ROWS_ARTIFACT, buf.getvalue())
        client.tracking.log_artifact_bytes(run_id, "retrieval/summary.json", json.dumps(
            {"index": result.index, "version": result.version, "dataset": result.dataset,
             "metrics": result.metrics}, indent=2).encode())
        status = "FINISHED"
    finally:
        client.tracking.update_run(run_id, status=status)
    return run_id


# ---- embedding drift ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingDrift:
    """How the vectors of `to_version` differ from those of `from_version` of one index."""

    index: str
    from_version: int
    to_version: int
    from_count: int
    to_count: int
    added: int  # ids only in to_version
    removed: int  # ids only in from_version
    common: int  # ids in both
    changed: int  # common ids whose vector changed
    changed_share: float  # changed / common (0 when nothing is common)
    changed_mean_cosine: float | None  # mean cosine between the old and new vector of the changed ids
    centroid_cosine: float | None  # cosine between the two versions' centroids of unit vectors
    mmd2: float | None  # squared maximum mean discrepancy (biased estimate) on the samples
    p_value: float | None  # permutation p-value of mmd2; None when a side has fewer than 2 vectors
    sample: int  # vectors drawn per side (at most)
    permutations: int
    threshold: float
    drifted: bool  # p_value < threshold

    @property
    def centroid_shift(self) -> float | None:
        """1 - centroid_cosine: 0 when the centroids point the same way."""
        return None if self.centroid_cosine is None else 1.0 - self.centroid_cosine

    def to_dict(self) -> dict[str, Any]:
        """Every field and the centroid shift, JSON-ready (for a CLI or an API to render)."""
        return {**asdict(self), "centroid_shift": self.centroid_shift}


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> Stat:
    """Two-sample test that x and y (rows are points) come from one distribution: the squared maximum mean
    discrepancy (biased V-statistic) with a Gaussian kernel whose width is the median pairwise distance of
    the pooled points, and its permutation p-value (1 + #{permuted >= observed}) / (1 + permutations).
    Needs no classifier and no per-dimension binning; cost grows with (len(x) + len(y))², so sample first."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    pooled = np.concatenate([x, y])
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    off = d2[np.triu_indices(n + m, k=1)]
    width2 = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    kernel = np.exp(-d2 / (2.0 * width2))
    signs = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(signs @ kernel @ signs)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(signs) for _ in range(permutations)])  # (P, n + m)
    null = np.einsum("pi,pi->p", shuffled @ kernel, shuffled)
    # Ties (identical samples give exactly 0 everywhere) count as at least as extreme, as they should.
    p_value = (1.0 + float(np.sum(null >= observed - 1e-12))) / (1.0 + permutations)
    return Stat(max(observed, 0.0), p_value)


def _version_rows(index: VectorIndex, version: int) -> Any:
    """A version's ids and vectors. vectors.py has no public accessor for them, so this goes through the
    index's own verified loader (`_load`, which checks the version's digest)."""
    info = index.get(version)
    _, blobs, _ = index._local()
    row = SimpleNamespace(files=json.dumps(info.files), digest=info.digest, version=info.version)
    return index._load(blobs, row)


def _check_int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer between {low} and {high}; got {value!r:.40}", field=field)
    return value


def embedding_drift(index: VectorIndex, from_version: int, to_version: int, *, sample: int = 500,
                    permutations: int = 200, threshold: float = 0.05, seed: int = 0) -> EmbeddingDrift:
    """How the embeddings moved from `from_version` to `to_version` of `index`: count changes, changed vectors
    of the ids in both, the centroid cosine and an MMD permutation test on at most `sample` vectors per side
    (seeded, so the same call gives the same answer). `drifted` is p_value < threshold."""
    index = _check_index(index)
    for field, value in (("from_version", from_version), ("to_version", to_version)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{field} must be an integer version", field=field)
    sample = _check_int(sample, "sample", 2, MAX_SAMPLE)
    permutations = _check_int(permutations, "permutations", 10, MAX_PERMUTATIONS)
    _check_int(seed, "seed", 0, 2**32 - 1)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise InvalidInput(f"threshold must be a p-value between 0 and 1; got {threshold!r:.40}",
                           field="threshold")
    old, new = _version_rows(index, from_version), _version_rows(index, to_version)
    a, b = _unit(old.vectors), _unit(new.vectors)
    where_old = {doc: i for i, doc in enumerate(old.ids)}
    pairs = [(where_old[doc], j) for j, doc in enumerate(new.ids) if doc in where_old]
    common = len(pairs)
    changed_cos: list[float] = []
    if pairs:
        i_old, i_new = (np.asarray(p, dtype=np.int64) for p in zip(*pairs, strict=True))
        raw_old, raw_new = old.vectors[i_old], new.vectors[i_new]
        moved = np.max(np.abs(raw_old - raw_new), axis=1) > _CHANGED_ATOL
        changed_cos = np.sum(a[i_old][moved] * b[i_new][moved], axis=1).tolist()
    centroid_cos = None
    if len(a) and len(b):
        ca, cb = a.mean(axis=0), b.mean(axis=0)
        na, nb = float(np.linalg.norm(ca)), float(np.linalg.norm(cb))
        centroid_cos = float(np.clip(ca @ cb / (na * nb), -1.0, 1.0)) if na > 0 and nb > 0 else None
    mmd2 = p_value = None
    if len(a) >= 2 and len(b) >= 2:
        rng = np.random.default_rng(seed)
        xa = a[np.sort(rng.choice(len(a), sample, replace=False))] if len(a) > sample else a
        xb = b[np.sort(rng.choice(len(b), sample, replace=False))] if len(b) > sample else b
        stat = mmd_test(xa, xb, permutations=permutations, seed=seed)
        mmd2, p_value = stat.statistic, stat.p_value
    return EmbeddingDrift(
        index=index.name, from_version=from_version, to_version=to_version, from_count=len(old.ids),
        to_count=len(new.ids), added=len(new.ids) - common, removed=len(old.ids) - common, common=common,
        changed=len(changed_cos), changed_share=len(changed_cos) / common if common else 0.0,
        changed_mean_cosine=float(np.mean(changed_cos)) if changed_cos else None, centroid_cosine=centroid_cos,
        mmd2=mmd2, p_value=p_value, sample=sample, permutations=permutations, threshold=float(threshold),
        drifted=p_value is not None and p_value < threshold)
