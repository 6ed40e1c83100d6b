"""`arsenale deploy`: who answers a deployment's traffic — create, split (A/B), shadow, canary,
rollback — and what happened (status, history), plus Kubernetes manifests for the same server.

    arsenale deploy create fraud-api --model fraud@champion
    arsenale deploy canary fraud-api --model fraud@challenger --steps 5,25,50,100 --interval 60s \\
        --max-error-rate 0.01 --max-p99-ms 50 --min-requests 500 [--watch]
    arsenale deploy split fraud-api --ab fraud/5=50,fraud/6=50 --sticky-key customer_id
    arsenale deploy shadow fraud-api --model fraud/7        (--clear to stop mirroring)
    arsenale deploy status fraud-api
    arsenale deploy compare fraud-api        (shadow answers beside the answers given)
    arsenale deploy rollback fraud-api
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from arsenale import units
from arsenale.cli import render
from arsenale.errors import InvalidInput
from arsenale.platform import Client
from arsenale.serving.models import Deployment, DeploymentStatus, check_deployment_name

app = typer.Typer(help="Deployments: traffic splits, shadows, canary rollouts, rollback.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The deployment's name, e.g. fraud-api.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why; kept in the audit trail.")]

def parse_duration(text: str) -> float:
    """The canary's --interval in seconds."""
    return units.parse_duration(text, field="interval")


def parse_steps(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"steps are comma-separated percentages like 5,25,50,100; got {text!r}",
                           field="steps") from None


