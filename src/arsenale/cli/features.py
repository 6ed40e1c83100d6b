"""`arsenale features`: the feature store from the shell.

    arsenale features apply features.py            # every Entity, FeatureView, on-demand feature and service in it
    arsenale features list
    arsenale features materialize --end now        # incremental from each view's watermark
    arsenale features get txn_stats:amount_7d --entity customer_id=42 --entity customer_id=7
    arsenale features freshness
    arsenale features skew fraud-api --since-minutes 60   # what serving read vs the offline store
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.errors import InvalidInput

app = typer.Typer(help="Feature store: definitions, materialization, online features.", no_args_is_help=True)


def _store() -> Any:
    from arsenale.features.store import FeatureStore
    from arsenale.platform import Client

    return FeatureStore(Client())


def load_definitions(path: Path) -> list[Any]:
    """Every definition object a Python file (or a package folder's __init__.py) defines at top level."""
    from arsenale.features.definitions import Entity, FeatureService, FeatureView, OnDemandFeature

    file = path / "__init__.py" if path.is_dir() else path
    if not file.is_file() or file.suffix != ".py":
        raise InvalidInput(f"{path} is not a Python file", field="path")
    folder = str(file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file's own imports, and its on-demand functions, resolve
    name = file.stem if file.name != "__init__.py" else file.parent.name
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values() if isinstance(v, (Entity, FeatureView, OnDemandFeature,
                                                                 FeatureService))]
    if not found:
        raise InvalidInput(f"{path} defines no Entity, FeatureView, on-demand feature or FeatureService",
                           field="path")
    return found


@app.command("apply")
def apply(path: Annotated[Path, typer.Argument(help="A Python file defining the features.")],
          as_json: render.JsonFlag = False) -> None:
    """Store every definition in PATH; changed ones get a new version, unchanged ones keep theirs."""
    infos = _store().apply(load_definitions(path))
    if as_json:
        render.print_json(infos)
        return
    t = render.table("kind", "name", "version", "change")
    for i in infos:
        t.add_row(render.cell(i.kind), render.cell(i.name, "bold"), render.cell(i.version),
                  render.cell("new version" if i.created else "unchanged", "green" if i.created else "dim"))
    render.show(t)


@app.command("list")
def list_definitions(kind: Annotated[str | None, typer.Option(
                         "--kind", help="entity, view, on_demand or service")] = None,
                     as_json: render.JsonFlag = False) -> None:
    """The newest version of every definition."""
    infos = _store().list(kind)
    if as_json:
        render.print_json(infos)
        return
    if not infos:
        render.print_message("no feature definitions yet: arsenale features apply features.py")
        return
    t = render.table("kind", "name", "version", "what", "created", "by")
    for i in infos:
        t.add_row(render.cell(i.kind), render.cell(i.name, "bold"), render.cell(i.version),
                  render.cell(_summary(i.kind, i.spec)), render.cell(render.iso(i.creation_time)),
                  render.cell(i.created_by))
    render.show(t)


def _summary(kind: str, spec: dict[str, Any]) -> str:
    if kind == "entity":
        return "keys " + ", ".join(spec["join_keys"])
    if kind == "view":
        src = spec["source"]
        where = f"dataset:{src['dataset']}@{src['version']}" if src.get("dataset") else src.get("path")
        return f"{len(spec['features'])} features from {where}"
    if kind == "on_demand":
        return f"{spec['function']}({', '.join(spec['inputs'])})"
    features = spec["features"]
    return ", ".join(features) if len(features) <= 4 else f"{', '.join(features[:3])}, … ({len(features)} features)"


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="A feature view's name.")],
         version: Annotated[int | None, typer.Option("--version", min=1)] = None,
         as_json: render.JsonFlag = False) -> None:
    """A feature view's definition: keys, source, TTL and each feature's expression."""
    info = _store().registry.get("view", name, version)
    if as_json:
        render.print_json(info)
        return
    view = info.definition()
    render.print_message(f"{view.name}@{info.version}: keys {', '.join(view.join_keys)}; source "
                         f"{view.source.describe()}; timestamp {view.timestamp}"
                         + (f"; ttl {view.ttl_seconds:g} s" if view.ttl_seconds else ""), "bold")
    t = render.table("feature", "expression")
    for f in view.features:
        t.add_row(render.cell(f.name, "bold"), render.cell(f.expression))
    render.show(t)


