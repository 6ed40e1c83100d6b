"""Model-serving benchmark: `arsenale serve` side by side with `mlflow models serve` and BentoML, in one run.

    python benchmarks/serving.py [--duration 20] [--connections 16] [--repeat 1]

The same scikit-learn model (StandardScaler + LogisticRegression on scikit-learn's bundled
breast-cancer data, 30 float columns) is trained in each tool's environment and served by each
tool with one worker on 127.0.0.1:

* MLflow: `mlflow models serve -m <model> --env-manager local --workers 1` (its venv's bin on PATH).
  Body: {"dataframe_records": [{<30 columns>}]} on /invocations.
* BentoML: its own venv, benchmarks/.venv-bentoml (created on first use with `pip install bentoml
  scikit-learn`; no pandas there, so that side trains on the same data as NumPy arrays). The model is
  saved with `bentoml.sklearn.save_model("bc-bench", …)` into a BENTOML_HOME in the temporary folder and
  served by benchmarks/_bentoml_service.py — a `@bentoml.service(workers=1)` class whose sync
  `@bentoml.api predict(records: list[dict[str, float]]) -> list[int]` BentoML runs in its thread pool
  (default 1 thread) — as `bentoml serve _bentoml_service:BreastCancer --working-dir benchmarks`, i.e.
  one worker process under BentoML's supervisor, its defaults otherwise (access log on). Body: the same
  JSON as Arsenale's, {"records": [{<30 columns>}]} on /predict; ready when /readyz answers 200. Its
  1,000-row answer is checked against MLflow's. If BentoML cannot be installed or does not start, the
  reason is printed and its column is left empty; the rest of the run goes on.
* Arsenale: `arsenale serve models:/bc/1 --workers 0` — one process, the model in the server process,
  with contract validation, the inference log (every request) and Prometheus metrics switched on.
  Body: {"records": [{<30 columns>}]} on /predict.
  Then the same through a deployment with one route, with a 50/50 split and with a shadow (their
  requests/s under load, each its own server). What a split or a shadow adds to an answer is priced
  in ONE server process whose deployment policy is switched between rounds (one route → shadow → one
  route → split, --toggle-rounds times, a few seconds of sequential requests each, the new policy given
  2.5 s to apply): each round's shadow (split) p50 against the mean of the one-route p50s around it,
  the median over rounds. Separate processes differ by several percent on their own (memory layout,
  which core they land on), more than the effect measured.

Load: `wrk` (Debian's package) with 1 thread and 16 connections for --duration seconds, POSTing a
single-row JSON request; figures are requests/s and the p99 latency wrk reports. Then one connection
sending one request at a time (latency without queueing: what a split or a shadow adds to an answer;
at saturation a shadow's extra model call shows as fewer requests/s instead, reported beside it).
Then 1,000-row batch requests: the median of 20 sequential requests. MLflow and BentoML are measured
the same way, one after the other. Results: a table with Arsenale's ratios against each (the machine's
load moves all sides, so compare ratios from one run), and benchmarks/out/serving.json.

Targets (issue: model serving): ≥ 20× MLflow's requests/s at ≤ 1/10 of its p99; a split or a
shadow adds under 5% latency over a single model. BentoML's ratios are reported without a target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracking import (  # noqa: E402  (the shared helpers of the peer benchmarks)
    MLFLOW_SPECS,
    MLFLOW_VENV,
    Server,
    clean_env,
    ensure_mlflow_venv,
    free_port,
    log,
)

HERE = Path(__file__).resolve().parent
PREPARE = HERE / "_serving_prepare.py"
BENTOML_VENV = HERE / ".venv-bentoml"
BENTOML_PY = BENTOML_VENV / "bin" / "python"
BENTOML_SPECS = ["bentoml", "scikit-learn"]
BENTOML_SERVICE = "_bentoml_service:BreastCancer"  # benchmarks/_bentoml_service.py
DEFAULT_OUT = HERE / "out" / "serving.json"
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def bentoml_version() -> str | None:
    if not BENTOML_PY.exists():
        return None
    proc = subprocess.run([str(BENTOML_PY), "-c", "import bentoml, sklearn; print(bentoml.__version__)"],
                          capture_output=True, text=True, env=bentoml_env())
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_bentoml_venv() -> tuple[str | None, str | None]:
    """(version, None) once BentoML and scikit-learn import in .venv-bentoml, else (None, why)."""
    version = bentoml_version()
    if version:
        return version, None
    try:
        if not BENTOML_PY.exists():
            log(f"creating {BENTOML_VENV} …")
            subprocess.run(["python3", "-m", "venv", str(BENTOML_VENV)], check=True, env=bentoml_env())
        log(f"pip install {' '.join(BENTOML_SPECS)} into {BENTOML_VENV} (takes a few minutes, once) …")
        proc = subprocess.run([str(BENTOML_PY), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                               *BENTOML_SPECS], env=bentoml_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            return None, "pip install failed: " + " | ".join(proc.stderr.strip().splitlines()[-3:])
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not create {BENTOML_VENV}: {exc}"
    version = bentoml_version()
    return (version, None) if version else (None, f"bentoml does not import in {BENTOML_VENV}")


def bentoml_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env(**extra).items() if not (k.startswith("BENTOML_") and k not in extra)}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{BENTOML_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(BENTOML_DO_NOT_TRACK="True", PYTHONDONTWRITEBYTECODE="1")
    return env


def run_bentoml(root: Path, args: argparse.Namespace, expected: list | None) -> dict:
    """Train, save and serve the model the BentoML way and measure it like MLflow; raises on failure."""
    bml = root / "bentoml"
    env = bentoml_env(BENTOML_HOME=str(bml / "bentoml_home"))
    proc = subprocess.run([str(BENTOML_PY), str(PREPARE), "bentoml", str(bml)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError("preparing the model failed: " + "\n".join(proc.stderr.strip().splitlines()[-10:]))
    port = free_port()
    server = Server("bentoml", [str(BENTOML_VENV / "bin" / "bentoml"), "serve", BENTOML_SERVICE,
                                "--working-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port)],
                    env, bml, port)
    try:
        server.wait_healthy(path="/readyz")
        result = measure(server, "/predict", bml, args)
        answer = json.loads(post(f"{server.url}/predict", (bml / "batch.json").read_bytes()))
        result["same_predictions_as_mlflow"] = None if expected is None else answer == expected
        return result
    finally:
        server.stop()


def post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()


def parse_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, body_file: Path, duration: int, connections: int, work: Path) -> dict:
    script = work / "post.lua"
    script.write_text(LUA.format(body=body_file))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def batch_seconds(url: str, body_file: Path, n: int = 20) -> float:
    body = body_file.read_bytes()
    post(url, body)  # warm-up
    times = []
    for _ in range(n):
        t = time.perf_counter()
        post(url, body)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(server: Server, path: str, folder: Path, args: argparse.Namespace, sequential: bool = True) -> dict:
    url = f"{server.url}{path}"
    post(url, (folder / "request.json").read_bytes())  # fails loudly if the request format is wrong
    run_wrk(url, folder / "request.json", 2, args.connections, folder)  # warm-up
    result = run_wrk(url, folder / "request.json", args.duration, args.connections, folder)
    if sequential:  # latency without queueing: one connection, one request at a time
        single = run_wrk(url, folder / "request.json", max(3, args.duration // 2), 1, folder)
        result["sequential_p50_ms"], result["sequential_p99_ms"] = single["p50_ms"], single["p99_ms"]
    result["batch_1000_s"] = batch_seconds(url, folder / "batch.json")
    log(f"{server.name}: {result}")
    return result


def sequential_rounds(servers: dict[str, Server], folder: Path, rounds: int = 3, seconds: int = 4) -> dict:
    """Sequential p50 of each server, the servers taking turns so that load drifting on the machine
    moves them all alike; the median over the rounds."""
    p50s: dict[str, list[float]] = {label: [] for label in servers}
    for _ in range(rounds):
        for label, server in servers.items():
            p50s[label].append(run_wrk(f"{server.url}/predict", folder / "request.json", seconds, 1, folder)["p50_ms"])
    log(f"sequential p50 per round: {p50s}")
    return {label: statistics.median(v) for label, v in p50s.items()}


def toggled_overheads(server: Server, cli: list[str], env: dict[str, str], folder: Path, rounds: int,
                      seconds: int) -> dict:
    """Sequential p50 of one server as its deployment's policy is switched: one route, shadow, one route,
    split, … The overhead of a round is its shadow (split) p50 over the mean of the one-route p50s just
    before and after it; the median over rounds is reported."""
    policies = {
        "base": [["deploy", "shadow", "bc-toggle", "--clear"],
                 ["deploy", "split", "bc-toggle", "--ab", "bc/1=100"]],
        "shadow": [["deploy", "shadow", "bc-toggle", "--model", "bc/2"]],
        "split": [["deploy", "split", "bc-toggle", "--ab", "bc/1=50,bc/2=50"]],
    }

    def switch(state: str) -> None:
        for step in policies[state]:
            subprocess.run([*cli, *step], env=env, cwd=folder, check=True, capture_output=True)
        time.sleep(2.5)  # replicas poll the policy twice a second; then a moment to load and settle

    def p50() -> float:
        return run_wrk(f"{server.url}/predict", folder / "request.json", seconds, 1, folder)["p50_ms"]

    samples: dict[str, list[float]] = {"base": [], "shadow": [], "split": []}
    switch("base")
    previous = p50()
    for _ in range(rounds):
        for kind in ("shadow", "split"):
            switch(kind)
            measured = p50()
            switch("base")
            after = p50()
            samples[kind].append(100 * (measured / ((previous + after) / 2) - 1))
            samples["base"].append(after)
            previous = after
    log(f"toggled overheads (% per round): shadow {[round(x, 1) for x in samples['shadow']]}, "
        f"split {[round(x, 1) for x in samples['split']]}; one-route p50s {samples['base']}")
    return {"shadow_pct": statistics.median(samples["shadow"]), "split_pct": statistics.median(samples["split"]),
            "base_p50_ms": statistics.median(samples["base"]), "rounds": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--toggle-rounds", type=int, default=8, help="paired rounds of the split/shadow overhead")
    parser.add_argument("--toggle-seconds", type=int, default=3, help="sequential seconds per policy per round")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    version = ensure_mlflow_venv(MLFLOW_SPECS)
    bentoml_version_, bentoml_error = ensure_bentoml_venv()
    root = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    results: dict = {"mlflow_version": version, "bentoml_version": bentoml_version_, "duration_s": args.duration,
                     "connections": args.connections}
    mlflow_predictions = None
    try:
        # ---- MLflow
        mlf = root / "mlflow"
        env = clean_env()
        env.pop("PYTHONPATH", None)
        env["PATH"] = f"{MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        subprocess.run([str(MLFLOW_VENV / "bin" / "python"), str(PREPARE), "mlflow", str(mlf)], env=env, check=True,
                       capture_output=True)
        port = free_port()
        server = Server("mlflow", [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(mlf / "model"),
                                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", "1"], env, mlf, port)
        try:
            server.wait_healthy(path="/ping")
            results["mlflow"] = measure(server, "/invocations", mlf, args)
            mlflow_predictions = json.loads(post(f"{server.url}/invocations",
                                                 (mlf / "batch.json").read_bytes()))["predictions"]
        finally:
            server.stop()

        # ---- BentoML (never fatal: on any failure, say why and go on)
        if bentoml_error is None:
            try:
                results["bentoml"] = run_bentoml(root, args, mlflow_predictions)
            except Exception as exc:  # noqa: BLE001 — whatever went wrong, the other sides still run
                bentoml_error = f"{type(exc).__name__}: {exc}"
        if bentoml_error is not None:
            results["bentoml"] = {"error": bentoml_error}
            log(f"BentoML not measured: {bentoml_error}")

        # ---- Arsenale
        ars = root / "arsenale"
        home = ars / ".arsenale"
        env = clean_env(ARSENALE_HOME=str(home))
        subprocess.run([sys.executable, str(PREPARE), "arsenale", str(ars)], env=env, check=True, cwd=ars.parent,
                       capture_output=True)
        cli = [sys.executable, "-m", "arsenale.cli.main"]
        configs = [
            ("arsenale", ["serve", "models:/bc/1", "--workers", "0"], []),
            ("arsenale_deployment", ["serve", "--deployment", "bc-one", "--workers", "0"],
             [["deploy", "create", "bc-one", "--model", "bc/1"]]),
            ("arsenale_split", ["serve", "--deployment", "bc-split", "--workers", "0"],
             [["deploy", "create", "bc-split", "--model", "bc/1"],
              ["deploy", "split", "bc-split", "--ab", "bc/1=50,bc/2=50"]]),
            ("arsenale_shadow", ["serve", "--deployment", "bc-shadow", "--workers", "0"],
             [["deploy", "create", "bc-shadow", "--model", "bc/1"],
              ["deploy", "shadow", "bc-shadow", "--model", "bc/2"]]),
            ("arsenale_toggle", ["serve", "--deployment", "bc-toggle", "--workers", "0"],
             [["deploy", "create", "bc-toggle", "--model", "bc/1"]]),
        ]
        servers: dict[str, Server] = {}
        try:
            for label, command, setup in configs:
                for step in setup:
                    subprocess.run([*cli, *step], env=env, cwd=ars, check=True, capture_output=True)
                port = free_port()
                servers[label] = Server(label, [*cli, *command, "--host", "127.0.0.1", "--port", str(port)], env,
                                        ars, port)
            for label, server in servers.items():
                server.wait_healthy(path="/v2/health/ready")
            toggle = servers.pop("arsenale_toggle")
            for label, server in servers.items():
                results[label] = measure(server, "/predict", ars, args, sequential=False)
            for label, p50 in sequential_rounds(servers, ars).items():
                results[label]["sequential_p50_ms"] = p50
            for server in servers.values():  # the toggled server alone on the machine
                server.stop()
            results["toggled"] = toggled_overheads(toggle, cli, env, ars, args.toggle_rounds, args.toggle_seconds)
            servers["arsenale_toggle"] = toggle
        finally:
            for server in servers.values():
                server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    m, a = results["mlflow"], results["arsenale"]
    b = results["bentoml"] if "error" not in results["bentoml"] else None

    def cells(key: str, spec: str, ratio: str) -> tuple[str, str, str, str, str]:
        """MLflow, BentoML and Arsenale figures and Arsenale's ratio against each: `ratio` is "up" (higher is
        better: a / peer) or "down" (lower is better: peer / a, printed "x lower") or "time" (peer / a)."""
        def r(peer: dict | None) -> str:
            if peer is None:
                return "—"
            x = a[key] / peer[key] if ratio == "up" else peer[key] / a[key]
            return f"{x:.1f}x" + (" lower" if ratio == "down" else "")
        return (format(m[key], spec), format(b[key], spec) if b else "—", format(a[key], spec), r(m), r(b))

    rows = [
        ("requests/s, 1 row", *cells("rps", ",.0f", "up"), ">= 20x vs MLflow"),
        ("p99 ms, 1 row", *cells("p99_ms", ".1f", "down"), ">= 10x lower vs MLflow"),
        ("p50 ms, 1 row", *cells("p50_ms", ".2f", "down"), ""),
        ("1,000-row request s", *cells("batch_1000_s", ".4f", "time"), ""),
        ("sequential p50 ms, 1 row", *cells("sequential_p50_ms", ".2f", "down"), ""),
    ]
    d = results["arsenale_deployment"]
    rows.append(("deployment (1 route): seq. p50 ms", "", "", f"{d['sequential_p50_ms']:.2f}",
                 f"{100 * (d['sequential_p50_ms'] / a['sequential_p50_ms'] - 1):+.1f}% vs model", "", ""))
    t = results["toggled"]
    for label in ("arsenale_split", "arsenale_shadow"):
        r = results[label]
        kind = label.split("_")[1]
        rows.append((f"{kind}: sequential p50, same process", "", "", f"{t['base_p50_ms']:.2f} ms base",
                     f"{t[kind + '_pct']:+.1f}% vs 1 route", "", "< +5%"))
        rows.append((f"{kind}: sequential p50 ms, own server", "", "", f"{r['sequential_p50_ms']:.2f}",
                     f"{100 * (r['sequential_p50_ms'] / d['sequential_p50_ms'] - 1):+.1f}% vs deployment", "",
                     ""))
        rows.append((f"{kind}: requests/s, {args.connections} conns", "", "", f"{r['rps']:,.0f}",
                     f"{100 * (r['rps'] / d['rps'] - 1):+.1f}% vs deployment", "", ""))
    header = ("measure", f"MLflow {version}", f"BentoML {bentoml_version_ or ''}".strip(), "Arsenale",
              "Ars. vs MLflow", "Ars. vs BentoML", "target")
    widths = [max(len(str(r[i])) for r in [*rows, header]) for i in range(len(header))]
    for i, r in enumerate([header, *rows]):
        print("  ".join(str(c).ljust(w) if j in (0, len(header) - 1) else str(c).rjust(w)
                        for j, (c, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    if b is None:
        print(f"\nBentoML not measured: {results['bentoml']['error']}")
    elif b.get("same_predictions_as_mlflow") is False:
        print("\nwarning: BentoML's 1,000-row predictions differ from MLflow's")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nraw results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
