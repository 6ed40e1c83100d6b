"""Data-drift benchmark: `arsenale.monitoring.drift` side by side with Evidently's data-drift preset.

How to run (from the repository root, with the interpreter that has `arsenale`
importable, e.g. the project's venv):

    python benchmarks/drift.py [--rows 1000000] [--repeat 3] [--seed 7]

Other options: --sides evidently,arsenale (one side only), --out PATH (default
benchmarks/out/drift-<rows>.json), --keep-data (keep the generated Parquet files).

What it does:

* Generates, with a seed, a reference and a current frame of --rows rows × 20 numeric
  + 5 categorical columns (normal, log-normal, uniform, exponential, Poisson, Student t,
  beta, gamma, bimodal, two discrete numeric columns with ≤ 3 values, string categories
  with 3–50 levels; some columns with nulls). Twelve columns are shifted in the current
  frame, several by amounts that should be flagged and a few by amounts that should not.
  Both frames are written as Parquet (zstd) to a temporary folder, with a schema file
  naming the numeric and categorical columns.
* Evidently runs from benchmarks/.venv-evidently (created on first use with
  `pip install evidently==0.7.* "pandas<3"`: Evidently 0.7 imports a pandas function that
  pandas 3 removed) as `.venv-evidently/bin/python benchmarks/drift_evidently.py …`: it
  reads both files with `pandas.read_parquet`, types the columns with a DataDefinition
  and runs `Report([DataDriftPreset()])`.
* Arsenale runs as `sys.executable benchmarks/drift.py --side arsenale tables …` (this
  file, in a subprocess of the project venv): it reads both files whole with
  `pyarrow.parquet` (string columns as dictionaries) and calls
  `arsenale.monitoring.drift(ref, cur, categorical=[…])` on the two Arrow tables. That is
  the like-for-like row. A second Arsenale row (`arsenale_files`) hands `drift` the two
  paths instead, which it reads one column at a time; its report must be identical.
* Each side is a whole process, timed from spawn to exit (Python start, imports and
  Parquet reading included) with its peak resident memory from `os.wait4` (that
  child's own `ru_maxrss`). Sides alternate, --repeat times each; medians are reported.
* Prints a table (wall time, peak RSS, ratios vs the targets), the per-column
  decisions of both sides, how many agree, and the largest difference in the
  statistic where both used the same method. Writes everything to the JSON file.

Targets: Arsenale ≥ 30× faster and ≤ 1/3 of Evidently's peak memory, same decisions.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_PY = EVIDENTLY_VENV / "bin" / "python"
EVIDENTLY_SIDE = HERE / "drift_evidently.py"
EVIDENTLY_SPECS = ["evidently==0.7.*", "pandas<3", "pyarrow"]
TARGET_SPEED, TARGET_MEMORY = 30.0, 3.0

# Arsenale's method name for each Evidently display name: where both pick the same
# method the statistics must agree.
SAME_METHOD = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
               "K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- data --------------------------------------------------------------------------------

def generate(rows: int, seed: int, folder: Path) -> dict:
    """Reference and current Parquet files plus the schema both sides read."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = rows

    def nulls(x: np.ndarray, share: float) -> np.ndarray:
        x = x.astype("float64")
        x[rng.random(n) < share] = np.nan
        return x

    def discrete(p: list[float]) -> np.ndarray:
        return rng.choice(np.arange(len(p), dtype="float64"), size=n, p=p)

    def bimodal(shift: float) -> np.ndarray:
        side = rng.random(n) < 0.4
        return np.where(side, rng.normal(-2 + shift, 0.5, n), rng.normal(1.5 + shift, 1.0, n))

    # name: (reference generator, current generator); the comment says what drifts.
    numeric = {
        "normal": (lambda: rng.normal(0, 1, n), lambda: rng.normal(0, 1, n)),
        "normal_shift": (lambda: rng.normal(0, 1, n), lambda: rng.normal(0.5, 1, n)),          # drifts
        "scale": (lambda: rng.normal(100, 15, n), lambda: rng.normal(100, 19.5, n)),           # drifts
        "lognormal": (lambda: rng.lognormal(0, 0.5, n), lambda: rng.lognormal(0, 0.5, n)),
        "lognormal_shift": (lambda: rng.lognormal(0, 0.5, n), lambda: rng.lognormal(0.2, 0.5, n)),  # drifts
        "uniform": (lambda: rng.uniform(0, 1, n), lambda: rng.uniform(0, 1, n)),
        "uniform_shift": (lambda: rng.uniform(0, 1, n), lambda: rng.uniform(0.05, 1.05, n)),  # drifts
        "exponential": (lambda: rng.exponential(1, n), lambda: rng.exponential(1, n)),
        "exponential_small": (lambda: rng.exponential(1, n), lambda: rng.exponential(1.05, n)),  # small, below
        "poisson": (lambda: rng.poisson(3, n).astype("float64"), lambda: rng.poisson(3, n).astype("float64")),
        "poisson_shift": (lambda: rng.poisson(3, n).astype("float64"),
                          lambda: rng.poisson(3.5, n).astype("float64")),                       # drifts
        "with_nulls": (lambda: nulls(rng.normal(5, 2, n), 0.02), lambda: nulls(rng.normal(5, 2, n), 0.03)),
        "with_nulls_shift": (lambda: nulls(rng.normal(5, 2, n), 0.02),
                             lambda: nulls(rng.normal(5.6, 2, n), 0.02)),                       # drifts
        "student_t": (lambda: rng.standard_t(3, n), lambda: rng.standard_t(3, n)),
        "normal_small": (lambda: rng.normal(0, 1, n), lambda: rng.normal(0.05, 1, n)),       # small, below
        "discrete3": (lambda: discrete([0.5, 0.3, 0.2]), lambda: discrete([0.5, 0.3, 0.2])),
        "binary_shift": (lambda: discrete([0.7, 0.3]), lambda: discrete([0.5, 0.5])),          # drifts
        "beta": (lambda: rng.beta(2, 5, n), lambda: rng.beta(2, 5, n)),
        "gamma_shift": (lambda: rng.gamma(2, 2, n), lambda: rng.gamma(2, 2.4, n)),              # drifts
        "bimodal": (lambda: bimodal(0), lambda: bimodal(0)),
    }

    def labels(k: int) -> list[str]:
        return [f"level_{i:02d}" for i in range(k)]

    def zipf(k: int, a: float = 1.1) -> list[float]:
        w = 1 / np.arange(1, k + 1) ** a
        return list(w / w.sum())

    def categorical(k: int, p: list[float] | None, null_share: float = 0.0, extra: str | None = None) -> pa.Array:
        names = labels(k) + ([extra] if extra else [])
        codes = rng.choice(len(names), size=n, p=p).astype("int32")
        mask = rng.random(n) < null_share if null_share else None
        arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), pa.array(names))
        return arr.dictionary_decode()  # plain strings, as most tables carry them

    p10 = zipf(10)
    p10_shift = list(np.roll(p10, 3))
    p5 = [0.3, 0.25, 0.2, 0.15, 0.1]
    p5_new = [x * 0.85 for x in p5] + [0.15]
    categories = {
        "city": (lambda: categorical(3, [0.5, 0.3, 0.2]), lambda: categorical(3, [0.5, 0.3, 0.2])),
        "segment_shift": (lambda: categorical(10, p10), lambda: categorical(10, p10_shift)),       # drifts
        "product": (lambda: categorical(50, zipf(50)), lambda: categorical(50, zipf(50))),
        "channel_new": (lambda: categorical(5, p5), lambda: categorical(5, p5_new, extra="brand_new")),  # drifts
        "device_nulls": (lambda: categorical(20, zipf(20), 0.01), lambda: categorical(20, zipf(20), 0.01)),
    }

    for which, index in (("reference", 0), ("current", 1)):
        cols = {name: pa.array(gens[index]()) for name, gens in numeric.items()}
        cols.update({name: gens[index]() for name, gens in categories.items()})
        pq.write_table(pa.table(cols), folder / f"{which}.parquet", compression="zstd")
        del cols
    schema = {"numeric": list(numeric), "categorical": list(categories), "drift_share": 0.5, "rows": rows,
              "seed": seed}
    (folder / "schema.json").write_text(json.dumps(schema, indent=2))
    return schema


