"""Experiment-tracking benchmark: Arsenale side by side with MLflow, in one run.

How to run (from the repository root, with the interpreter that has `arsenale`
importable — e.g. the project's venv, or any Python with PYTHONPATH=src):

    python benchmarks/tracking.py [--scale 0.1] [--repeat 3] [--no-http]

Other options: --only log_metric,log_batch,search_runs,metric_history,http
(a subset), --sides mlflow,arsenale (one side only), --mlflow-spec 'mlflow>=3'
(what to install), --out PATH (default benchmarks/out/tracking.json).

What it does:

* MLflow lives in its own virtual environment, benchmarks/.venv-mlflow,
  created on first use (`python3 -m venv` + `pip install mlflow`). Its half of
  each measurement runs as `benchmarks/.venv-mlflow/bin/python
  benchmarks/_mlflow_side.py <operation> …`; Arsenale's half runs as
  `sys.executable benchmarks/_arsenale_side.py <operation> …`. Both write a
  JSON result; this script only uses the standard library.
* Every operation, on each side, gets a fresh temporary folder with its own
  local SQLite store (MLflow: sqlite:///<tmp>/mlflow.db; Arsenale:
  ARSENALE_HOME=<tmp>/.arsenale, ARSENALE_URI unset). Store creation and a
  warm-up write happen before timing; repeats (--repeat, median reported) run
  in the same store.
* Operations (sizes are multiplied by --scale):
    1. log_metric       100,000 `log_metric` calls in one run, timed from the
                        first call until the run has ended and its points are
                        durable (start_run is timed apart, into the JSON).
                        MLflow does 2,000 calls (≈5 ms each) and its per-call
                        time is extrapolated. Figure: ms per call; ratio:
                        throughput.
    2. log_batch        1,000,000 points through the batch API (Arsenale:
                        chunks of 100,000 tuples; MLflow: its limit of 1,000
                        per `log_batch`, 100,000 points measured and
                        extrapolated). Figure: points/s.
    3. search_runs      Fetch every run matching "metrics.acc > 0.5" among
                        10,000 runs (params C, metric acc), in pages of 1,000
                        on both sides. Setup time is printed, not compared.
    4. metric_history   Read back one metric's 100,000-point history.
    5. http             (unless --no-http) operations 1 and 2 against
                        `mlflow server` and `arsenale server` on 127.0.0.1,
                        each with its own SQLite store, started and waited for
                        (/health) here and stopped at the end. MLflow does
                        ~200 log_metric calls and 20,000 batch points there.
* Prints a table (operation, MLflow, Arsenale, ratio, target) and writes all
  raw timings to benchmarks/out/tracking.json.

Targets (Arsenale ÷ MLflow): log_metric ≥200×, log_batch ≥50×,
search_runs ≥10×, metric_history ≥10×. HTTP rows are reported without one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MLFLOW_VENV = HERE / ".venv-mlflow"
MLFLOW_PY = MLFLOW_VENV / "bin" / "python"
MLFLOW_SIDE = HERE / "_mlflow_side.py"
ARSENALE_SIDE = HERE / "_arsenale_side.py"
DEFAULT_OUT = HERE / "out" / "tracking.json"
# Tried in order until one installs and imports.
MLFLOW_SPECS = ["mlflow>=3", "mlflow>=2.20,<3"]

OPERATIONS = ["log_metric", "log_batch", "search_runs", "metric_history", "http"]
TARGETS = {"log_metric": 200.0, "log_batch": 50.0, "search_runs": 10.0, "metric_history": 10.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- MLflow's environment ---------------------------------------------------------------

def mlflow_version() -> str | None:
    if not MLFLOW_PY.exists():
        return None
    proc = subprocess.run([str(MLFLOW_PY), "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, text=True, env=clean_env())
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_mlflow_venv(specs: list[str]) -> str:
    version = mlflow_version()
    if version:
        return version
    if not MLFLOW_PY.exists():
        log(f"creating {MLFLOW_VENV} …")
        subprocess.run(["python3", "-m", "venv", str(MLFLOW_VENV)], check=True, env=clean_env())
    pip = [str(MLFLOW_PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for spec in specs:
        log(f"pip install {spec!r} into {MLFLOW_VENV} (takes a few minutes) …")
        if subprocess.run([*pip, spec], env=clean_env()).returncode == 0:
            version = mlflow_version()
            if version:
                return version
    raise SystemExit(f"could not install MLflow into {MLFLOW_VENV} (tried {specs})")


# ---- running one side ------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would leak one side's setup into the other."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARSENALE_", "MLFLOW_")) and k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    if env.get("PYTHONPATH"):  # the sides run in temporary folders: make relative entries absolute
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) if p else p
                                            for p in env["PYTHONPATH"].split(os.pathsep))
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass
class Ctx:
    arsenale_python: str
    repeat: int
    keep: bool
    tmp_root: Path


def run_side(ctx: Ctx, side: str, operation: str, n: int, *, uri: str | None = None,
             extra: list[str] | None = None) -> dict:
    """One side's operation in a fresh folder; returns its JSON result (or {"error": …})."""
    work = Path(tempfile.mkdtemp(prefix=f"{side}-{operation}-", dir=ctx.tmp_root))
    out = work / "result.json"
    args = [operation, "--n", str(n), "--repeat", str(ctx.repeat), "--out", str(out), *(extra or [])]
    if side == "mlflow":
        uri = uri or f"sqlite:///{work / 'mlflow.db'}"
        cmd = [str(MLFLOW_PY), str(MLFLOW_SIDE), *args, "--uri", uri]
        env = clean_env()
        env.pop("PYTHONPATH", None)
    else:
        cmd = [ctx.arsenale_python, str(ARSENALE_SIDE), *args]
        home = work / ".arsenale"
        home.mkdir()
        env = clean_env(ARSENALE_HOME=str(home))
        if uri:
            env["ARSENALE_URI"] = uri
    where = uri or "local SQLite"
    log(f"{side:8s} {operation:15s} n={n:,} ×{ctx.repeat} ({where}) …")
    t0 = time.perf_counter()
    with open(work / "stderr.log", "w") as err, open(work / "stdout.log", "w") as so:
        proc = subprocess.run(cmd, cwd=work, env=env, stdout=so, stderr=err)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        tail = (work / "stderr.log").read_text(errors="replace").strip().splitlines()[-15:]
        log(f"{side} {operation} FAILED (exit {proc.returncode}); stderr tail:\n    " + "\n    ".join(tail))
        result = {"error": f"exit {proc.returncode}", "stderr_tail": tail, "workdir": str(work)}
    else:
        result = json.loads(out.read_text())
        result["median_seconds"] = statistics.median(result["times"])
        log(f"{side:8s} {operation:15s} median {result['median_seconds']:.3f}s (process {wall:.1f}s)")
    result["wall_seconds"] = wall
    if not ctx.keep and "error" not in result:
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---- servers -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / "server.log"
        self._log = open(self.log_path, "w")
        # Own session, so stop() can end the server and the workers it forks, and nothing else.
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_healthy(self, timeout: float = 180.0, path: str = "/health") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode}; "
                                   f"see {self.log_path}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} server not healthy after {timeout:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()