def parse_weights(text: str) -> dict[str, float]:
    """'fraud/5=50,fraud/6=50' → {'fraud/5': 50.0, 'fraud/6': 50.0}."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        spec, sep, weight = part.rpartition("=")
        try:
            if not sep or not spec:
                raise ValueError
            weights[spec.strip()] = float(weight)
        except ValueError:
            raise InvalidInput(f"a split looks like fraud/5=50,fraud/6=50; got {part!r}", field="ab") from None
    return weights


def _out(dep: Deployment, as_json: bool) -> None:
    if as_json:
        render.print_json(dep)
    else:
        _show(dep)


def _show(dep: Deployment) -> None:
    policy = dep.policy
    t = render.table("version", "role", "traffic", title=f"{dep.name} · revision {dep.revision}")
    for r in policy.routes:
        t.add_row(render.cell(r.key, "bold"), render.cell("answers"), render.cell(f"{r.weight:g}%"))
    for s in policy.shadows:
        t.add_row(render.cell(s.key), render.cell("shadow", "dim"), render.cell("mirrored"))
    render.show(t)
    notes = []
    if policy.sticky_key:
        notes.append(f"sticky on {policy.sticky_key!r}")
    if policy.canary is not None:
        c = policy.canary
        notes.append(f"canary {c.canary.key} vs {c.baseline.key}: {c.state}, step "
                     f"{c.step_index + 1}/{len(c.steps)} ({c.steps[c.step_index]:g}%)")
    for note in notes:
        render.print_message(note)


@app.command("create")
def create(name: Name,
           model: Annotated[str, typer.Option("--model", help="fraud@champion, fraud/3 or models:/fraud/Production")],
           description: Annotated[str | None, typer.Option("--description")] = None,
           feature_service: Annotated[str | None, typer.Option(
               "--feature-service", help="Requests send entity keys; the server adds this service's online "
                                         "features.")] = None,
           reason: Reason = None, as_json: render.JsonFlag = False) -> None:
    """Create a deployment answering with one version (an alias is resolved now and pinned)."""
    dep = Client().deployments.create(name, model, description, reason, feature_service=feature_service)
    _out(dep, as_json)


@app.command("list")
def list_deployments(as_json: render.JsonFlag = False) -> None:
    """Every deployment and who answers its traffic."""
    deps = Client().deployments.list()
    if as_json:
        render.print_json(deps)
        return
    if not deps:
        render.print_message("no deployments yet: arsenale deploy create NAME --model MODEL@ALIAS")
        return
    t = render.table("name", "revision", "traffic", "shadows", "canary", "updated")
    for d in deps:
        c = d.policy.canary
        t.add_row(render.cell(d.name, "bold"), render.cell(d.revision),
                  render.cell(", ".join(f"{r.key} {r.weight:g}%" for r in d.policy.routes)),
                  render.cell(", ".join(s.key for s in d.policy.shadows)),
                  render.cell(f"{c.canary.key} {c.state}" if c else ""),
                  render.cell(render.iso(d.last_update_time)))
    render.show(t)


@app.command("split")
def split(name: Name,
          ab: Annotated[str, typer.Option("--ab", help="fraud/5=50,fraud/6=50 (percentages adding to 100)")],
          sticky_key: Annotated[str | None, typer.Option("--sticky-key", help="Request field pinning a caller "
                                                         "to one version, e.g. customer_id.")] = None,
          reason: Reason = None, as_json: render.JsonFlag = False) -> None:
    """Split traffic between versions at fixed shares (an A/B test)."""
    dep = Client().deployments.split(name, parse_weights(ab), sticky_key, reason)
    _out(dep, as_json)


@app.command("shadow")
def shadow(name: Name,
           model: Annotated[list[str] | None, typer.Option("--model", help="Version to mirror traffic to "
                                                           "(repeatable); it never answers.")] = None,
           clear: Annotated[bool, typer.Option("--clear", help="Stop mirroring.")] = False,
           reason: Reason = None, as_json: render.JsonFlag = False) -> None:
    """Mirror every request to other versions asynchronously and log both outputs."""
    if not model and not clear:
        raise InvalidInput("give --model VERSION to mirror to, or --clear to stop mirroring", field="model")
    dep = Client().deployments.shadow(name, [] if clear else list(model or []), reason)
    _out(dep, as_json)


@app.command("canary")
def canary(name: Name,
           model: Annotated[str, typer.Option("--model", help="The candidate, e.g. fraud@challenger.")],
           steps: Annotated[str, typer.Option("--steps", help="Traffic percentages, ending at 100.")] = "5,25,50,100",
           interval: Annotated[str, typer.Option("--interval", help="Least time per step: 60s, 5m…")] = "60s",
           max_error_rate: Annotated[float, typer.Option("--max-error-rate", min=0, max=1)] = 0.01,
           max_p99_ms: Annotated[float | None, typer.Option("--max-p99-ms", min=0)] = None,
           min_requests: Annotated[int, typer.Option("--min-requests", min=1)] = 500,
           max_metric_drop: Annotated[float | None, typer.Option(
               "--max-metric-drop", min=0, help="Largest allowed drop of online accuracy (from feedback).")] = None,
           watch: Annotated[bool, typer.Option("--watch", help="Drive the rollout from here and print each "
                                               "decision until it is promoted or rolled back.")] = False,
           reason: Reason = None, as_json: render.JsonFlag = False) -> None:
    """Start a progressive rollout; servers of the deployment advance, promote or roll it back from metrics."""
    client = Client()
    dep = client.deployments.start_canary(
        name, model, steps=parse_steps(steps), interval_s=parse_duration(interval), max_error_rate=max_error_rate,
        max_p99_ms=max_p99_ms, min_requests=min_requests, max_metric_drop=max_metric_drop, reason=reason)
    if as_json and not watch:
        render.print_json(dep)
        return
    _show(dep)
    if watch:
        _watch(client, name)


def _watch(client: Client, name: str, every_s: float = 1.0) -> None:
    """Run the canary controller here until the rollout ends."""
    import os
    import socket

    from arsenale.serving.canary import CanaryController

    controller = CanaryController(client.deployments, owner=f"cli:{socket.gethostname()}:{os.getpid()}")
    while True:
        decision = controller.tick(name)
        if decision is not None and decision.action != "wait":
            render.print_message(f"{render.iso(decision.timestamp)}  {decision.action:8} at {decision.step:g}%  "
                                 f"{decision.reason}", "red" if decision.action == "rollback" else None)
        plan = client.deployments.get(name).policy.canary
        if plan is None or plan.state != "running":
            render.print_message(f"rollout {plan.state if plan else 'ended'}", "bold")
            return
        time.sleep(every_s)


@app.command("rollback")
def rollback(name: Name, reason: Reason = None, as_json: render.JsonFlag = False) -> None:
    """Restore the previous policy (a canary as a whole); servers apply it within a second."""
    dep = Client().deployments.rollback(name, reason)
    _out(dep, as_json)


@app.command("status")
def status(name: Name, as_json: render.JsonFlag = False) -> None:
    """Live traffic per version (requests, errors, latency), the policy, and the latest decisions."""
    st = Client().deployments.status(name)
    if as_json:
        render.print_json(st)
        return
    _show(st.deployment)
    _show_traffic(st)
    if st.decisions:
        t = render.table("time", "decision", "at", "reason", title="rollout decisions")
        for d in st.decisions[:10]:
            t.add_row(render.cell(render.iso(d.timestamp)), render.cell(d.action, "bold"),
                      render.cell(f"{d.step:g}%"), render.cell(d.reason))
        render.show(t)


def _show_traffic(st: DeploymentStatus) -> None:
    if not st.versions:
        render.print_message(f"no traffic since {render.iso(st.since)}")
        return
    total = sum(v.requests for v in st.versions if v.role == "route") or 1
    t = render.table("version", "role", "share", "requests", "errors", "error rate", "p50 ms", "p99 ms",
                     title=f"traffic since {render.iso(st.since)}")
    for v in st.versions:
        share = f"{100 * v.requests / total:.1f}%" if v.role == "route" else "mirrored"
        t.add_row(render.cell(f"{v.model}/{v.version}", "bold"), render.cell(v.role), render.cell(share),
                  render.cell(v.requests), render.cell(v.errors), render.cell(f"{100 * v.error_rate:.2f}%"),
                  render.cell(render.number(v.p50_ms)), render.cell(render.number(v.p99_ms)))
    render.show(t)


@app.command("history")
def history(name: Name, limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
            as_json: render.JsonFlag = False) -> None:
    """Every policy revision, newest first: who changed what, when and why."""
    changes = Client().deployments.history(name, limit)
    if as_json:
        render.print_json(changes)
        return
    t = render.table("revision", "time", "actor", "action", "traffic", "reason")
    for c in changes:
        t.add_row(render.cell(c.revision), render.cell(render.iso(c.timestamp)), render.cell(c.actor),
                  render.cell(c.action, "bold"),
                  render.cell(", ".join(f"{r.key} {r.weight:g}%" for r in c.policy.routes)),
                  render.cell(c.reason or ""))
    render.show(t)


@app.command("delete")
def delete(name: Name, reason: Reason = None) -> None:
    """Delete a deployment with its history and statistics (the audit trail keeps its record)."""
    Client().deployments.delete(name, reason)
    render.print_message(f"deleted deployment {name}", "green")


@app.command("k8s")
def k8s(name: Name,
        image: Annotated[str, typer.Option("--image", help="Container image with Arsenale installed.")],
        replicas: Annotated[int, typer.Option("--replicas", min=1)] = 2,
        max_replicas: Annotated[int, typer.Option("--max-replicas", min=1)] = 10,
        workers: Annotated[int, typer.Option("--workers", min=1, help="Model worker processes per pod.")] = 2,
        port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080) -> None:
    """Print Kubernetes Deployment, Service and HorizontalPodAutoscaler manifests for this deployment."""
    from arsenale.serving.k8s import render_manifests, to_yaml

    manifests = render_manifests(name, image=image, replicas=replicas, min_replicas=replicas,
                                 max_replicas=max(max_replicas, replicas), workers_per_pod=workers, port=port)
    typer.echo(to_yaml(manifests), nl=False)


@app.command("compare")
def compare(name: Name, as_json: render.JsonFlag = False) -> None:
    """Champion/challenger: each shadow's answers beside the answers given, from the inference log."""
    from arsenale.config import get_settings
    from arsenale.serving.comparison import compare_shadows

    check_deployment_name(name)
    results = compare_shadows(get_settings().resolved_inference_log(), name)
    if as_json:
        render.print_json(results)
        return
    if not results:
        render.print_message(f"no shadow answers logged for {name}: arsenale deploy shadow {name} --model …")
        return
    t = render.table("shadow", "beside", "paired", "agreement", "labelled", "answered accuracy",
                     "shadow accuracy", title=f"{name}: champion/challenger")
    for c in results:
        t.add_row(render.cell(c.shadow, "bold"), render.cell(render.pairs(c.answered_by)), render.cell(c.paired),
                  render.cell(_pct(c.agreement)), render.cell(c.labelled), render.cell(_pct(c.answer_accuracy)),
                  render.cell(_pct(c.shadow_accuracy)))
    render.show(t)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"