# ---- Arsenale's side (this file, run as a subprocess) ---------------------------------------

def arsenale_side(mode: str, ref_path: str, cur_path: str, schema_path: str, out_path: str) -> int:
    """`tables`: load both files whole, then drift (like for like with Evidently);
    `files`: hand drift the paths, which it reads one column at a time."""
    t0 = time.perf_counter()
    import pyarrow.parquet as pq

    from arsenale import __version__, monitoring

    schema = json.loads(Path(schema_path).read_text())
    t_import = time.perf_counter()
    cats = schema["categorical"]
    if mode == "tables":
        reference: object = pq.read_table(ref_path, read_dictionary=cats)
        current: object = pq.read_table(cur_path, read_dictionary=cats)
    else:
        reference, current = ref_path, cur_path
    t_read = time.perf_counter()
    report = monitoring.drift(reference, current, categorical=cats, drift_share=schema["drift_share"])
    t_run = time.perf_counter()
    columns = {name: {"method": c.method, "statistic": c.statistic, "p_value": c.p_value,
                      "threshold": c.threshold, "drifted": c.drifted, "status": c.status,
                      "error_bound": c.error_bound}
               for name, c in report.columns.items()}
    out = {"side": "arsenale", "version": __version__, "columns": columns, "drift_share": report.drift_share,
           "dataset_drift": report.dataset_drift,
           "seconds": {"import": t_import - t0, "read": t_read - t_import, "drift": t_run - t_read,
                       "total": time.perf_counter() - t0}}
    Path(out_path).write_text(json.dumps(out, indent=2))
    return 0


