"""`arsenale serve`: the model server for one model or one deployment.

    arsenale serve models:/fraud@champion --port 8080 --workers 2
    arsenale serve --deployment fraud-api --port 8080 --workers 2 --max-workers 4

With `--workers 0` models run inside the server process (lowest latency, for light models); with N ≥ 1
they run in N model worker processes that are replaced when they crash and, with `--max-workers`,
grow and shrink with the load. Serving a deployment also runs its canary controller: every replica
runs one, and a lease in the store lets exactly one of them act.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Annotated, Any

import typer

from arsenale.cli import render
from arsenale.cli.server import Auth, Insecure, check_exposure
from arsenale.errors import InvalidInput

SERVE_LOADER = "arsenale.serving.runtime:load_predictor"


def serve(
    model: Annotated[str | None, typer.Argument(help="models:/fraud@champion, fraud/3 … (or use --deployment)")]
    = None,
    deployment: Annotated[str | None, typer.Option("--deployment", "-d", help="Serve a deployment's traffic "
                                                   "policy, applied live as it changes.")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=0, max=256, help="Model worker processes (0: run "
                                         "models in the server process).")] = 0,
    max_workers: Annotated[int | None, typer.Option("--max-workers", min=1, max=256, help="Autoscale model "
                                                    "workers between --workers and this.")] = None,
    trusted: Annotated[bool, typer.Option("--trusted", help="Allow model formats that can run code "
                                          "(pickle, stored Python).")] = False,
    controller: Annotated[bool, typer.Option("--controller/--no-controller", help="Run the canary controller "
                                             "for the deployment in this server.")] = True,
    auth: Auth = None,
    insecure: Insecure = False,
) -> None:
    """Serve predictions over HTTP: Open Inference Protocol V2, /predict, /feedback, /metrics."""
    if (model is None) == (deployment is None):
        raise InvalidInput("serve either a MODEL or a --deployment, not both and not neither", field="model")
    if max_workers is not None and max_workers < max(workers, 1):
        raise InvalidInput("--max-workers must be at least --workers", field="max_workers")
    enabled = check_exposure(host, auth, insecure)
    import uvicorn

    from arsenale.config import get_settings
    from arsenale.platform import Client
    from arsenale.serving.app import create_serving_app

    client = Client()
    settings = get_settings()
    replica = f"{socket.gethostname()}-{os.getpid()}"
    executor = None
    autoscaler = None
    if workers or max_workers:
        from arsenale.serving.workers import WorkerPool

        uri = client.uri
        artifacts = None if uri.startswith(("http://", "https://")) else settings.resolved_artifacts()
        low = max(workers, 1)
        executor = WorkerPool(SERVE_LOADER, {"uri": uri, "artifacts": artifacts, "trusted": trusted},
                              min_workers=low, max_workers=max_workers or low)
        if max_workers and max_workers > low:
            from arsenale.serving.autoscale import Autoscaler

            # One outstanding batch per worker is the target: the batcher keeps at most one batch per
            # worker in flight, so a higher target could never be reached.
            autoscaler = Autoscaler(executor, min_workers=low, max_workers=max_workers,
                                    target_in_flight_per_worker=1.0)
    app = create_serving_app(client, deployment=deployment, model=model, executor=executor, trusted=trusted,
                             replica=replica, auth=enabled)
    canary = None
    if deployment and controller:
        from arsenale.serving.canary import CanaryController

        canary = CanaryController(client.deployments, owner=replica,
                                  inference_log_root=settings.resolved_inference_log())
        canary.start([deployment], every_s=1.0)  # one indexed read a second; a step is judged promptly
    what = f"deployment {deployment}" if deployment else model
    render.print_message(f"serving {what} on http://{host}:{port}  (V2: /v2/models/…/infer, JSON: /predict, "
                         f"metrics: /metrics; {workers or 'in-process'} model worker(s))", "bold")

    async def run() -> None:
        # The autoscaler and the worker pool live on the server's event loop.
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
        if autoscaler is not None:
            autoscaler.start()
        try:
            await server.serve()
        finally:
            if autoscaler is not None:
                await autoscaler.stop()

    try:
        _event_loop_runner()(run())
    finally:
        if canary is not None:
            canary.stop()


def _event_loop_runner() -> Any:
    """uvloop's runner when it is installed (about a third more requests per second), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
