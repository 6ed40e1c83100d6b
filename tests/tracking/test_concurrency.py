"""Eight processes logging at once, with fork and spawn, on SQLite and PostgreSQL: every point, once."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from arsenale.platform import Client

PROCS = 8
POINTS = 2_000


def _log_points(uri: str, artifacts: str, run_ids: list[str], worker: int) -> None:
    client = Client(uri, artifacts=artifacts)
    run_id = run_ids[worker % len(run_ids)]
    # Several batches per process so writers interleave.
    for lo in range(0, POINTS, 250):
        client.tracking.log_batch(run_id, metrics=[("m", float(worker * POINTS + i), worker * POINTS + i, 1)
                                                   for i in range(lo, lo + 250)],
                                  params={f"p{worker}": worker})


def _fluent_worker(uri: str, home: str, run_id: str, worker: int) -> None:
    os.environ["ARSENALE_URI"] = uri
    os.environ["ARSENALE_HOME"] = home
    import arsenale as ars

    with ars.start_run(run_id=run_id):
        for i in range(POINTS):
            ars.log_metric("fluent", float(i), step=worker * POINTS + i)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_eight_processes_same_and_different_runs(store_uri: str, tmp_path: object, method: str) -> None:
    artifacts = str(tmp_path) + "/artifacts"  # type: ignore[operator]
    client = Client(store_uri, artifacts=artifacts)
    exp = client.tracking.create_experiment("concurrency").experiment_id
    shared = client.tracking.create_run(exp).info.run_id
    own = [client.tracking.create_run(exp).info.run_id for _ in range(PROCS // 2)]
    # Workers 0..3 share one run; workers 4..7 each have their own.
    targets = [[shared]] * (PROCS // 2) + [[r] for r in own]
    ctx = mp.get_context(method)
    procs = [ctx.Process(target=_log_points, args=(store_uri, artifacts, targets[w], w)) for w in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    hist = client.tracking.get_metric_history(shared, "m")
    expected = sorted(w * POINTS + i for w in range(PROCS // 2) for i in range(POINTS))
    assert hist.steps == expected  # every point arrived, none twice
    for w, rid in enumerate(own, start=PROCS // 2):
        assert client.tracking.get_metric_history(rid, "m").steps == list(range(w * POINTS, (w + 1) * POINTS))
    assert client.tracking.get_run(shared).data.params == {f"p{w}": str(w) for w in range(PROCS // 2)}


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fluent_logging_from_many_processes_into_one_run(store_uri: str, tmp_path: object, method: str) -> None:
    home = str(tmp_path) + "/.arsenale"  # type: ignore[operator]
    client = Client(store_uri, artifacts=home + "/artifacts")
    exp = client.tracking.create_experiment("fluent").experiment_id
    run_id = client.tracking.create_run(exp).info.run_id
    ctx = mp.get_context(method)
    procs = [ctx.Process(target=_fluent_worker, args=(store_uri, home, run_id, w)) for w in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    steps = client.tracking.get_metric_history(run_id, "fluent").steps
    assert steps == list(range(PROCS * POINTS))
