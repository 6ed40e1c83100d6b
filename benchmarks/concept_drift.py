"""Concept-drift benchmark: how soon `arsenale.monitoring.detect_changes` sees a model go wrong, and how often it cries wolf.

How to run (from the repository root, with the interpreter that has `arsenale` and river
importable, e.g. the project's venv):

    python benchmarks/concept_drift.py [--seeds 5] [--rows 10000] [--position 5000] [--workers 2]

Other options: --train 2000 (rows the model learns from), --out PATH (default
benchmarks/out/concept_drift.json).

What it does, per stream and seed:

* Generates a river synthetic stream (locally, nothing is downloaded) whose concept changes at a
  known row: `ConceptDriftStream(stream=A, drift_stream=B, position=--position, width=40)`.
  River 0.26 computes exp(4·(position − i)/width) for every row i, which overflows below a width
  of about position/177; 40 is the sharpest switch that works at position 5,000 (96% of it
  within ±40 rows), and `sea_0_to_2_gradual` uses width 1,000. The change point is the row
  where either concept is equally likely (0-based `position − 1`).
    - SEA (noise 10%): variant 0 → 1, 2, 3 (the class boundary x1 + x2 ≤ θ moves from 8 to 9,
      7, 9.5); Agrawal: classification function 0 → 2 (a different rule on age and salary).
    - Controls without any change: SEA variant 0 and Agrawal function 0 alone.
* Fits river's HoeffdingTreeClassifier on the first --train rows and then freezes it, like a
  deployed model; its error stream (1 = wrong) on the remaining rows is what a deployment's
  logged predictions joined with their labels would give.
* Runs each detector (ADWIN, Page-Hinkley, DDM, river's default parameters) over that error
  stream with `detect_changes` and records the detection delay (first detection at or after the
  change, in rows) and the false alarms (detections before the change; every detection on a
  control stream).

Prints, per stream and detector, the median delay over seeds, how many seeds detected the change,
and the median (and total) false alarms; writes everything, per seed, to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DETECTORS = ("adwin", "page_hinkley", "ddm")
SHARP_WIDTH = 40
GRADUAL_WIDTH = 1000
SEA_NOISE = 0.1

# name: (family, concept before, concept after or None for a control, width of the switch)
STREAMS: dict[str, tuple[str, int, int | None, int]] = {
    "sea_0_to_1": ("sea", 0, 1, SHARP_WIDTH),
    "sea_0_to_2": ("sea", 0, 2, SHARP_WIDTH),
    "sea_0_to_3": ("sea", 0, 3, SHARP_WIDTH),
    "sea_0_to_2_gradual": ("sea", 0, 2, GRADUAL_WIDTH),
    "agrawal_0_to_2": ("agrawal", 0, 2, SHARP_WIDTH),
    "sea_control": ("sea", 0, None, 0),
    "agrawal_control": ("agrawal", 0, None, 0),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_stream(family: str, before: int, after: int | None, width: int, position: int, seed: int) -> Any:
    from river.datasets import synth

    def concept(k: int, s: int) -> Any:
        if family == "sea":
            return synth.SEA(variant=k, noise=SEA_NOISE, seed=s)
        return synth.Agrawal(classification_function=k, seed=s)

    if after is None:
        return concept(before, seed)
    return synth.ConceptDriftStream(stream=concept(before, seed), drift_stream=concept(after, seed + 1000),
                                    position=position, width=width, seed=seed + 2000)


def run_one(name: str, seed: int, rows: int, position: int, train: int) -> dict[str, Any]:
    """One stream and seed: the frozen model's error stream and each detector's findings on it."""
    import numpy as np
    from river import tree

    from arsenale.monitoring.concept import detect_changes

    family, before, after, width = STREAMS[name]
    started = time.perf_counter()
    data = list(make_stream(family, before, after, width, position, seed).take(rows))
    model = tree.HoeffdingTreeClassifier()
    for x, y in data[:train]:
        model.learn_one(x, y)
    errors = np.array([model.predict_one(x) != y for x, y in data[train:]], dtype=bool)
    prepared = time.perf_counter() - started
    change = None if after is None else position - 1 - train  # in the error stream
    out: dict[str, Any] = {"stream": name, "seed": seed, "change_index": change, "prepare_seconds": prepared}
    if change is not None:
        out["error_rate_before"] = float(errors[:change].mean())
        out["error_rate_after"] = float(errors[change:].mean())
    else:
        out["error_rate"] = float(errors.mean())
    out["detectors"] = {}
    for detector in DETECTORS:
        t = time.perf_counter()
        found = detect_changes(errors, detector=detector).indices
        seconds = time.perf_counter() - t
        if change is None:
            out["detectors"][detector] = {"detections": found, "false_alarms": len(found), "seconds": seconds}
        else:
            later = [i for i in found if i >= change]
            out["detectors"][detector] = {
                "detections": found, "false_alarms": sum(i < change for i in found),
                "delay": later[0] - change if later else None, "seconds": seconds}
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in STREAMS:
        mine = [r for r in runs if r["stream"] == name]
        control = mine[0]["change_index"] is None
        entry: dict[str, Any] = {"change_index": mine[0]["change_index"], "seeds": len(mine)}
        if control:
            entry["error_rate"] = statistics.median(r["error_rate"] for r in mine)
        else:
            entry["error_rate_before"] = statistics.median(r["error_rate_before"] for r in mine)
            entry["error_rate_after"] = statistics.median(r["error_rate_after"] for r in mine)
        entry["detectors"] = {}
        for detector in DETECTORS:
            found = [r["detectors"][detector] for r in mine]
            alarms = [f["false_alarms"] for f in found]
            d: dict[str, Any] = {"median_false_alarms": statistics.median(alarms), "total_false_alarms": sum(alarms),
                                 "false_alarms": alarms}
            if not control:
                delays = [f["delay"] for f in found]
                hit = [x for x in delays if x is not None]
                d.update({"median_delay": statistics.median(hit) if hit else None, "delays": delays,
                          "detected": len(hit)})
            entry["detectors"][detector] = d
        summary[name] = entry
    return summary


def print_report(summary: dict[str, Any], seeds: int) -> None:
    print(f"{'stream':22s}{'error rate':>14s}  {'detector':14s}{'delay (median)':>16s}{'detected':>10s}"
          f"{'false alarms (median / total)':>32s}")
    print("-" * 108)
    for name, entry in summary.items():
        if entry["change_index"] is None:
            rate = f"{entry['error_rate']:.3f}"
        else:
            rate = f"{entry['error_rate_before']:.3f}→{entry['error_rate_after']:.3f}"
        for k, (detector, d) in enumerate(entry["detectors"].items()):
            delay = "—" if d.get("median_delay") is None else f"{d['median_delay']:g}"
            detected = f"{d['detected']}/{seeds}" if "detected" in d else "—"
            alarms = f"{d['median_false_alarms']:g} / {d['total_false_alarms']}"
            print(f"{name if k == 0 else '':22s}{rate if k == 0 else '':>14s}  {detector:14s}{delay:>16s}"
                  f"{detected:>10s}{alarms:>32s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per stream; medians reported")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--position", type=int, default=5_000, help="row of the concept change")
    parser.add_argument("--train", type=int, default=2_000, help="rows the frozen model learns from")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=HERE / "out" / "concept_drift.json")
    args = parser.parse_args()
    if not (0 < args.train < args.position < args.rows) or args.seeds < 1 or args.workers < 1:
        parser.error("need 0 < --train < --position < --rows, --seeds ≥ 1 and --workers ≥ 1")
    if args.position > 177 * SHARP_WIDTH:
        parser.error(f"river's ConceptDriftStream overflows with width {SHARP_WIDTH} past position "
                     f"{177 * SHARP_WIDTH}")

    import river

    from arsenale import __version__

    started = time.time()
    jobs = [(name, seed, args.rows, args.position, args.train) for name in STREAMS for seed in range(1, args.seeds + 1)]
    log(f"{len(STREAMS)} streams × {args.seeds} seeds, {args.rows:,} rows each, on {args.workers} worker(s) …")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    wall = time.time() - started
    summary = summarise(runs)
    monitored = args.rows - args.train
    detector_seconds = {d: statistics.median(r["detectors"][d]["seconds"] for r in runs) for d in DETECTORS}

    print()
    print(f"Concept-drift benchmark — {len(STREAMS)} streams × {args.seeds} seeds; a HoeffdingTree fitted on rows "
          f"0–{args.train - 1:,} then frozen; its error stream on rows {args.train:,}–{args.rows - 1:,}; change at "
          f"row {args.position - 1:,} (error-stream index {args.position - 1 - args.train:,}). river {river.__version__}, "
          f"Arsenale {__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print()
    print_report(summary, args.seeds)
    print()
    print("delay: rows from the change to the first detection at or after it (seeds that detected it); false alarms:"
          " detections before the change, or anywhere on a control stream")
    print("detector time per stream of " + f"{monitored:,} errors (median): "
          + ", ".join(f"{d} {s * 1000:.1f} ms" for d, s in detector_seconds.items()) + f"; total wall {wall:.1f} s")

    report = {"benchmark": "concept_drift", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
              "duration_seconds": wall,
              "config": {"seeds": args.seeds, "rows": args.rows, "position": args.position, "train": args.train,
                         "sharp_width": SHARP_WIDTH, "gradual_width": GRADUAL_WIDTH, "sea_noise": SEA_NOISE,
                         "model": "river.tree.HoeffdingTreeClassifier() fitted on the first rows, then frozen",
                         "detectors": {d: "river defaults" for d in DETECTORS},
                         "streams": {k: {"family": f, "before": b, "after": a, "width": w}
                                     for k, (f, b, a, w) in STREAMS.items()}},
              "environment": {"python": sys.version.split()[0], "river": river.__version__, "arsenale": __version__,
                              "platform": platform.platform(), "cpus": os.cpu_count()},
              "detector_seconds_median": detector_seconds, "summary": summary, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
