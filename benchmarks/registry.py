"""Model-registry benchmark: Arsenale side by side with MLflow, in one run.

How to run (from the repository root, with the interpreter that has `arsenale`
importable — e.g. the project's venv, or any Python with PYTHONPATH=src — and
scikit-learn installed):

    python benchmarks/registry.py [--scale 0.3] [--repeat 3] [--no-lean]

Other options: --only register_load,alias (a subset), --models rf,lr,
--sides mlflow,arsenale (one side only), --arsenale-path auto|direct|logged,
--out PATH (default benchmarks/out/registry.json), --keep.

What it does:

* MLflow runs in benchmarks/.venv-mlflow (created on first use, as by
  tracking.py, whose helpers this script reuses) as
  `.venv-mlflow/bin/python benchmarks/_registry_mlflow_side.py <operation> …`;
  Arsenale as `sys.executable benchmarks/_registry_arsenale_side.py …`. Every
  measurement gets a fresh temporary folder with its own local SQLite store
  (MLflow: sqlite:///<tmp>/mlflow.db, artifacts under <tmp>; Arsenale:
  ARSENALE_HOME=<tmp>/.arsenale). Repeats run in the same store.
* Data: scikit-learn's load_breast_cancer (569 × 30). Models: a fitted
  RandomForestClassifier(n_estimators=100) ("rf", ≈2 MB) and a LogisticRegression
  ("lr"). Every iteration fits a new model with its own seed (untimed, same seeds
  on both sides), so no registration reuses another's bytes or a load cache.
* Operations (sizes are multiplied by --scale):
    1. register_load  10 iterations per repeat, per model: inside a fresh run,
                      register the model and load it back.
                      MLflow: mlflow.sklearn.log_model(model, name="model") +
                      mlflow.register_model("runs:/<run>/model", "bench") +
                      mlflow.pyfunc.load_model("models:/bench/<v>").
                      Arsenale: register_model("bench", model, signature_from=X,
                      reference=X, labels=y) (which also infers the contract and
                      profile) + load_model("models:/bench/<v>").
                      Figure: median seconds per iteration (register + load; start
                      and end of the run timed apart, in the JSON); parts printed.
                      Row "lean": MLflow again with pip_requirements given, which
                      skips its requirement inference (a subprocess per log_model)
                      — reported, no target (--no-lean skips it).
    2. alias          set alias champion, then resolve models:/bench@champion
                      1,000 times: MLflow MlflowClient().get_model_version_by_alias,
                      Arsenale Client().registry.resolve. Figure: ms per resolution.
* Prints a table (operation, MLflow, Arsenale, ratio, target) and writes all raw
  timings to benchmarks/out/registry.json.

Targets: register_load ≥5× faster than MLflow (default call); alias resolution
< 2 ms per call on Arsenale's embedded store (the ratio is printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tracking import (MLFLOW_PY, MLFLOW_SPECS, MLFLOW_VENV, clean_env, ensure_mlflow_venv, log, per_call_ms,
                      print_table)

HERE = Path(__file__).resolve().parent
MLFLOW_SIDE = HERE / "_registry_mlflow_side.py"
ARSENALE_SIDE = HERE / "_registry_arsenale_side.py"
DEFAULT_OUT = HERE / "out" / "registry.json"

OPERATIONS = ["register_load", "alias"]
MODELS = {"rf": "RandomForest(100)", "lr": "LogisticRegression"}
REGISTER_TARGET = 5.0  # × faster than MLflow
ALIAS_TARGET_MS = 2.0  # ms per resolution, Arsenale embedded


@dataclass
class Ctx:
    arsenale_python: str
    repeat: int
    keep: bool
    tmp_root: Path
    arsenale_path: str


def run_side(ctx: Ctx, side: str, operation: str, n: int, extra: list[str]) -> dict:
    """One side's operation in a fresh folder; returns its JSON result (or {"error": …})."""
    label = "-".join([side, operation, *(a for a in extra if not a.startswith("--"))])
    work = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=ctx.tmp_root))
    out = work / "result.json"
    args = [operation, "--n", str(n), "--repeat", str(ctx.repeat), "--out", str(out), *extra]
    if side == "mlflow":
        uri = f"sqlite:///{work / 'mlflow.db'}"
        cmd = [str(MLFLOW_PY), str(MLFLOW_SIDE), *args, "--uri", uri]
        env = clean_env()
        env.pop("PYTHONPATH", None)
    else:
        cmd = [ctx.arsenale_python, str(ARSENALE_SIDE), *args, "--path", ctx.arsenale_path]
        home = work / ".arsenale"
        home.mkdir()
        env = clean_env(ARSENALE_HOME=str(home))
    log(f"{side:8s} {' '.join([operation, *extra]):42s} n={n:,} ×{ctx.repeat} (load {os.getloadavg()[0]:.1f}) …")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(work / "stderr.log", "w") as err, open(work / "stdout.log", "w") as so:
        proc = subprocess.run(cmd, cwd=work, env=env, stdout=so, stderr=err, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        tail = (work / "stderr.log").read_text(errors="replace").strip().splitlines()[-15:]
        log(f"{side} {operation} FAILED (exit {proc.returncode}); stderr tail:\n    " + "\n    ".join(tail))
        result = {"error": f"exit {proc.returncode}", "stderr_tail": tail, "workdir": str(work)}
    else:
        result = json.loads(out.read_text())
        result["median_seconds"] = statistics.median(result["times"])
        log(f"{side:8s} {' '.join([operation, *extra]):42s} median {result['median_seconds'] * 1000:,.1f} ms"
            f"{' per iteration' if operation == 'register_load' else ' total'} (process {wall:.1f}s)")
    result["wall_seconds"] = wall
    result["loadavg_1min"] = [load0, os.getloadavg()[0]]
    if not ctx.keep and "error" not in result:
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---- figures -----------------------------------------------------------------------------

def per_iteration_s(r: dict) -> float | None:
    return r.get("median_seconds")


def row(name: str, op: str, unit: str, mlf: dict, ars: dict, figure, target: str | None,
        met: bool | None = None, note: str = "") -> dict:
    m, a = figure(mlf), figure(ars)
    ratio = m / a if (m is not None and a is not None and m > 0 and a > 0) else None
    if met is None and target and target.startswith("≥") and ratio is not None:
        met = ratio >= float(target[1:].rstrip("×"))
    return {"name": name, "operation": op, "unit": unit, "mlflow": m, "arsenale": a, "ratio": ratio,
            "target": target, "met": met, "note": note}


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "ms/call":
        return f"{v:.3f} ms" if v < 1 else f"{v:.2f} ms"
    return f"{v * 1000:,.0f} ms" if v < 10 else f"{v:.1f} s"


def parts_note(mlf: dict, ars: dict) -> str:
    def fmt_parts(r: dict, keys: list[str]) -> str:
        p = r.get("part_medians") or {}
        return " + ".join(f"{k} {1000 * p[k]:,.0f}" for k in keys if k in p) + " ms" if p else "—"

    return (f"MLflow {fmt_parts(mlf, ['log_model', 'register', 'load'])}; "
            f"Arsenale {fmt_parts(ars, ['register', 'load'])} (medians of parts; they need not sum to the total)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (e.g. 0.3 for a quick run)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement; medians are reported")
    parser.add_argument("--only", default=",".join(OPERATIONS), help="comma list of: " + ",".join(OPERATIONS))
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ",".join(MODELS))
    parser.add_argument("--lean", dest="lean", action="store_true", default=True,
                        help="also measure MLflow with pip_requirements given (default)")
    parser.add_argument("--no-lean", dest="lean", action="store_false", help="skip the lean MLflow rows")
    parser.add_argument("--sides", default="mlflow,arsenale", help="comma list of: mlflow,arsenale")
    parser.add_argument("--arsenale-python", default=sys.executable, help="interpreter with arsenale importable")
    parser.add_argument("--arsenale-path", choices=["auto", "direct", "logged"], default="auto",
                        help="Arsenale's registration route (see _registry_arsenale_side.Registrar)")
    parser.add_argument("--mlflow-spec", action="append", help=f"pip spec for MLflow (default {MLFLOW_SPECS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = parser.parse_args()

    only = {o.strip() for o in args.only.split(",") if o.strip()}
    if only - set(OPERATIONS):
        parser.error(f"unknown operation(s): {sorted(only - set(OPERATIONS))}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        parser.error(f"--models takes some of {list(MODELS)}")
    sides = {s.strip() for s in args.sides.split(",") if s.strip()}
    if not sides or sides - {"mlflow", "arsenale"}:
        parser.error("--sides takes mlflow and/or arsenale")
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be ≥1 and --scale > 0")

    versions = {"python": sys.version.split()[0]}
    if "mlflow" in sides:
        versions["mlflow"] = ensure_mlflow_venv(args.mlflow_spec or MLFLOW_SPECS)
        log(f"MLflow {versions['mlflow']} in {MLFLOW_VENV}")

    s = args.scale
    sizes = {"register_load": max(2, round(10 * s)), "alias": max(100, round(1000 * s))}
    tmp_root = Path(tempfile.mkdtemp(prefix="arsenale-bench-registry-"))
    ctx = Ctx(args.arsenale_python, args.repeat, args.keep, tmp_root, args.arsenale_path)

    def one(side: str, operation: str, extra: list[str]) -> dict:
        if side not in sides:
            return {"skipped": True}
        return run_side(ctx, side, operation, sizes[operation], extra)

    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1):
        log(f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs; timings will be noisy")
    raw: dict[str, dict] = {}
    rows: list[dict] = []
    started = time.time()
    try:
        if "register_load" in only:
            for kind in models:
                label = MODELS[kind]
                r = raw[f"register_load_{kind}"] = {
                    "mlflow": one("mlflow", "register_load", ["--model", kind, "--variant", "default"]),
                    "arsenale": one("arsenale", "register_load", ["--model", kind]),
                }
                route = r["arsenale"].get("path")
                note = parts_note(r["mlflow"], r["arsenale"])
                if r["arsenale"].get("direct_error"):
                    note += (f". NOTE: Arsenale's register_model(name, model) inside a run failed "
                             f"({r['arsenale']['direct_error']}); measured {route} instead")
                rows.append(row(f"1. register+load {label}", "register_load", "s/iter", r["mlflow"],
                                r["arsenale"], per_iteration_s, f"≥{REGISTER_TARGET:.0f}×", note=note))
                if args.lean and "mlflow" in sides:
                    r["mlflow_lean"] = one("mlflow", "register_load", ["--model", kind, "--variant", "lean"])
                    rows.append(row(f"   … MLflow lean {label}", "register_load_lean", "s/iter",
                                    r["mlflow_lean"], r["arsenale"], per_iteration_s, None,
                                    note=parts_note(r["mlflow_lean"], r["arsenale"]) +
                                    "; MLflow log_model given pip_requirements (no inference subprocess)"))
        if "alias" in only:
            r = raw["alias"] = {"mlflow": one("mlflow", "alias", []), "arsenale": one("arsenale", "alias", [])}
            a_ms = per_call_ms(r["arsenale"])
            rows.append(row("2. resolve models:/bench@champion", "alias", "ms/call", r["mlflow"], r["arsenale"],
                            per_call_ms, f"<{ALIAS_TARGET_MS:g} ms",
                            met=(a_ms < ALIAS_TARGET_MS) if a_ms is not None else None,
                            note=f"{sizes['alias']:,} resolutions per repeat; MLflow "
                                 f"get_model_version_by_alias, Arsenale Client().registry.resolve"))
    finally:
        if not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)

    for op in raw.values():
        v = op.get("arsenale", {}).get("version")
        if v:
            versions["arsenale"] = v
            break

    load_after = os.getloadavg()
    print()
    print(f"Registry benchmark — scale {s}, repeat {args.repeat} (medians), {sizes['register_load']} "
          f"registrations per repeat; MLflow {versions.get('mlflow', '—')}, Arsenale "
          f"{versions.get('arsenale', '—')}, Python {versions['python']}, {platform.machine()} "
          f"×{os.cpu_count()} CPUs, load {load_before[0]:.1f}→{load_after[0]:.1f}")
    print()
    print_table(rows, fmt)

    report = {
        "benchmark": "registry",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_seconds": time.time() - started,
        "config": {"scale": s, "repeat": args.repeat, "only": sorted(only), "models": models,
                   "lean": args.lean, "sides": sorted(sides), "sizes": sizes,
                   "arsenale_path": args.arsenale_path},
        "environment": {**versions, "platform": platform.platform(), "cpus": os.cpu_count(),
                        "loadavg_before": load_before, "loadavg_after": load_after,
                        "arsenale_python": args.arsenale_python, "mlflow_python": str(MLFLOW_PY)},
        "rows": rows,
        "raw": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    failed = [f"{name}/{side}" for name, op in raw.items() for side, r in op.items() if "error" in r]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
