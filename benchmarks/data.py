"""Data-versioning benchmark: `arsenale data` side by side with DVC 3.67, whole commands, in one run.

How to run (from the repository root, with the interpreter that has `arsenale`
importable, e.g. the project's venv or any Python with PYTHONPATH=src):

    python benchmarks/data.py [--gib 1] [--files 10000] [--file-kib 4] [--repeat 3]

Other options: --sides dvc,arsenale (one side only), --only add_big,add_many,status,
--out PATH (default benchmarks/out/data.json).

What it does:

* DVC runs from benchmarks/.venv-dvc (created on first use with `pip install dvc==3.67.*`)
  as `.venv-dvc/bin/dvc …`; Arsenale as `sys.executable -m arsenale.cli.entry data …`
  (what the `arsenale` console script runs). Each command is a fresh process and
  is timed whole, Python start included, as a user would see it.
* Every measurement gets a fresh temporary folder: `dvc init --no-scm` on one
  side, an empty `.arsenale/` (ARSENALE_HOME) on the other. Data is generated
  with a fixed seed before timing (identical bytes on both sides) and is in the
  page cache for both.
* Operations:
    1. add_big   `add` of one 1 GiB file of random bytes (--gib).
    2. add_many  `add` of a folder of 10,000 files of 4 KiB (--files, --file-kib).
    3. status    `status` of that unchanged folder right after the add.
  Each is measured --repeat times and the median (of wall and of CPU time
  separately) is reported; every run of an `add` gets its own fresh folder, the
  sides alternating run by run so that both see the same load; the runs of
  `status` follow one add.
* Prints a table (operation, DVC, Arsenale, ratio, target) and writes every raw
  timing to benchmarks/out/data.json.

Targets: add_big ≥5× faster, add_many ≥5× faster, status ≥10× faster than DVC.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DVC_VENV = HERE / ".venv-dvc"
DVC_SPEC = "dvc==3.67.*"
TARGETS = {"add_big": 5.0, "add_many": 5.0, "status": 10.0}


def ensure_dvc() -> Path:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"creating {DVC_VENV} and installing {DVC_SPEC} (a few minutes, once)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run([str(DVC_VENV / "bin" / "pip"), "install", "-q", DVC_SPEC], check=True)
    return dvc


def write_big(path: Path, gib: float, seed: int = 1) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    left = int(gib * (1 << 30))
    with open(path, "wb") as f:
        while left:
            n = min(left, 64 << 20)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n


def write_many(folder: Path, count: int, kib: int, seed: int = 2) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    size = kib * 1024
    blob = rng.integers(0, 256, count * size, dtype=np.uint8).tobytes()
    for i in range(count):
        sub = folder / f"d{i // 1000:02}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05}.bin").write_bytes(blob[i * size:(i + 1) * size])


class Side:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = dict(os.environ)
        self.cpu: list[float] = []

    def init(self) -> None: ...

    def cmd(self, *args: str) -> list[str]:
        raise NotImplementedError

    def timed(self, *args: str) -> float:
        """Wall seconds of one whole command; its CPU seconds (user + sys, load-independent) go to self.cpu."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(self.cmd(*args), check=False, cwd=self.work, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return elapsed


class Dvc(Side):
    name = "dvc"

    def __init__(self, work: Path, dvc: Path) -> None:
        super().__init__(work)
        self.dvc = dvc
        self.env["DVC_NO_ANALYTICS"] = "1"

    def init(self) -> None:
        subprocess.run([str(self.dvc), "init", "--no-scm", "-q"], cwd=self.work, env=self.env, check=True)

    def cmd(self, *args: str) -> list[str]:
        return [str(self.dvc), *args]


class Arsenale(Side):
    name = "arsenale"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.env["ARSENALE_HOME"] = str(work / ".arsenale")
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), self.env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)

    def init(self) -> None:
        (self.work / ".arsenale").mkdir()

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "arsenale.cli.entry", "data", *args]


def measure(side: Side, op: str, args: argparse.Namespace, big: Path | None) -> dict[str, Any]:
    """One run of an `add` (in the side's fresh folder), or one add followed by --repeat runs of `status`."""
    side.init()
    if op == "add_big":
        assert big is not None
        shutil.copyfile(big, side.work / "big.bin")
        return {"seconds": side.timed("add", "big.bin"), "cpu_seconds": side.cpu[-1]}
    write_many(side.work / "data", args.files, args.file_kib)
    add = side.timed("add", "data")
    if op == "add_many":
        return {"seconds": add, "cpu_seconds": side.cpu[-1]}
    runs = [side.timed("status", "data") for _ in range(args.repeat)]
    return {"seconds": statistics.median(runs), "runs": runs, "add_seconds": add,
            "cpu_seconds": statistics.median(side.cpu[1:]), "cpu_runs": side.cpu[1:]}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of several adds' wall and CPU seconds, with every run kept."""
    if len(runs) == 1:
        return runs[0]
    wall = [float(r["seconds"]) for r in runs]
    cpu = [float(r["cpu_seconds"]) for r in runs]
    return {"seconds": statistics.median(wall), "runs": wall,
            "cpu_seconds": statistics.median(cpu), "cpu_runs": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--file-kib", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sides", default="dvc,arsenale")
    ap.add_argument("--only", default="add_big,add_many,status")
    ap.add_argument("--out", default=str(HERE / "out" / "data.json"))
    args = ap.parse_args()
    sides = args.sides.split(",")
    ops = args.only.split(",")
    dvc = ensure_dvc() if "dvc" in sides else None
    results: dict[str, dict[str, dict[str, Any]]] = {op: {} for op in ops}
    with tempfile.TemporaryDirectory(prefix="ars-bench-data-") as tmp:
        big = None
        if "add_big" in ops:
            big = Path(tmp) / "source.bin"
            write_big(big, args.gib)
        for op in ops:
            adds: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
            for _ in range(1 if op == "status" else args.repeat):
                for name in sides:
                    work = Path(tempfile.mkdtemp(prefix=f"{name}-{op}-", dir=tmp))
                    side: Side = Dvc(work, dvc) if name == "dvc" and dvc else Arsenale(work)
                    r = measure(side, op, args, big)
                    adds[name].append(r)
                    print(f"  {op:<9} {name:<9} {r['seconds']:.3f} s wall, {r['cpu_seconds']:.3f} s CPU", flush=True)
                    shutil.rmtree(work, ignore_errors=True)
            for name in sides:
                results[op][name] = summarize(adds[name])
    def fmt(v: float | None) -> str:
        return f"{v:.3f}s" if v is not None else "—"

    for key, title in (("seconds", "wall time"), ("cpu_seconds", "CPU time (user+sys; robust to other load)")):
        print(f"\n{title}\n{'operation':<10} {'DVC':>9} {'Arsenale':>9} {'ratio':>7} {'target':>7}")
        for op in ops:
            d = results[op].get("dvc", {}).get(key)
            a = results[op].get("arsenale", {}).get(key)
            ratio = f"{d / a:.1f}×" if d and a else "—"
            print(f"{op:<10} {fmt(d):>9} {fmt(a):>9} {ratio:>7} {TARGETS[op]:>6.0f}×")
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "python": sys.version, "machine": platform.platform(),
                               "cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"\nraw timings: {out}")


if __name__ == "__main__":
    main()
