"""`arsenale index`: vector indexes from the shell, on a local store or a server (`--uri http://…`).

    arsenale index list
    arsenale index versions kb
    arsenale index show kb --version 2
    arsenale index search kb --text "how long do refunds take?" -k 4      # or --vector '[0.1, …]'
    arsenale index add kb docs.jsonl                 # one {"id", "text", "metadata"?, "vector"?} per line
    arsenale index delete kb faq-1 faq-2

`add` sends the vectors a file holds (every line or none); without them the texts are embedded by the
default hashing embedder, which is all a shell can run. Each of `add` and `delete` makes one new version.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client

app = typer.Typer(help="Vector indexes: versions, search, add and delete documents.", no_args_is_help=True)

MAX_LINES = 1_000_000
Version = Annotated[str | None, typer.Option("--version", help="A version number or 'latest' (default).")]


def _json(value: Any) -> None:
    data = [asdict(v) for v in value] if isinstance(value, list) else asdict(value)
    render.print_json(data)


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The documents and, when every line has one, their vectors; a line-numbered error otherwise."""
    docs: list[dict[str, Any]] = []
    vectors: list[Any] = []
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if n > MAX_LINES:
                    raise InvalidInput(f"{path} has more than {MAX_LINES} lines; split it", field="file")
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise InvalidInput(f"{path}:{n} is not JSON: {exc}", field="file") from None
                if not isinstance(row, dict):
                    raise InvalidInput(f"{path}:{n} must be a JSON object", field="file")
                unknown = set(row) - {"id", "text", "metadata", "vector"}
                if unknown:
                    raise InvalidInput(f"{path}:{n} has unknown fields: {', '.join(sorted(unknown))}", field="file")
                if "vector" in row:
                    vectors.append(row.pop("vector"))
                docs.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field="file") from None
    if not docs:
        raise InvalidInput(f"{path} holds no documents", field="file")
    if vectors and len(vectors) != len(docs):
        raise InvalidInput(f"{path}: {len(vectors)} of {len(docs)} lines have a vector; give one on every line "
                           "or on none", field="file")
    return docs, vectors or None


@app.command("list")
def list_indexes(as_json: render.JsonFlag = False) -> None:
    """Every index with its dimension, metric, embedder and newest version."""
    found = Client().indexes.list()
    if as_json:
        _json(found)
        return
    if not found:
        render.print_message("no vector indexes yet: arsenale index add NAME docs.jsonl")
        return
    t = render.table("name", "dim", "metric", "embedder", "latest", "count", "created", "by")
    for i in found:
        t.add_row(render.cell(i.name, "bold"), render.cell(i.dim), render.cell(i.metric), render.cell(i.embedder),
                  render.cell(i.latest_version), render.cell(i.count), render.cell(render.iso(i.creation_time)),
                  render.cell(i.created_by))
    render.show(t)


@app.command("versions")
def versions(name: Annotated[str, typer.Argument(help="The index's name.")],
             as_json: render.JsonFlag = False) -> None:
    """An index's versions, oldest first: each one's row count and digest."""
    found = Client().indexes.versions(name)
    if as_json:
        _json(found)
        return
    t = render.table("version", "parent", "count", "digest", "created", "by", fixed=("digest",))
    for v in found:
        t.add_row(render.cell(v.version, "bold"), render.cell(v.parent_version), render.cell(v.count),
                  render.cell(v.digest[:16]), render.cell(render.iso(v.creation_time)), render.cell(v.created_by))
    render.show(t)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="The index's name.")], version: Version = None,
         as_json: render.JsonFlag = False) -> None:
    """One index and one of its versions (the latest by default)."""
    api = Client().indexes
    info, v = api.get(name), api.version(name, version)
    if as_json:
        render.print_json({"index": asdict(info), "version": asdict(v)})
        return
    render.print_message(f"{info.name}  dim {info.dim}  metric {info.metric}  embedder {info.embedder or '—'}",
                         "bold")
    render.print_message(f"version {v.version} (parent {v.parent_version or '—'})  {v.count} rows  digest "
                         f"{v.digest}  by {v.created_by} at {render.iso(v.creation_time)}")


@app.command("search")
def search(name: Annotated[str, typer.Argument(help="The index's name.")],
           text: Annotated[str | None, typer.Option("--text", help="A query text (hashing-embedded indexes).")] = None,
           vector: Annotated[str | None, typer.Option("--vector", help="A query vector as a JSON list.")] = None,
           k: Annotated[int, typer.Option("-k", "--k", help="How many hits.")] = 4, version: Version = None,
           as_json: render.JsonFlag = False) -> None:
    """The k nearest documents of a version to a text or a vector, best first."""
    if (text is None) == (vector is None):
        raise InvalidInput("give exactly one of --text and --vector", field="text")
    query: Any = text
    if vector is not None:
        try:
            query = json.loads(vector)
        except ValueError as exc:
            raise InvalidInput(f"--vector must be a JSON list of numbers: {exc}", field="vector") from None
        if not isinstance(query, list):
            raise InvalidInput("--vector must be a JSON list of numbers", field="vector")
    hits = Client().indexes.search(name, query, k, version)
    if as_json:
        _json(hits)
        return
    if not hits:
        render.print_message("no hits: the version is empty")
        return
    t = render.table("rank", "id", "score", "text", "metadata", "version")
    for rank, h in enumerate(hits, 1):
        t.add_row(render.cell(rank), render.cell(h.id, "bold"), render.cell(f"{h.score:.4f}"), render.cell(h.text),
                  render.cell(json.dumps(h.metadata, sort_keys=True, ensure_ascii=False) if h.metadata else ""),
                  render.cell(h.version))
    render.show(t)