# ---- the peer's environment ---------------------------------------------------------------

def evidently_version() -> str | None:
    if not EVIDENTLY_PY.exists():
        return None
    proc = subprocess.run([str(EVIDENTLY_PY), "-c", "import evidently; print(evidently.__version__)"],
                          capture_output=True, text=True, env=clean_env(), check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_evidently() -> str:
    version = evidently_version()
    if version:
        return version
    if not EVIDENTLY_PY.exists():
        log(f"creating {EVIDENTLY_VENV} …")
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True, env=clean_env())
    log(f"pip install {' '.join(EVIDENTLY_SPECS)} into {EVIDENTLY_VENV} (a few minutes, once) …")
    subprocess.run([str(EVIDENTLY_PY), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    *EVIDENTLY_SPECS], check=True, env=clean_env())
    version = evidently_version()
    if not version:
        raise SystemExit(f"could not install Evidently into {EVIDENTLY_VENV}")
    return version


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARSENALE_") and k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONUNBUFFERED="1", DO_NOT_TRACK="1", EVIDENTLY_DISABLE_TELEMETRY="1")
    return env


# ---- measuring one side --------------------------------------------------------------------

def run_side(side: str, data: Path, work: Path, run: int) -> dict:
    """One whole process: wall time from spawn to exit and that child's peak RSS."""
    out = work / f"{side}-{run}.json"
    files = [str(data / "reference.parquet"), str(data / "current.parquet"), str(data / "schema.json"), str(out)]
    if side == "evidently":
        cmd = [str(EVIDENTLY_PY), str(EVIDENTLY_SIDE), *files]
        env = clean_env()
        env.pop("PYTHONPATH", None)
    else:
        mode = "files" if side == "arsenale_files" else "tables"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--side", "arsenale", mode, *files]
        env = clean_env()
    err_path = work / f"{side}-{run}.stderr"
    with open(err_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=err, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mib = usage.ru_maxrss / 1024  # Linux reports KiB
    if proc.returncode != 0 or not out.exists():
        tail = err_path.read_text(errors="replace").strip().splitlines()[-15:]
        log(f"{side} FAILED (exit {proc.returncode}):\n    " + "\n    ".join(tail))
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail, "wall_seconds": wall}
    result = json.loads(out.read_text())
    result.update(wall_seconds=wall, peak_rss_mib=peak_mib, user_seconds=usage.ru_utime,
                  system_seconds=usage.ru_stime)
    log(f"{side:14s} run {run}: {wall:6.2f} s, peak RSS {peak_mib:7.0f} MiB "
        f"(drift itself {result['seconds']['drift']:.2f} s)")
    return result