def start_mlflow_server(ctx: Ctx) -> Server:
    work = Path(tempfile.mkdtemp(prefix="mlflow-server-", dir=ctx.tmp_root))
    port = free_port()
    cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "server",
           "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
           "--default-artifact-root", str(work / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port)]
    env = clean_env()
    env.pop("PYTHONPATH", None)
    return Server("mlflow", cmd, env, work, port)


def start_arsenale_server(ctx: Ctx) -> Server:
    work = Path(tempfile.mkdtemp(prefix="arsenale-server-", dir=ctx.tmp_root))
    home = work / ".arsenale"
    home.mkdir()
    port = free_port()
    cmd = [ctx.arsenale_python, "-m", "arsenale.cli.main", "server", "--host", "127.0.0.1", "--port", str(port)]
    return Server("arsenale", cmd, clean_env(ARSENALE_HOME=str(home)), work, port)


# ---- the benchmark -----------------------------------------------------------------------

def scaled(n: int, scale: float, floor: int) -> int:
    return max(floor, int(round(n * scale)))


def per_call_ms(r: dict) -> float | None:
    return 1000 * r["median_seconds"] / r["count"] if "median_seconds" in r else None


def points_per_s(r: dict) -> float | None:
    return r["count"] / r["median_seconds"] if "median_seconds" in r and r["median_seconds"] > 0 else None


def seconds(r: dict) -> float | None:
    return r.get("median_seconds")


