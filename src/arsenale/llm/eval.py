"""LLM evaluation: a prompt version run over a registered dataset, every call traced, every output scored, the
means logged to a tracked run; two prompt versions compared with a paired bootstrap; human feedback on traces.

    import arsenale.llm.eval as ev
    ars.register_dataset("support-qa", pd.DataFrame({"question": [...], "expected": [...], "context": [...]}))
    result = ev.evaluate("support-answer@staging", "support-qa", model=ev.OpenAICompatible(url, "gpt-x"),
                         scorers=[ev.exact_match, ev.token_f1, ev.groundedness, ev.no_pii])
    result.scores            # {"exact_match": 0.62, ...}; result.rows: one row per question, with trace ids
    ev.compare("support-answer/2", "support-answer/3", "support-qa", model=..., scorers=[...]).diffs
    ev.feedback(trace_id, thumbs=True, comment="helpful")

Datasets are Arsenale datasets (versioned, immutable): each row's columns fill the template's variables
(`variables={"template_var": "column"}` renames) and the scorers' arguments: a scorer's first argument is
the output; any other argument named like a column (`expected`, `context`, `question`, …) gets that cell,
and one named `row` gets the whole row. Everything the prompt and the scorers need is checked against the
dataset before the first model call. The run holds the params `prompt` (`name/version`), `dataset`
(`name@version`), `model` and `scorers`, one metric per scorer (its mean), and the per-row table as the
artifact `eval/rows.parquet`; each row's trace carries the prompt version and `arsenale.run_id`.
The scorers and providers are re-exported here: `ev.groundedness(reply, hits)` works.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arsenale.errors import InvalidInput
from arsenale.llm import tracer
from arsenale.llm.providers import (
    ChatModel,
    Completion,
    DeterministicModel,
    EchoModel,
    OpenAICompatible,
    reply_text,
)
from arsenale.llm.scorers import (
    DEFAULT_JUDGE_RUBRIC,
    DEFAULT_TOXIC_WORDS,
    embedding_similarity,
    exact_match,
    find_pii,
    fuzzy_match,
    groundedness,
    hashing_embedder,
    llm_judge,
    no_pii,
    parse_judge_score,
    token_f1,
    toxicity_free,
)

if TYPE_CHECKING:
    import pandas as pd

    from arsenale.llm.prompts import PromptVersion
    from arsenale.llm.tracing import Score
    from arsenale.platform import Client

__all__ = ["DEFAULT_JUDGE_RUBRIC", "DEFAULT_TOXIC_WORDS", "ChatModel", "Comparison", "Completion",
           "DeterministicModel", "EchoModel", "EvalResult", "OpenAICompatible", "ScoreDiff", "compare",
           "embedding_similarity", "evaluate", "exact_match", "feedback", "find_pii", "fuzzy_match",
           "groundedness", "hashing_embedder", "llm_judge", "no_pii", "parse_judge_score", "token_f1",
           "toxicity_free"]

Scorer = Callable[..., float]
ROWS_ARTIFACT = "eval/rows.parquet"


@dataclass
class EvalResult:
    """One prompt version on one dataset version: per-row outputs and scores, and each scorer's mean."""

    run_id: str
    prompt: str  # name/version
    dataset: str  # name@version
    scores: dict[str, float]
    rows: pd.DataFrame  # row, output, trace_id, one column per scorer

    def __repr__(self) -> str:
        means = ", ".join(f"{k}={v:.3f}" for k, v in self.scores.items())
        return f"<EvalResult {self.prompt} on {self.dataset}: {means}>"


