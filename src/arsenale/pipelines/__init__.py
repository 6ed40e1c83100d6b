"""Data pipelines: plain functions as steps, a traced DAG, cached and retried runs on local processes or Ray.

    steps.py      @step / @pipeline: record metadata only
    graph.py      trace a pipeline definition into a validated DAG
    cache.py      cache keys (code + params + input digests) and safe serialization (no pickle by default)
    executors.py  one interface, `submit(task) -> Future`: LocalExecutor (processes), RayExecutor
    runner.py     the engine: caching, retries with backoff, timeouts, the final report
    service.py    pipeline runs, step runs and schedules over the store, tracked as runs
    schedules.py  cron and dataset-version triggers, run once per tick under a database lease
"""

from arsenale.pipelines.runner import run_pipeline
from arsenale.pipelines.steps import Pipeline, Step, pipeline, step

__all__ = ["Pipeline", "Step", "pipeline", "run_pipeline", "step"]