# ---- comparing -------------------------------------------------------------------------------

def compare(schema: dict, ev: dict, ar: dict) -> dict:
    rows, agree, compared, max_diff, max_diff_column = [], 0, 0, 0.0, None
    for name in [*schema["numeric"], *schema["categorical"]]:
        e, a = ev.get("columns", {}).get(name), ar.get("columns", {}).get(name)
        row = {"column": name, "evidently": e, "arsenale": a, "agree": None, "statistic_diff": None}
        if e and a:
            compared += 1
            row["agree"] = e["drifted"] == a["drifted"]
            agree += row["agree"]
            if SAME_METHOD.get(e["method"]) == a["method"]:
                p_value = a["method"] in ("ks", "chisquare", "z")
                mine = a["p_value"] if p_value else a["statistic"]
                if mine is not None:
                    diff = abs(mine - e["statistic"])
                    row["statistic_diff"] = diff
                    if diff >= max_diff:
                        max_diff, max_diff_column = diff, name
        rows.append(row)
    return {"columns": rows, "compared": compared, "agree": agree, "max_statistic_diff": max_diff,
            "max_statistic_diff_column": max_diff_column}


def mib(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} MiB"


def secs(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def print_report(summary: dict, comparison: dict | None) -> None:
    ev, ar, files = summary.get("evidently", {}), summary.get("arsenale", {}), summary.get("arsenale_files", {})
    speed = ev["wall_seconds"] / ar["wall_seconds"] if ev.get("wall_seconds") and ar.get("wall_seconds") else None
    memory = ev["peak_rss_mib"] / ar["peak_rss_mib"] if ev.get("peak_rss_mib") and ar.get("peak_rss_mib") else None
    print(f"{'':24s}{'Evidently':>14s}{'Arsenale':>14s}{'ratio':>10s}{'target':>10s}")
    print("-" * 74)
    for label, key, fmt, ratio, target in (
            ("wall time (process)", "wall_seconds", secs, speed, TARGET_SPEED),
            ("  of which drift()", "drift_seconds", secs, None, None),
            ("peak RSS (process)", "peak_rss_mib", mib, memory, TARGET_MEMORY)):
        r = "—" if ratio is None else f"{ratio:,.1f}×"
        t = "" if target is None else f"≥{target:.0f}×"
        ok = "" if ratio is None or target is None else ("  ok" if ratio >= target else "  MISS")
        print(f"{label:24s}{fmt(ev.get(key)):>14s}{fmt(ar.get(key)):>14s}{r:>10s}{t:>10s}{ok}")
    if files.get("wall_seconds"):
        ratios = ""
        if ev.get("wall_seconds"):
            ratios = (f"  ({ev['wall_seconds'] / files['wall_seconds']:,.1f}× faster, "
                      f"{ev['peak_rss_mib'] / files['peak_rss_mib']:,.1f}× less memory than Evidently)")
        print(f"Arsenale given the Parquet paths (reads column by column): {secs(files['wall_seconds'])}, "
              f"peak {mib(files['peak_rss_mib'])}{ratios}")
    if not comparison:
        return
    print()
    print(f"{'column':20s}{'Evidently method':>32s}{'score':>11s}{'drift':>7s}   "
          f"{'Arsenale method':16s}{'score':>11s}{'drift':>7s}  agree  |Δ|")
    for row in comparison["columns"]:
        e, a = row["evidently"] or {}, row["arsenale"] or {}
        a_score = a.get("p_value") if a.get("method") in ("ks", "chisquare", "z") else a.get("statistic")
        diff = "" if row["statistic_diff"] is None else f"{row['statistic_diff']:.1e}"
        print(f"{row['column']:20s}{e.get('method', '—'):>32s}{_num(e.get('statistic')):>11s}"
              f"{_yes(e.get('drifted')):>7s}   {a.get('method', '—')!s:16s}{_num(a_score):>11s}"
              f"{_yes(a.get('drifted')):>7s}  {_yes(row['agree']):>5s}  {diff}")
    print(f"\ndecisions agree on {comparison['agree']}/{comparison['compared']} columns; largest statistic "
          f"difference where the methods coincide: {comparison['max_statistic_diff']:.2e} "
          f"({comparison['max_statistic_diff_column']})")


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.5f}"


