"""`arsenale features`: apply a definitions file, list, show, materialize, read online, freshness, skew."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from arsenale.platform import Client
from tests.cli.test_cli import cli, home  # noqa: F401  (fixture)

DEFINITIONS = '''
import arsenale as ars

customer = ars.Entity("customer", join_keys=["customer_id"])
txn_stats = ars.FeatureView("txn_stats", entities=[customer], source="dataset:transactions",
                            timestamp="event_time", ttl="30d",
                            features={"amount": "amount", "amount_7d": "sum(amount) over 7d"})

@ars.on_demand_feature(inputs=["txn_stats:amount", "txn_stats:amount_7d"])
def amount_share(df):
    return df["amount"] / df["amount_7d"]

fraud = ars.FeatureService("fraud", features=["txn_stats:amount", "txn_stats:amount_7d", "amount_share"])
'''


def test_the_feature_store_from_the_shell(home: Path, tmp_path: Path) -> None:  # noqa: F811
    now = datetime.now(UTC).replace(microsecond=0)
    rng = np.random.default_rng(5)
    events = pd.DataFrame({"customer_id": rng.integers(0, 10, 200).astype("int64"),
                           "event_time": pd.to_datetime([now - timedelta(hours=float(h))
                                                         for h in rng.uniform(1, 100, 200)], utc=True).floor("ms"),
                           "amount": np.round(rng.uniform(1, 50, 200), 2)})
    Client().datasets.register("transactions", events)
    (tmp_path / "features.py").write_text(DEFINITIONS)
    applied = cli("features", "apply", "features.py").stdout
    assert "txn_stats" in applied and "new version" in applied
    assert "unchanged" in cli("features", "apply", "features.py").stdout  # idempotent
    listed = json.loads(cli("features", "list", "--json").stdout)
    assert {(d["kind"], d["name"]) for d in listed} == {("entity", "customer"), ("view", "txn_stats"),
                                                         ("on_demand", "amount_share"), ("service", "fraud")}
    assert "sum(amount) over 7d" in cli("features", "show", "txn_stats").stdout
    assert "never materialized" in cli("features", "freshness").stdout
    [mat] = json.loads(cli("features", "materialize", "--end", now.isoformat(), "--json").stdout)
    assert mat["status"] == "succeeded" and mat["rows"] == 10
    got = json.loads(cli("features", "get", "fraud", "--entity", "customer_id=3", "--entity", "customer_id=99",
                         "--json").stdout)
    assert got["customer_id"] == [3, 99] and got["amount"][1] is None and got["amount"][0] is not None
    assert abs(got["amount_share"][0] - got["amount"][0] / got["amount_7d"][0]) < 1e-12
    assert "never materialized" not in cli("features", "freshness").stdout


def test_bad_input_is_a_clear_error(home: Path, tmp_path: Path) -> None:  # noqa: F811
    assert "not a Python file" in cli("features", "apply", "nope.py", code=2).stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert "defines no Entity" in cli("features", "apply", "empty.py", code=2).stderr
    assert "no feature view named 'nope'" in cli("features", "show", "nope", code=3).stderr
    assert "key=value" in cli("features", "get", "t:a", "--entity", "customer_id", code=2).stderr
    assert "must be 'now'" in cli("features", "materialize", "--end", "soonish", code=2).stderr
    assert "no deployment" in cli("features", "skew", "nope", code=3).stderr
