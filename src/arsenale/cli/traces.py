"""`arsenale traces`: LLM traces, their span trees, cost and the price table.

    arsenale traces list [--session S] [--user U] [--name N] [--min-cost X] [--max-cost Y]
                         [--attribute key=value ...] [--prompt P] [--score NAME [--min-score V]]
                         [--since 1h] [--status ERROR] [--limit 50] [--json]
    arsenale traces show TRACE_ID [--json]        the span tree with durations, tokens and cost
    arsenale traces score TRACE_ID NAME [VALUE] [--comment TEXT]
    arsenale traces price MODEL --input X --output Y   prices per million tokens
    arsenale traces prices
"""

from __future__ import annotations

from typing import Annotated

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client

app = typer.Typer(help="LLM traces: span trees, tokens, cost, latency and feedback.", no_args_is_help=True)


def _ns_iso(ns: int | None) -> str:
    return render.iso(None if ns is None else ns // 1_000_000)


def _tokens(tin: int | None, tout: int | None) -> str:
    return "—" if tin is None and tout is None else f"{tin or 0} → {tout or 0}"


@app.command("list")
def list_traces(
        session: Annotated[str | None, typer.Option("--session", help="Only this session's traces.")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Only this user's traces.")] = None,
        name: Annotated[str | None, typer.Option("--name", help="Only traces of this name.")] = None,
        min_cost: Annotated[float | None, typer.Option("--min-cost", help="At least this cost.")] = None,
        max_cost: Annotated[float | None, typer.Option("--max-cost", help="At most this cost.")] = None,
        attribute: Annotated[list[str] | None, typer.Option("--attribute", help="key=value on any span.")] = None,
        prompt: Annotated[str | None, typer.Option("--prompt", help="Only traces of this prompt version.")] = None,
        score: Annotated[str | None, typer.Option("--score", help="Only traces with this score.")] = None,
        min_score: Annotated[float | None, typer.Option("--min-score", help="…at least this value.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="1h, 7d, or an ISO time.")] = None,
        status: Annotated[str | None, typer.Option("--status", help="OK or ERROR.")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
        as_json: render.JsonFlag = False) -> None:
    """Traces, newest first."""
    attributes = {}
    for pair in attribute or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--attribute must read key=value, got {pair!r}", field="attribute")
        attributes[key] = value
    from arsenale.llm.tracing import cost_text, duration_text

    page = Client().traces.search(session=session, user=user, name=name, min_cost=min_cost, max_cost=max_cost,
                                  attributes=attributes, prompt=prompt, score=score, min_score=min_score,
                                  since=since, status=status, limit=limit)
    if as_json:
        render.print_json(page)
        return
    if not page.traces:
        render.print_message("no traces match: record some with `with ars.trace(...)` or an OTLP exporter")
        return
    t = render.table("trace", "name", "session", "user", "spans", "tokens", "cost", "latency", "status", "start",
                     fixed=("trace", "start"))
    for tr in page.traces:
        t.add_row(render.cell(tr.trace_id), render.cell(tr.name, "bold"), render.cell(tr.session),
                  render.cell(tr.user_id), render.cell(tr.span_count),
                  render.cell(_tokens(tr.input_tokens, tr.output_tokens)), render.cell(cost_text(tr.cost)),
                  render.cell(duration_text(tr.start_ns, tr.end_ns)),
                  render.cell(tr.status, "red" if tr.status == "ERROR" else "green"), render.cell(_ns_iso(tr.start_ns)))
    render.show(t)


@app.command("show")
def show(trace_id: Annotated[str, typer.Argument(help="The trace's id (32 hex digits).")],
         as_json: render.JsonFlag = False) -> None:
    """One trace as a span tree: durations, tokens and cost per span, then its scores."""
    from arsenale.llm.tracing import cost_text, duration_text, span_tree

    tr = Client().traces.get(trace_id)
    if as_json:
        render.print_json(tr)
        return
    title = (f"{tr.name or tr.trace_id} · {tr.span_count} spans · {duration_text(tr.start_ns, tr.end_ns)} · "
             f"{_tokens(tr.input_tokens, tr.output_tokens)} tokens · {cost_text(tr.cost)}"
             + (f" · session {tr.session}" if tr.session else "") + (f" · user {tr.user_id}" if tr.user_id else ""))
    t = render.table("span", "kind", "duration", "model", "tokens", "cost", "status", title=title)
    for depth, s in span_tree(tr):
        label = "  " * depth + ("└ " if depth else "") + s.name + (" (orphan: unknown parent)" if s.orphan else "")
        status = s.status + (f": {s.status_message}" if s.status_message else "")
        t.add_row(render.cell(label, "bold" if depth == 0 else ""), render.cell(s.kind),
                  render.cell(duration_text(s.start_ns, s.end_ns)), render.cell(s.model),
                  render.cell(_tokens(s.input_tokens, s.output_tokens)), render.cell(cost_text(s.cost)),
                  render.cell(status, "red" if s.status == "ERROR" else ""))
    render.show(t)
    if tr.scores:
        st = render.table("score", "value", "comment", "source", "by", title="Scores")
        for sc in tr.scores:
            st.add_row(render.cell(sc.name), render.cell(render.number(sc.value)), render.cell(sc.comment),
                       render.cell(sc.source), render.cell(sc.created_by))
        render.show(st)


@app.command("score")
def score(trace_id: Annotated[str, typer.Argument(help="The trace's id.")],
          name: Annotated[str, typer.Argument(help="e.g. thumbs, groundedness.")],
          value: Annotated[float | None, typer.Argument(help="The score (1/-1 for thumbs).")] = None,
          comment: Annotated[str | None, typer.Option("--comment", help="Free-text feedback.")] = None,
          as_json: render.JsonFlag = False) -> None:
    """Human feedback on a trace."""
    s = Client().traces.score(trace_id, name, value, comment, "human")
    if as_json:
        render.print_json(s)
    else:
        render.print_message(f"scored {trace_id}: {name} = {render.number(s.value)}", "green")


@app.command("price")
def price(model: Annotated[str, typer.Argument(help="The model's name as spans report it.")],
          input_price: Annotated[float, typer.Option("--input", help="Price per million input tokens.")],
          output_price: Annotated[float, typer.Option("--output", help="Price per million output tokens.")],
          as_json: render.JsonFlag = False) -> None:
    """Set a model's prices; spans stored from now on are costed with them."""
    p = Client().traces.set_price(model, input_price, output_price)
    if as_json:
        render.print_json(p)
    else:
        render.print_message(f"{p.model}: {p.input_per_million:g} in / {p.output_per_million:g} out per million "
                             "tokens", "green")


@app.command("prices")
def prices(as_json: render.JsonFlag = False) -> None:
    """The price table."""
    rows = Client().traces.prices()
    if as_json:
        render.print_json(rows)
        return
    t = render.table("model", "input / M", "output / M", "updated", "by")
    for p in rows:
        t.add_row(render.cell(p.model, "bold"), render.cell(f"{p.input_per_million:g}"),
                  render.cell(f"{p.output_per_million:g}"), render.cell(render.iso(p.update_time)),
                  render.cell(p.updated_by))
    render.show(t)