@app.command("add")
def add(name: Annotated[str, typer.Argument(help="The index's name (created on first add).")],
        file: Annotated[Path, typer.Argument(help="JSONL: one {id, text, metadata?, vector?} per line.")],
        dim: Annotated[int | None, typer.Option("--dim", help="The dimension, for a new index.")] = None,
        metric: Annotated[str | None, typer.Option("--metric", help="cosine, dot or l2, for a new index.")] = None,
        embedder: Annotated[str | None, typer.Option(
            "--embedder", help="The name of the embedder that made the file's vectors, for a new index.")] = None,
        as_json: render.JsonFlag = False) -> None:
    """A new version: the latest one's documents plus the file's (an id given again replaces its row)."""
    docs, vectors = _read_jsonl(file)
    v = Client().indexes.add(name, docs, vectors, dim=dim, metric=metric, embedder=embedder)
    if as_json:
        _json(v)
    else:
        render.print_message(f"{name} version {v.version}: {v.count} rows (+{len(docs)} from {file.name})  "
                             f"digest {v.digest[:16]}")


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="The index's name.")],
           ids: Annotated[list[str], typer.Argument(help="The ids to remove; all must be in the latest version.")],
           as_json: render.JsonFlag = False) -> None:
    """A new version without the given ids."""
    v = Client().indexes.delete(name, ids)
    if as_json:
        _json(v)
    else:
        render.print_message(f"{name} version {v.version}: {v.count} rows (-{len(ids)})  digest {v.digest[:16]}")


def _local_index(name: str, embedder: str) -> Any:
    """The index as an `ars.VectorIndex` next to the store (retrieval quality and drift read its vectors)."""
    client = Client()
    if str(client.uri).startswith(("http://", "https://")):
        raise InvalidInput("index recall and drift run next to the store: give a database --uri, not a server",
                           field="uri")
    from arsenale.llm import embedders
    from arsenale.llm.vectors import VectorIndex

    if embedder not in ("hashing", "local"):
        raise InvalidInput(f"--embedder must be hashing or local; got {embedder!r}", field="embedder")
    return VectorIndex(name, client=client, embedder=embedders.local() if embedder == "local" else None)


@app.command("recall")
def recall(name: Annotated[str, typer.Argument(help="The index's name.")],
           dataset: Annotated[str, typer.Argument(help="A registered dataset (name or name@version) with the "
                                                       "columns question and relevant_ids.")],
           k: Annotated[int, typer.Option("-k", "--k", help="How many hits count.")] = 10, version: Version = None,
           embedder: Annotated[str, typer.Option("--embedder", help="How questions are embedded: hashing (the "
                                                 "default embedder) or local (all-MiniLM-L6-v2).")] = "hashing",
           log: Annotated[bool, typer.Option("--log", help="Record the result as a tracked run.")] = False,
           experiment: Annotated[str | None, typer.Option("--experiment", help="The run's experiment.")] = None,
           as_json: render.JsonFlag = False) -> None:
    """Retrieval quality of a version on an evaluation set: recall, precision, MRR, nDCG and hit rate at k."""
    from arsenale.llm.retrieval import recall_at_k

    result = recall_at_k(_local_index(name, embedder), dataset, k=k, version=version, log=log,
                         experiment=experiment)
    if as_json:
        render.print_json({"index": result.index, "version": result.version, "k": result.k,
                           "dataset": result.dataset, "run_id": result.run_id, "metrics": result.metrics,
                           "questions": len(result.rows)})
        return
    render.print_message(f"{result.index} version {result.version} on {len(result.rows)} questions of "
                         f"{result.dataset}" + (f"  (run {result.run_id})" if result.run_id else ""), "bold")
    t = render.table("metric", "value")
    for metric, value in result.metrics.items():
        t.add_row(render.cell(metric), render.cell(f"{value:.4f}"))
    render.show(t)


@app.command("drift")
def drift(name: Annotated[str, typer.Argument(help="The index's name.")],
          from_version: Annotated[int, typer.Option("--from", help="The earlier version.")],
          to_version: Annotated[int, typer.Option("--to", help="The later version.")],
          sample: Annotated[int, typer.Option("--sample", help="Vectors drawn per version.")] = 500,
          permutations: Annotated[int, typer.Option("--permutations", help="For the MMD p-value.")] = 200,
          threshold: Annotated[float, typer.Option("--threshold", help="p-value under which it drifted.")] = 0.05,
          seed: Annotated[int, typer.Option("--seed")] = 0,
          as_json: render.JsonFlag = False) -> None:
    """How the embeddings moved between two versions: ids added, removed and changed, the centroid shift
    and an MMD permutation test."""
    from arsenale.llm.retrieval import embedding_drift

    report = embedding_drift(_local_index(name, "hashing"), from_version, to_version, sample=sample,
                             permutations=permutations, threshold=threshold, seed=seed).to_dict()
    if as_json:
        render.print_json(report)
        return
    verdict = "drifted" if report["drifted"] else "no drift"
    render.print_message(f"{name} v{from_version} → v{to_version}: {verdict} (p = {report['p_value']})", "bold")
    t = render.table("measure", "value")
    for key in ("from_count", "to_count", "added", "removed", "common", "changed", "changed_share",
                "changed_mean_cosine", "centroid_shift", "mmd2", "p_value"):
        value = report[key]
        t.add_row(render.cell(key), render.cell(f"{value:.4g}" if isinstance(value, float) else value))
    render.show(t)