@dataclass(frozen=True)
class ScoreDiff:
    """A scorer's mean for A and for B, B - A, and the paired bootstrap interval of B - A."""

    a: float
    b: float
    diff: float
    low: float
    high: float
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero: B differs from A beyond resampling noise."""
        return self.low > 0 or self.high < 0


@dataclass
class Comparison:
    run_id: str  # the parent run; the two evaluations are its nested runs
    a: EvalResult
    b: EvalResult
    diffs: dict[str, ScoreDiff] = field(default_factory=dict)


# ---- checking the inputs ---------------------------------------------------------------------------------


def _scorer_name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__name__", type(fn).__name__))


def _named_scorers(scorers: Sequence[Scorer] | Mapping[str, Scorer]) -> dict[str, Scorer]:
    items = list(scorers.items()) if isinstance(scorers, Mapping) else [(_scorer_name(s), s) for s in scorers]
    if not items:
        raise InvalidInput("give at least one scorer", field="scorers")
    out: dict[str, Scorer] = {}
    for name, fn in items:
        if not callable(fn):
            raise InvalidInput(f"scorer {name!r} is not callable", field="scorers")
        if name in out:
            raise InvalidInput(f"two scorers are named {name!r}; pass a mapping name -> scorer", field="scorers")
        out[name] = fn
    return out


def _scorer_args(name: str, fn: Scorer, columns: Sequence[str]) -> tuple[list[str], bool]:
    """The columns a scorer takes by name (after its first argument, the output) and whether it takes `row`;
    a required argument no column can fill is an error now, before any model call."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [], False
    if not params:
        raise InvalidInput(f"scorer {name!r} takes no argument; it needs the output", field="scorers")
    wanted, takes_row = [], False
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name == "row":
            takes_row = True
        elif p.name in columns:
            wanted.append(p.name)
        elif p.default is p.empty:
            raise InvalidInput(f"scorer {name!r} needs {p.name!r}, which is not a column of the dataset "
                               f"(columns: {', '.join(columns)})", field="scorers")
    return wanted, takes_row


def _dataset_ref(dataset: Any) -> tuple[str, int | str]:
    if isinstance(dataset, str):
        name, _, version = dataset.removeprefix("dataset:").partition("@")
        return name, version or "latest"
    got, number = getattr(dataset, "name", None), getattr(dataset, "version", None)
    if isinstance(got, str) and isinstance(number, (int, str)):  # ars.Dataset, DatasetVersion
        return got, number
    raise InvalidInput("dataset must be a registered dataset: 'name', 'name@3' or ars.Dataset(...)",
                       field="dataset")


@dataclass
class _Plan:
    client: Any
    prompt: PromptVersion
    dataset: str
    name: str
    version: int
    frame: pd.DataFrame
    columns: dict[str, str]  # template variable -> column
    scorers: dict[str, tuple[Scorer, list[str], bool]]


def _plan(client: Any, prompt: Any, dataset: Any, scorers: Sequence[Scorer] | Mapping[str, Scorer],
          variables: Mapping[str, str] | None) -> _Plan:
    pv = client.prompts.get(prompt) if isinstance(prompt, str) else prompt
    if not hasattr(pv, "render") or not hasattr(pv, "variables"):
        raise InvalidInput("prompt must be a reference ('name@label', 'name/3') or a PromptVersion", field="prompt")
    name, version = _dataset_ref(dataset)
    info = client.datasets.get(name, version)
    frame = client.datasets.read(info.name, info.version).to_pandas()
    ref = f"{info.name}@{info.version}"
    if frame.empty:
        raise InvalidInput(f"dataset {ref} has no rows", field="dataset")
    cols = [str(c) for c in frame.columns]
    mapping = dict(variables or {})
    unknown = sorted(set(mapping) - set(pv.variables))
    if unknown:
        raise InvalidInput(f"variables maps {', '.join(unknown)}, which the template of {pv.name}/{pv.version} "
                           f"does not use (it uses {', '.join(pv.variables) or 'none'})", field="variables")
    columns = {v: mapping.get(v, v) for v in pv.variables}
    for var, col in columns.items():
        if col not in cols:
            raise InvalidInput(f"dataset {ref} has no column {col!r} for the template variable {var!r} of "
                               f"{pv.name}/{pv.version}; columns: {', '.join(cols)} (rename with variables="
                               f"{{{var!r}: 'column'}})", field="variables")
    checked = {n: (fn, *_scorer_args(n, fn, cols)) for n, fn in _named_scorers(scorers).items()}
    return _Plan(client, pv, ref, info.name, info.version, frame, columns, checked)