def row(name: str, op: str, unit: str, mlf: dict, ars: dict, figure, higher_is_better: bool,
        target: float | None, note: str = "") -> dict:
    m, a = figure(mlf), figure(ars)
    ratio = None
    if m is not None and a is not None and m > 0 and a > 0:
        ratio = a / m if higher_is_better else m / a
    return {"name": name, "operation": op, "unit": unit, "mlflow": m, "arsenale": a, "ratio": ratio,
            "target": target, "met": (ratio >= target) if (ratio is not None and target) else None,
            "note": note, "mlflow_n": mlf.get("count"), "arsenale_n": ars.get("count")}


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "points/s":
        return f"{v:,.0f} pts/s"
    if unit == "ms/call":
        return f"{v:.4f} ms" if v < 0.1 else f"{v:.2f} ms"
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def print_table(rows: list[dict], fmt=fmt, peer: str = "MLflow", key: str = "mlflow") -> None:
    """The side-by-side table every peer benchmark prints; `fmt` renders a figure in its unit, `peer` heads
    the column of the rows' `key` figures."""
    headers = ["operation", peer, "Arsenale", "ratio", "target", ""]
    table = []
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:,.1f}×"
        t = r["target"]
        target = t if isinstance(t, str) else (f"≥{t:g}×" if t else "—")
        met = {True: "ok", False: "MISS", None: ""}[r["met"]]
        table.append([r["name"], fmt(r[key], r["unit"]), fmt(r["arsenale"], r["unit"]), ratio, target, met])
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join([t[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(t[1:], widths[1:])]))
    for r in rows:
        if r["note"]:
            print(f"  {r['name'].strip()}: {r['note']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (e.g. 0.1 for a quick run)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement; medians are reported")
    parser.add_argument("--http", dest="http", action="store_true", default=True, help="include HTTP (default)")
    parser.add_argument("--no-http", dest="http", action="store_false", help="skip the HTTP measurements")
    parser.add_argument("--only", default=",".join(OPERATIONS), help="comma list of: " + ",".join(OPERATIONS))
    parser.add_argument("--sides", default="mlflow,arsenale", help="comma list of: mlflow,arsenale")
    parser.add_argument("--arsenale-python", default=sys.executable, help="interpreter with arsenale importable")
    parser.add_argument("--mlflow-spec", action="append", help=f"pip spec for MLflow (default {MLFLOW_SPECS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = parser.parse_args()

    only = {o.strip() for o in args.only.split(",") if o.strip()}
    unknown = only - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operation(s): {sorted(unknown)}")
    if not args.http:
        only.discard("http")
    sides = {s.strip() for s in args.sides.split(",") if s.strip()}
    if not sides or sides - {"mlflow", "arsenale"}:
        parser.error("--sides takes mlflow and/or arsenale")
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be ≥1 and --scale > 0")

    versions = {"python": sys.version.split()[0]}
    if "mlflow" in sides:
        versions["mlflow"] = ensure_mlflow_venv(args.mlflow_spec or MLFLOW_SPECS)
        log(f"MLflow {versions['mlflow']} in {MLFLOW_VENV}")

    tmp_root = Path(tempfile.mkdtemp(prefix="arsenale-bench-tracking-"))
    ctx = Ctx(args.arsenale_python, args.repeat, args.keep, tmp_root)
    s = args.scale
    sizes = {
        "log_metric": {"arsenale": scaled(100_000, s, 100), "mlflow": scaled(2_000, s, 200)},
        "log_batch": {"arsenale": scaled(1_000_000, s, 1_000), "mlflow": scaled(100_000, s, 1_000)},
        "search_runs": {"arsenale": scaled(10_000, s, 100), "mlflow": scaled(10_000, s, 100)},
        "metric_history": {"arsenale": scaled(100_000, s, 1_000), "mlflow": scaled(100_000, s, 1_000)},
        "http_log_metric": {"arsenale": scaled(100_000, s, 100), "mlflow": scaled(200, s, 50)},
        "http_log_batch": {"arsenale": scaled(1_000_000, s, 1_000), "mlflow": scaled(20_000, s, 1_000)},
    }
    page = ["--page", "1000"]

    def both(operation: str, size_key: str, uris: dict[str, str] | None = None,
             extra: list[str] | None = None) -> dict[str, dict]:
        res = {}
        for side in ("mlflow", "arsenale"):
            if side in sides:
                res[side] = run_side(ctx, side, operation, sizes[size_key][side],
                                     uri=(uris or {}).get(side), extra=extra)
            else:
                res[side] = {"skipped": True}
        return res

    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1):
        log(f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs; timings will be noisy")
    raw: dict[str, dict] = {}
    server_errors: dict[str, str] = {}
    rows: list[dict] = []
    started = time.time()
    try:
        if "log_metric" in only:
            r = raw["log_metric"] = both("log_metric", "log_metric")
            rows.append(row("1. log_metric (per call)", "log_metric", "ms/call", r["mlflow"], r["arsenale"],
                            per_call_ms, False, TARGETS["log_metric"],
                            f"MLflow measured on {sizes['log_metric']['mlflow']:,} calls, Arsenale on "
                            f"{sizes['log_metric']['arsenale']:,} (first call until the run has ended and flushed; start_run excluded)"))
        if "log_batch" in only:
            r = raw["log_batch"] = both("log_batch", "log_batch")
            rows.append(row("2. log_batch (throughput)", "log_batch", "points/s", r["mlflow"], r["arsenale"],
                            points_per_s, True, TARGETS["log_batch"],
                            f"MLflow {sizes['log_batch']['mlflow']:,} points in chunks of 1,000; Arsenale "
                            f"{sizes['log_batch']['arsenale']:,} in chunks of 100,000"))
        if "search_runs" in only:
            r = raw["search_runs"] = both("search_runs", "search_runs", extra=page)
            setups = ", ".join(f"{k} {v['setup_seconds']:.1f}s" for k, v in r.items() if "setup_seconds" in v)
            rows.append(row("3. search_runs (all pages)", "search_runs", "s", r["mlflow"], r["arsenale"],
                            seconds, False, TARGETS["search_runs"],
                            f"{sizes['search_runs']['mlflow']:,} runs, filter metrics.acc > 0.5, pages of "
                            f"1,000; setup (untimed): {setups or '—'}"))
        if "metric_history" in only:
            r = raw["metric_history"] = both("metric_history", "metric_history")
            rows.append(row("4. get_metric_history", "metric_history", "s", r["mlflow"], r["arsenale"],
                            seconds, False, TARGETS["metric_history"],
                            f"{sizes['metric_history']['mlflow']:,} points"))
        if "http" in only:
            servers: dict[str, Server] = {}
            try:
                if "mlflow" in sides:
                    servers["mlflow"] = start_mlflow_server(ctx)
                if "arsenale" in sides:
                    servers["arsenale"] = start_arsenale_server(ctx)
                healthy: dict[str, str] = {}
                for name, srv in servers.items():
                    try:
                        srv.wait_healthy()
                        healthy[name] = srv.url
                        log(f"{name} server healthy at {srv.url}")
                    except RuntimeError as exc:
                        log(str(exc))
                        server_errors[name] = str(exc)
                saved = set(sides)
                sides.intersection_update(healthy)  # only measure what came up
                try:
                    r = raw["http_log_metric"] = both("log_metric", "http_log_metric", uris=healthy)
                    rows.append(row("5a. HTTP log_metric (per call)", "http_log_metric", "ms/call", r["mlflow"],
                                    r["arsenale"], per_call_ms, False, None,
                                    f"MLflow {sizes['http_log_metric']['mlflow']:,} calls, Arsenale "
                                    f"{sizes['http_log_metric']['arsenale']:,}"))
                    r = raw["http_log_batch"] = both("log_batch", "http_log_batch", uris=healthy)
                    rows.append(row("5b. HTTP log_batch (throughput)", "http_log_batch", "points/s", r["mlflow"],
                                    r["arsenale"], points_per_s, True, None,
                                    f"MLflow {sizes['http_log_batch']['mlflow']:,} points, Arsenale "
                                    f"{sizes['http_log_batch']['arsenale']:,}"))
                finally:
                    sides.clear()
                    sides.update(saved)
            finally:
                for srv in servers.values():
                    srv.stop()
    finally:
        if not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)

    for op in raw.values():
        v = op.get("arsenale", {}).get("version") if isinstance(op, dict) else None
        if v:
            versions["arsenale"] = v
            break

    print()
    print(f"Tracking benchmark — scale {s}, repeat {args.repeat} (medians); "
          f"MLflow {versions.get('mlflow', '—')}, Arsenale {versions.get('arsenale', '—')}, "
          f"Python {versions['python']}, {platform.machine()} ×{os.cpu_count()} CPUs, "
          f"load {load_before[0]:.1f}→{os.getloadavg()[0]:.1f}")
    print()
    print_table(rows)

    extrapolated = {}
    if "log_metric" in raw and per_call_ms(raw["log_metric"]["mlflow"]):
        extrapolated["mlflow_100k_log_metric_seconds"] = per_call_ms(raw["log_metric"]["mlflow"]) * 100
    if "log_batch" in raw and points_per_s(raw["log_batch"]["mlflow"]):
        extrapolated["mlflow_1M_batch_points_seconds"] = 1_000_000 / points_per_s(raw["log_batch"]["mlflow"])
    if extrapolated:
        print()
        for k, v in extrapolated.items():
            print(f"  extrapolated {k}: {v:,.1f}")

    report = {
        "benchmark": "tracking",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_seconds": time.time() - started,
        "config": {"scale": s, "repeat": args.repeat, "http": "http" in only, "only": sorted(only),
                   "sides": sorted(sides), "sizes": sizes},
        "environment": {**versions, "platform": platform.platform(), "cpus": os.cpu_count(),
                        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                        "arsenale_python": args.arsenale_python, "mlflow_python": str(MLFLOW_PY)},
        "rows": rows,
        "extrapolated": extrapolated,
        "raw": raw,
        "server_errors": server_errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    failed = [f"{name}/{side}" for name, op in raw.items() if isinstance(op, dict)
              for side, r in op.items() if isinstance(r, dict) and "error" in r]
    failed += [f"{name} server" for name in server_errors]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
