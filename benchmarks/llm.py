"""LLM trace ingestion: spans per second through Arsenale's SDK and its OTLP receiver, next to MLflow tracing.

    python benchmarks/llm.py [--spans 20000] [--mlflow-spans 2000] [--repeat 3] [--sides arsenale-sdk,...]

Each side runs in its own subprocess, in a fresh temporary folder with its own SQLite store, and is timed from
its first span to the moment every span is durable:

    arsenale-sdk    `ars.trace` / `ars.span` (traces of 1 root + 9 children, 3 attributes each), until
                    `arsenale.llm.tracer.flush()` returns
    arsenale-otlp   the OpenTelemetry SDK (BatchSpanProcessor + OTLPSpanExporter, protobuf over HTTP) sending
                    the same traces to `arsenale server`'s `/v1/traces`, until `force_flush()` returns
    mlflow          `mlflow.start_span` nested the same way with a `sqlite:///` tracking store (MLflow in its
                    own venv, `benchmarks/.venv-mlflow`, created like `tracking.py` does), until every trace
                    is logged

Prints spans/s per side and Arsenale's ratio over MLflow (target ≥ 10×); raw timings go to
`benchmarks/out/llm.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPANS_PER_TRACE = 10
SIDES = ["arsenale-sdk", "arsenale-otlp", "mlflow"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- the sides (each runs in its own process, in a temporary folder) ---------------------------------------


def side_arsenale_sdk(n: int, folder: str) -> float:
    from arsenale.llm import tracer
    from arsenale.platform import Client

    client = Client(f"sqlite:///{folder}/arsenale.db", artifacts=f"{folder}/artifacts")
    client.traces.prices()  # the schema is created before the clock starts
    t0 = time.perf_counter()
    for i in range(n // SPANS_PER_TRACE):
        with tracer.trace("request", session=f"s{i % 100}", client=client):
            for j in range(SPANS_PER_TRACE - 1):
                with tracer.span("llm", kind="llm") as s:
                    s.set_attributes({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": j,
                                      "step": j})
    tracer.flush(client)
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def side_arsenale_otlp(n: int, folder: str) -> float:
    import httpx
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    port = _free_port()
    env = {**os.environ, "ARSENALE_URI": f"sqlite:///{folder}/arsenale.db", "ARSENALE_HOME": f"{folder}/.arsenale"}
    exe = Path(sys.executable).with_name("arsenale")
    server = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              cwd=folder)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("arsenale server did not start")
            time.sleep(0.1)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces"),
                                                       max_queue_size=max(2048, n), max_export_batch_size=512))
        otel = provider.get_tracer("bench")
        t0 = time.perf_counter()
        for i in range(n // SPANS_PER_TRACE):
            with otel.start_as_current_span("request", attributes={"session.id": f"s{i % 100}"}):
                for j in range(SPANS_PER_TRACE - 1):
                    with otel.start_as_current_span("llm", attributes={
                            "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": j, "step": j}):
                        pass
        provider.force_flush(timeout_millis=600_000)
        elapsed = time.perf_counter() - t0
        provider.shutdown()
        stored = httpx.get(f"{url}/api/v1/traces", params={"limit": 1}).json()["traces"]
        assert stored and stored[0]["span_count"] == SPANS_PER_TRACE, stored
        return elapsed
    finally:
        server.terminate()
        server.wait(30)


def side_mlflow(n: int, folder: str) -> float:
    import mlflow  # type: ignore[import-not-found]  # only in benchmarks/.venv-mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("bench")
    t0 = time.perf_counter()
    for i in range(n // SPANS_PER_TRACE):
        with mlflow.start_span("request") as root:
            root.set_attribute("session.id", f"s{i % 100}")
            for j in range(SPANS_PER_TRACE - 1):
                with mlflow.start_span("llm", span_type="LLM") as s:
                    s.set_attributes({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": j, "step": j})
    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:
        flush()
    return time.perf_counter() - t0


# ---- the driver ---------------------------------------------------------------------------------------------


def run_side(side: str, n: int) -> float:
    python = sys.executable
    if side == "mlflow":
        sys.path.insert(0, str(HERE))
        import tracking  # the MLflow venv, created as the tracking benchmark does

        tracking.ensure_mlflow_venv(tracking.MLFLOW_SPECS)
        python = str(tracking.MLFLOW_PY)
    with tempfile.TemporaryDirectory(prefix=f"llm-{side}-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARSENALE_", "MLFLOW_"))}
        env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent / "src"), env.get("PYTHONPATH")])))
        out = subprocess.run([python, __file__, "--run-side", side, "--spans", str(n), "--folder", folder],
                             check=False, capture_output=True, text=True, env=env, cwd=folder)
        if out.returncode != 0:
            raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000, help="spans per Arsenale measurement")
    parser.add_argument("--mlflow-spans", type=int, default=2_000, help="spans per MLflow measurement")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--run-side", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_side:
        fn = {"arsenale-sdk": side_arsenale_sdk, "arsenale-otlp": side_arsenale_otlp, "mlflow": side_mlflow}
        print(fn[args.run_side](args.spans, args.folder))
        return
    results: dict[str, dict[str, Any]] = {}
    for side in args.sides.split(","):
        n = args.mlflow_spans if side == "mlflow" else args.spans
        times = []
        for r in range(args.repeat):
            log(f"{side}: {n} spans, run {r + 1}/{args.repeat}")
            times.append(run_side(side, n))
        results[side] = {"spans": n, "seconds": times, "spans_per_s": n / min(times),
                         "median_spans_per_s": n / statistics.median(times)}
    print(f"\n{'side':<16}{'spans':>8}{'best s':>10}{'spans/s':>12}{'vs MLflow':>12}")
    base = results["mlflow"]["spans_per_s"] if "mlflow" in results else None
    for side, res in results.items():
        rate = res["spans_per_s"]
        ratio = f"{rate / base:.1f}×" if base else "—"
        print(f"{side:<16}{res['spans']:>8}{min(res['seconds']):>10.3f}{rate:>12,.0f}{ratio:>12}")
    out = HERE / "out" / "llm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