# ---- running ------------------------------------------------------------------------------------------------


def _accepts_params(model: Any) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(model).parameters.values())
    except (TypeError, ValueError):
        return False


def _cell(value: Any) -> Any:
    """A Parquet cell as Python: arrays (list columns) become lists, NaN/None become None."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        return value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _score(name: str, value: Any, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(f"scorer {name!r} returned {value!r:.40} on row {i}; a score is a number in [0, 1]",
                           field="scorers")
    return float(value)


def _experiment_id(client: Any, experiment: str | None, parent: str | None) -> str:
    """The named experiment; without a name, the parent run's (as nested runs do), else the default one."""
    from arsenale.tracking.fluent import _experiment_id as resolve

    if experiment is None and parent is not None:
        return str(client.tracking.get_run(parent).info.experiment_id)
    return resolve(client, experiment)


def _active_parent(client: Any) -> str | None:
    """The active `ars.start_run()` run, when it lives in this client's store: evaluations nest in it."""
    from arsenale.tracking.fluent import active_run

    run = active_run()
    return run.run_id if run is not None and getattr(run, "_client", None) is client else None


def _run(plan: _Plan, model: ChatModel, *, run_name: str | None, experiment: str | None,
         parent_run_id: str | None, trace_name: str) -> EvalResult:
    import pandas as pd

    from arsenale.tracking.fluent import PARENT_TAG
    from arsenale.tracking.source import source_tags

    client, pv = plan.client, plan.prompt
    prompt_ref = f"{pv.name}/{pv.version}"
    parent = parent_run_id or _active_parent(client)
    tags = {**source_tags(), "ars.eval": "llm"}
    if parent:
        tags[PARENT_TAG] = parent
    params = {"prompt": prompt_ref, "dataset": plan.dataset, "scorers": ",".join(plan.scorers),
              "model": str(getattr(model, "model", None) or pv.model or _scorer_name(model))}
    run = client.tracking.create_run(_experiment_id(client, experiment, parent), run_name=run_name, tags=tags,
                                     params=params, parent_run_id=parent)
    run_id = run.info.run_id
    status = "FAILED"
    try:
        client.datasets.record_input(run_id, plan.name, plan.version)
        with_params = _accepts_params(model)
        rows: list[dict[str, Any]] = []
        tokens = [0, 0]
        for i, record in enumerate(plan.frame.to_dict("records")):
            row = {k: _cell(v) for k, v in record.items()}
            text = pv.render({var: row[col] for var, col in plan.columns.items()})
            with tracer.trace(trace_name, prompt=pv.uri, client=client, attributes={
                    "arsenale.run_id": run_id, "arsenale.dataset": plan.dataset, "arsenale.row": i}) as t:
                with t.span("generation", kind="llm", attributes={"input": text}) as g:
                    start = time.perf_counter()
                    reply = model(text, **pv.params) if with_params else model(text)
                    latency = (time.perf_counter() - start) * 1000
                    output = reply_text(reply)
                    g.set_attribute("output", output)
                    if isinstance(reply, Completion) or hasattr(reply, "input_tokens"):
                        g.set_usage(model=getattr(reply, "model", None) or pv.model,
                                    input_tokens=getattr(reply, "input_tokens", None),
                                    output_tokens=getattr(reply, "output_tokens", None),
                                    cost=getattr(reply, "cost", None))
                        tokens[0] += getattr(reply, "input_tokens", None) or 0
                        tokens[1] += getattr(reply, "output_tokens", None) or 0
                out: dict[str, Any] = {"row": i, "output": output, "trace_id": t.trace_id, "latency_ms": latency}
                for name, (fn, wanted, takes_row) in plan.scorers.items():
                    kwargs = {c: row[c] for c in wanted}
                    if takes_row:
                        kwargs["row"] = row
                    try:
                        value = fn(output, **kwargs)
                    except Exception as exc:
                        raise InvalidInput(f"scorer {name!r} failed on row {i}: {type(exc).__name__}: {exc}",
                                           field="scorers") from exc
                    out[name] = _score(name, value, i)
                    t.score(name, out[name], source="auto")
            rows.append(out)
        table = pd.DataFrame(rows)
        scores = {name: float(table[name].mean()) for name in plan.scorers}
        now = int(time.time() * 1000)
        metrics = [(k, v, 0, now) for k, v in scores.items()]
        metrics += [("eval.rows", float(len(table)), 0, now), ("eval.latency_ms", float(table["latency_ms"].mean()),
                                                               0, now)]
        if any(tokens):
            metrics += [("eval.input_tokens", float(tokens[0]), 0, now), ("eval.output_tokens", float(tokens[1]),
                                                                           0, now)]
        client.tracking.log_batch(run_id, metrics=metrics)
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        client.tracking.log_artifact_bytes(run_id, ROWS_ARTIFACT, buf.getvalue())
        client.tracking.log_artifact_bytes(run_id, "eval/summary.json", json.dumps(
            {"prompt": prompt_ref, "dataset": plan.dataset, "scores": scores}, indent=2).encode())
        tracer.flush(client)  # the traces and their scores are searchable when the result is returned
        status = "FINISHED"
    finally:
        client.tracking.update_run(run_id, status=status)
    return EvalResult(run_id, prompt_ref, plan.dataset, scores, table)


