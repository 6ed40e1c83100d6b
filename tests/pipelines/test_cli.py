"""`arsenale pipeline …` and `arsenale scheduler` against a temporary SQLite store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arsenale.cli.main import app
from arsenale.store.db import dispose_all

DIAMOND = "tests.pipelines.example_pipelines:diamond"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for key in [k for k in os.environ if k.startswith("ARSENALE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ARSENALE_URI", "unset")  # recorded, so a command's --uri is undone afterwards
    monkeypatch.delenv("ARSENALE_URI")
    monkeypatch.setenv("ARSENALE_HOME", str(tmp_path / ".arsenale"))
    monkeypatch.setenv("COLUMNS", "250")
    yield CliRunner()
    dispose_all()


def test_run_list_show_and_graph(cli: CliRunner) -> None:
    r = cli.invoke(app, ["pipeline", "run", DIAMOND, "--param", "delay=0", "--param", "n=4"])
    assert r.exit_code == 0, r.output
    assert "pipeline diamond run" in r.output and "succeeded 4, cached 0, failed 0, not run 0" in r.output
    r = cli.invoke(app, ["pipeline", "run", DIAMOND, "--param", "delay=0", "--param", "n=4", "--json"])
    assert r.exit_code == 0, r.output
    run = json.loads(r.output)
    assert {s["status"] for s in run["steps"]} == {"cached"} and run["params"] == {"delay": "0", "n": "4"}

    r = cli.invoke(app, ["pipeline", "list"])
    assert r.exit_code == 0 and run["pipeline_run_id"] in r.output and "diamond" in r.output
    listed = json.loads(cli.invoke(app, ["pipeline", "list", "--json"]).output)
    assert [x["step_counts"] for x in listed] == [{"cached": 4}, {"succeeded": 4}]

    r = cli.invoke(app, ["pipeline", "show", run["pipeline_run_id"]])
    assert r.exit_code == 0 and "slow_sum" in r.output and run["steps"][0]["cache_key"] in r.output
    r = cli.invoke(app, ["pipeline", "show", "0" * 32])
    assert r.exit_code == 3 and "does not exist" in r.output

    r = cli.invoke(app, ["pipeline", "graph", DIAMOND])
    assert r.exit_code == 0
    assert r.output.splitlines()[2:] == ["layer 0", "  [source]  <- n<-input:n", "layer 1",
                                         "  [slow_sum]  <- values<-source, delay<-input:delay",
                                         "  [slow_max]  <- values<-source, delay<-input:delay", "layer 2",
                                         "  [combine]  <- total<-slow_sum, biggest<-slow_max"]


def test_a_failing_run_exits_1_and_bad_input_exits_2(cli: CliRunner) -> None:
    r = cli.invoke(app, ["pipeline", "run", "tests.pipelines.example_pipelines:failing"])
    assert r.exit_code == 1 and "failed after 1 attempt(s): ValueError" in r.output and "not run" in r.output
    for args, message in ((["pipeline", "run", "nope"], "MODULE:FUNCTION"),
                          (["pipeline", "run", DIAMOND, "--param", "x"], "KEY=VALUE"),
                          (["pipeline", "run", DIAMOND, "--param", "ghost=1"], "unknown param"),
                          (["pipeline", "run", DIAMOND, "--executor", "gpu"], "unknown executor"),
                          (["pipeline", "schedule", DIAMOND, "--cron", "sometimes"], "not a cron expression"),
                          (["pipeline", "schedule", DIAMOND], "cron expression, a dataset")):
        r = cli.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    assert "no schedules" in cli.invoke(app, ["pipeline", "schedules"]).output
    listed = json.loads(cli.invoke(app, ["pipeline", "list", "--json"]).output)
    assert [x["name"] for x in listed] == ["failing"]  # bad input recorded nothing


def test_schedule_and_scheduler_once(cli: CliRunner) -> None:
    r = cli.invoke(app, ["pipeline", "schedule", DIAMOND, "--cron", "0 3 * * *", "--param", "delay=0",
                         "--on-dataset", "transactions", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["cron"] == "0 3 * * *" and s["trigger_dataset"] == "transactions" and s["params"] == {"delay": 0}
    r = cli.invoke(app, ["pipeline", "schedules"])
    assert r.exit_code == 0 and s["schedule_id"] in r.output
    r = cli.invoke(app, ["scheduler", "--once"])  # nothing is due at 3 a.m. tomorrow
    assert r.exit_code == 0 and r.output == ""
