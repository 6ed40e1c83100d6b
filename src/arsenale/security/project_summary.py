"""What each project holds: one row per project, counted from the tables that carry a project.

Projects are not declared anywhere: a project exists while something belongs to it (a token may name one
before it holds anything). The counts honour the caller's scope, so a token for one project sees its own row.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import Engine

from arsenale.security.projects import in_scope
from arsenale.store import tables as t
from arsenale.store.db import read

__all__ = ["ProjectSummary", "summarize"]

_COUNTED = {"experiments": t.experiments, "models": t.registered_models, "datasets": t.datasets,
            "deployments": t.deployments, "monitors": t.monitors, "prompts": t.prompts,
            "indexes": t.vector_indexes, "traces": t.llm_traces}


class ProjectSummary(BaseModel):
    """How many of each kind of thing one project holds."""

    name: str
    experiments: int = 0
    models: int = 0
    datasets: int = 0
    deployments: int = 0
    monitors: int = 0
    prompts: int = 0
    indexes: int = 0
    traces: int = 0


def summarize(engine: Engine) -> list[ProjectSummary]:
    """Every project visible in the current scope that holds something, by name."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    with read(engine) as conn:
        for kind, table in _COUNTED.items():
            q = (sa.select(table.c.project, sa.func.count()).where(in_scope(table.c.project))
                 .group_by(table.c.project))
            for project, n in conn.execute(q):
                counts[project][kind] = int(n)
    return [ProjectSummary(name=name, **kinds) for name, kinds in sorted(counts.items())]