def _client(client: Client | None) -> Any:
    if client is not None:
        return client
    from arsenale.tracking.fluent import get_client

    return get_client()


def evaluate(prompt: str | PromptVersion, dataset: Any, *, model: ChatModel,
             scorers: Sequence[Scorer] | Mapping[str, Scorer], variables: Mapping[str, str] | None = None,
             run_name: str | None = None, experiment: str | None = None, client: Client | None = None,
             trace_name: str = "eval") -> EvalResult:
    """Run `prompt` (a reference or a PromptVersion) over every row of `dataset` ('name', 'name@3' or
    `ars.Dataset`) with `model`, score each output with each scorer, and log it all to a new tracked run
    (nested in the active run, if any). A failing model call or scorer marks the run FAILED and raises."""
    plan = _plan(_client(client), prompt, dataset, scorers, variables)
    if not callable(model):
        raise InvalidInput("model must be a callable prompt -> reply", field="model")
    return _run(plan, model, run_name=run_name, experiment=experiment, parent_run_id=None, trace_name=trace_name)


def _bootstrap(a: Any, b: Any, resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """The paired bootstrap interval of mean(b) - mean(a) over the same rows: the gates' bootstrap, with
    the scores' mean as the metric."""
    import numpy as np

    from arsenale.gates.metrics import Metric
    from arsenale.gates.stats import paired_bootstrap

    mean = Metric("mean", lambda _, p: float(np.mean(p)), True, "values", lambda _, p, W: (W @ p) / W.sum(axis=1))
    interval = paired_bootstrap(mean, np.zeros(len(a)), b, a, resamples=resamples, confidence=confidence, seed=seed)
    return interval.low, interval.high


def compare(prompt_a: str | PromptVersion, prompt_b: str | PromptVersion, dataset: Any, *, model: ChatModel,
            scorers: Sequence[Scorer] | Mapping[str, Scorer], variables: Mapping[str, str] | None = None,
            run_name: str | None = None, experiment: str | None = None, client: Client | None = None,
            resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Evaluate two prompt versions on the same dataset rows (two runs nested in one comparison run) and,
    per scorer, B's mean minus A's with a paired bootstrap interval over the rows. The parent run holds
    `<scorer>.a`, `<scorer>.b`, `<scorer>.diff`, `<scorer>.diff_low` and `<scorer>.diff_high`."""
    import numpy as np

    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1; got {confidence}", field="confidence")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not 100 <= resamples <= 100_000:
        raise InvalidInput(f"resamples must be between 100 and 100000; got {resamples}", field="resamples")
    c = _client(client)
    plan_a = _plan(c, prompt_a, dataset, scorers, variables)
    plan_b = _plan(c, prompt_b, f"{plan_a.name}@{plan_a.version}", scorers, variables)
    if not callable(model):
        raise InvalidInput("model must be a callable prompt -> reply", field="model")
    a_ref, b_ref = (f"{p.prompt.name}/{p.prompt.version}" for p in (plan_a, plan_b))
    from arsenale.tracking.fluent import PARENT_TAG
    from arsenale.tracking.source import source_tags

    outer = _active_parent(c)
    tags = {**source_tags(), "ars.eval": "compare", **({PARENT_TAG: outer} if outer else {})}
    parent = c.tracking.create_run(_experiment_id(c, experiment, outer), run_name=run_name,
                                   tags=tags, parent_run_id=outer,
                                   params={"prompt_a": a_ref, "prompt_b": b_ref, "dataset": plan_a.dataset})
    status = "FAILED"
    try:
        a = _run(plan_a, model, run_name=None, experiment=experiment, parent_run_id=parent.info.run_id,
                 trace_name="eval")
        b = _run(plan_b, model, run_name=None, experiment=experiment, parent_run_id=parent.info.run_id,
                 trace_name="eval")
        diffs: dict[str, ScoreDiff] = {}
        for name in plan_a.scorers:
            scores_a, scores_b = a.rows[name].to_numpy(dtype=float), b.rows[name].to_numpy(dtype=float)
            d = scores_b - scores_a
            low, high = _bootstrap(scores_a, scores_b, resamples, confidence, seed)
            diffs[name] = ScoreDiff(a.scores[name], b.scores[name], float(np.mean(d)), low, high, confidence)
        now = int(time.time() * 1000)
        c.tracking.log_batch(parent.info.run_id, metrics=[
            (f"{name}.{part}", value, 0, now) for name, s in diffs.items()
            for part, value in (("a", s.a), ("b", s.b), ("diff", s.diff), ("diff_low", s.low),
                                ("diff_high", s.high))])
        status = "FINISHED"
    finally:
        c.tracking.update_run(parent.info.run_id, status=status)
    return Comparison(parent.info.run_id, a, b, diffs)


# ---- human feedback --------------------------------------------------------------------------------------


def feedback(trace_id: str, *, thumbs: bool | None = None, score: float | None = None,
             comment: str | None = None, name: str = "feedback", client: Client | None = None) -> list[Score]:
    """A person's judgement of a trace, stored as human scores (`TraceService.score`): thumbs up/down as
    `thumbs` = 1/0, a number as `name` (default `feedback`), and the comment on the first of them (alone
    when neither is given). Search them with `client.traces.search(score="thumbs", min_score=1)`."""
    if thumbs is not None and not isinstance(thumbs, bool):
        raise InvalidInput("thumbs must be True (up), False (down) or None", field="thumbs")
    entries: list[tuple[str, float | None]] = []
    if thumbs is not None:
        entries.append(("thumbs", 1.0 if thumbs else 0.0))
    if score is not None:
        entries.append((name, score))
    if not entries:
        if comment is None:
            raise InvalidInput("give thumbs, a score or a comment", field="thumbs")
        entries.append((name, None))
    from arsenale.llm.tracing import check_score

    for i, (n, v) in enumerate(entries):  # all checked before the first is stored
        check_score(n, v, comment if i == 0 else None, "human")
    traces = _client(client).traces
    return [traces.score(trace_id, n, v, comment=comment if i == 0 else None, source="human")
            for i, (n, v) in enumerate(entries)]