@app.command("materialize")
def materialize(end: Annotated[str, typer.Option("--end", help="'now' or an ISO 8601 time.")] = "now",
                start: Annotated[str | None, typer.Option(
                    "--start", help="Recompute from here instead of each view's watermark.")] = None,
                view: Annotated[list[str] | None, typer.Option("--view", help="Only this view (repeatable).")]
                = None,
                as_json: render.JsonFlag = False) -> None:
    """Bring the online store up to END: entities with new events get their values as of END."""
    results = _store().materialize(end, start=start, views=view or None)
    if as_json:
        render.print_json(results)
        return
    t = render.table("view", "version", "from", "to", "rows", "status", "seconds")
    for m in results:
        took = "" if m.finished is None else f"{(m.finished - m.started) / 1000:.2f}"
        t.add_row(render.cell(m.view, "bold"), render.cell(m.version),
                  render.cell(render.iso(m.start_time) if m.start_time else "beginning"),
                  render.cell(render.iso(m.end_time)), render.cell(m.rows),
                  render.cell(m.status, "green" if m.status == "succeeded" else "red"), render.cell(took))
    render.show(t)


def _entity(text: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--entity takes key=value[,key=value]; got {text!r}", field="entity")
        try:
            row[key.strip()] = json.loads(value)
        except ValueError:
            row[key.strip()] = value
    return row


@app.command("get")
def get(features: Annotated[list[str], typer.Argument(help="'view:feature' references or a service's name.")],
        entity: Annotated[list[str], typer.Option("--entity", help="key=value[,key=value] (repeatable).")],
        as_json: render.JsonFlag = False) -> None:
    """Online features for the given entities, as serving reads them."""
    rows = [_entity(e) for e in entity]
    names = features[0] if len(features) == 1 and ":" not in features[0] else features
    result = _store().get_online_features(names, rows)
    if as_json:
        render.print_json(result)
        return
    if len(result) <= 8:  # a row per entity
        t = render.table(*result)
        for i in range(len(rows)):
            t.add_row(*(render.cell(values[i]) for values in result.values()))
    else:  # many features: a row per feature, a column per entity, so the table fits a terminal
        t = render.table("", *(f"entity {i + 1}" for i in range(len(rows))))
        for name, values in result.items():
            t.add_row(render.cell(name, "bold"), *(render.cell(v) for v in values))
    render.show(t)


@app.command("freshness")
def freshness(as_json: render.JsonFlag = False) -> None:
    """Each view's online watermark and how old it is."""
    rows = _store().freshness()
    if as_json:
        render.print_json(rows)
        return
    t = render.table("view", "version", "watermark", "age", "last rows")
    for r in rows:
        last = r["last_materialization"]
        age = "never materialized" if r["age_seconds"] is None else f"{r['age_seconds']:.0f} s"
        t.add_row(render.cell(r["view"], "bold"), render.cell(r["version"]), render.cell(r["watermark"] or ""),
                  render.cell(age), render.cell("" if last is None else last["rows"]))
    render.show(t)


@app.command("skew")
def skew(deployment: Annotated[str, typer.Argument(help="A deployment that reads a feature service.")],
         since_minutes: Annotated[float | None, typer.Option(
             "--since-minutes", min=0, help="Only requests of the last N minutes.")] = None,
         as_json: render.JsonFlag = False) -> None:
    """Online values the deployment served against the offline values at each request's time."""
    import time

    since = None if since_minutes is None else int((time.time() - since_minutes * 60) * 1000)
    report = _store().serving_skew(deployment, since_ms=since)
    if as_json:
        render.print_json(report)
        return
    render.print_message(f"{report.deployment} (feature service {report.feature_service}): {report.rows} logged "
                         f"rows, {report.mismatched_rows} with a value differing from the offline store",
                         "green" if report.mismatched_rows == 0 else "red")
    t = render.table("feature", "compared", "mismatches", "share", "max |diff|")
    for f in report.features:
        t.add_row(render.cell(f.feature, "bold"), render.cell(f.compared), render.cell(f.mismatches),
                  render.cell(f"{f.share:.1%}"), render.cell(render.number(f.max_abs_diff)))
    render.show(t)