def _yes(v: bool | None) -> str:
    return "—" if v is None else ("yes" if v else "no")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="whole-process runs per side; medians reported")
    parser.add_argument("--sides", default="evidently,arsenale,arsenale_files")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.side == "arsenale":
        return arsenale_side(*rest)
    if rest:
        parser.error(f"unknown arguments: {rest}")
    sides = [s for s in ("evidently", "arsenale", "arsenale_files")
             if s in {x.strip() for x in args.sides.split(",")}]
    if not sides or args.repeat < 1 or args.rows < 10:
        parser.error("--sides takes evidently, arsenale, arsenale_files; --repeat ≥ 1; --rows ≥ 10")
    out_path = args.out or HERE / "out" / f"drift-{args.rows}.json"

    versions = {"python": sys.version.split()[0]}
    if "evidently" in sides:
        versions["evidently"] = ensure_evidently()
    tmp = Path(tempfile.mkdtemp(prefix="arsenale-bench-drift-"))
    started = time.time()
    try:
        log(f"generating {args.rows:,} × 25 reference and current frames (seed {args.seed}) …")
        schema = generate(args.rows, args.seed, tmp)
        sizes = {f: (tmp / f).stat().st_size for f in ("reference.parquet", "current.parquet")}
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {s: [] for s in sides}
        for i in range(args.repeat):
            for side in sides:
                runs[side].append(run_side(side, tmp, tmp, i))
    finally:
        if args.keep_data:
            log(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summary: dict[str, dict] = {}
    for side, results in runs.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            summary[side] = {"error": results[-1].get("error")}
            continue
        summary[side] = {"wall_seconds": statistics.median(r["wall_seconds"] for r in ok),
                         "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in ok),
                         "drift_seconds": statistics.median(r["seconds"]["drift"] for r in ok),
                         "read_seconds": statistics.median(r["seconds"]["read"] for r in ok),
                         "import_seconds": statistics.median(r["seconds"]["import"] for r in ok),
                         "version": ok[0].get("version"), "runs": len(ok)}
        versions[side] = ok[0].get("version")
    comparison = None
    if all(s in summary and "error" not in summary[s] for s in ("evidently", "arsenale")):
        comparison = compare(schema, next(r for r in runs["evidently"] if "error" not in r),
                             next(r for r in runs["arsenale"] if "error" not in r))
    if all(s in summary and "error" not in summary[s] for s in ("arsenale", "arsenale_files")):
        same = runs["arsenale"][0]["columns"] == runs["arsenale_files"][0]["columns"]
        summary["arsenale_files"]["same_report_as_tables"] = same
        if not same:
            log("arsenale_files: the report differs from the one on loaded tables")

    print()
    print(f"Drift benchmark — {args.rows:,} rows × 25 columns per frame, {args.repeat} run(s) per side "
          f"(medians); Evidently {versions.get('evidently', '—')}, Arsenale {versions.get('arsenale', '—')}, "
          f"Python {versions['python']}, {platform.machine()} ×{os.cpu_count()} CPUs, "
          f"load {load_before[0]:.1f}→{os.getloadavg()[0]:.1f}")
    print()
    print_report(summary, comparison)

    report = {"benchmark": "drift", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
              "duration_seconds": time.time() - started,
              "config": {"rows": args.rows, "seed": args.seed, "repeat": args.repeat, "sides": sides,
                         "parquet_bytes": sizes, "schema": schema},
              "environment": {**versions, "platform": platform.platform(), "cpus": os.cpu_count(),
                              "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
              "targets": {"speed": TARGET_SPEED, "memory": TARGET_MEMORY},
              "summary": summary, "comparison": comparison, "runs": runs}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out_path}")
    failed = [s for s, v in summary.items() if "error" in v]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
