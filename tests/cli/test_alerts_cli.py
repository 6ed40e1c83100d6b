"""`arsenale alerts` against a temporary SQLite store with a deployed model and logged traffic, directly and
through a live `arsenale server` in front of it (`--uri http://…`)."""

from __future__ import annotations

import json
from pathlib import Path

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.cli.test_cli import cli, dump, home, strict_json  # noqa: F401  (`home` is a fixture)
from tests.cli.test_monitor_cli import deployed  # noqa: F401  (fixture)
from tests.conftest import LiveServer


def test_rules_fire_on_a_monitor_run_and_are_listed(deployed: Path) -> None:  # noqa: F811
    cli("monitor", "create", "bc-api", "--window", "1h")
    assert "no alert rules yet" in cli("alerts", "rule", "list").stdout
    out = cli("alerts", "rule", "add", "--monitor", "bc-api", "--when", "rows > 100", "--name", "traffic",
              "--notify", "log", "--severity", "critical").stdout
    assert "rule 1 on monitor bc-api: rows > 100 (critical), notify log" in out
    rule = strict_json(cli("alerts", "rule", "add", "--monitor", "bc-api", "--when",
                           "accuracy < 0 for 2 windows", "--trigger-pipeline",
                           "tests.pipelines.example_pipelines:scheduled", "--json").stdout)
    got = (rule["id"], rule["name"], rule["when"], rule["notify"], rule["severity"], rule["trigger_pipeline"])
    assert got == \
        (2, "accuracy < 0 for 2 windows", "accuracy < 0 for 2 windows", [], "warning",
         "tests.pipelines.example_pipelines:scheduled")
    listed = strict_json(cli("alerts", "rule", "list", "--monitor", "bc-api", "--json").stdout)
    assert [r["name"] for r in listed] == ["traffic", "accuracy < 0 for 2 windows"]
    assert "traffic" in cli("alerts", "rule", "list").stdout

    assert "no alerts" in cli("alerts", "list").stdout
    run = strict_json(cli("monitor", "run", "bc-api", "--json").stdout)
    assert [(a["rule"], a["status"]) for a in run["alerts"]] == [("traffic", "firing")]
    assert "alert" not in cli("monitor", "run", "bc-api").stdout  # still firing: no new alert

    (alert,) = strict_json(cli("alerts", "list", "--status", "firing", "--json").stdout)
    assert (alert["rule"], alert["monitor"], alert["value"], alert["threshold"]) == \
        ("traffic", "bc-api", 150.0, "rows > 100")
    assert [(d["channel"], d["status"]) for d in alert["deliveries"]] == [("log", "delivered")]
    assert strict_json(cli("alerts", "list", "--status", "resolved", "--json").stdout) == []
    assert strict_json(cli("alerts", "list", "--monitor", "bc-api", "--json").stdout)[0]["id"] == alert["id"]
    table = cli("alerts", "list").stdout
    assert "traffic" in table and "firing" in table and "1/1 delivered" in table
    rules = cli("alerts", "rule", "list").stdout
    assert "firing" in rules and "ok" in rules

    assert strict_json(cli("alerts", "rule", "delete", "1", "--json").stdout) == {"deleted": 1}
    assert "deleted alert rule 2" in cli("alerts", "rule", "delete", "2").stdout
    assert strict_json(cli("alerts", "rule", "list", "--json").stdout) == []
    assert strict_json(cli("alerts", "list", "--json").stdout) == []
    actions = [e["action"] for e in strict_json(cli("audit", "list", "--json").stdout)]
    assert [a for a in actions if a.startswith("alert.")] == \
        ["alert.rule.create", "alert.rule.create", "alert.fire", "alert.rule.delete", "alert.rule.delete"]
    assert strict_json(cli("audit", "verify", "--json").stdout)["ok"] is True


def test_bad_input_exits_with_its_code_and_changes_nothing(deployed: Path) -> None:  # noqa: F811
    cli("monitor", "create", "bc-api")
    cli("alerts", "rule", "add", "--monitor", "bc-api", "--when", "rows > 1", "--name", "taken")
    before = dump(deployed)
    add = ("alerts", "rule", "add", "--monitor")
    for args, code, message in [
        ((*add, "bc-api", "--when", "rows >> 1"), 2, "invalid rule"),
        ((*add, "nope", "--when", "rows > 1"), 3, "no monitor named 'nope'"),
        ((*add, "bc-api", "--when", "rows > 1", "--notify", "email:ops@example.com"), 2,
         "unknown notify channel"),
        ((*add, "bc-api", "--when", "rows > 1", "--notify", "webhook:not a url"), 2, "webhook URL"),
        ((*add, "bc-api", "--when", "rows > 1", "--trigger-pipeline", "no_colon"), 2, "MODULE:FUNCTION"),
        ((*add, "bc-api", "--when", "rows > 1", "--trigger-pipeline", "no_such_module_xyz:flow"), 2,
         "cannot import module"),
        ((*add, "bc-api", "--when", "rows > 1", "--severity", "loud"), 2, "severity"),
        ((*add, "bc-api", "--when", "rows > 2", "--name", "taken"), 4, "already has a rule named 'taken'"),
        (("alerts", "rule", "delete", "999"), 3, "no alert rule with id 999"),
        (("alerts", "rule", "delete", "0"), 2, "positive integer"),
        (("alerts", "rule", "list", "--monitor", "nope"), 3, "no monitor named"),
        (("alerts", "list", "--status", "open"), 2, "status must be"),
    ]:
        result = cli(*args, code=code)
        assert message in result.stderr, (args, result.stderr)
    cli("alerts", "rule", "delete", "abc", code=2)  # not a number: a usage error
    assert dump(deployed) == before


def test_rules_and_alerts_over_http_match_the_store(deployed: Path) -> None:  # noqa: F811
    cli("monitor", "create", "bc-api", "--window", "1h")
    backend = Client()  # the store the server wraps; its monitors read this home's inference log
    alerts = backend.monitors.alerts
    with LiveServer(create_app(backend)) as server:
        url = ("--uri", server.url)
        assert "no alert rules yet" in cli(*url, "alerts", "rule", "list").stdout
        out = cli(*url, "alerts", "rule", "add", "--monitor", "bc-api", "--when", "rows > 100", "--name",
                  "traffic", "--notify", "log", "--severity", "critical").stdout
        assert "rule 1 on monitor bc-api: rows > 100 (critical), notify log" in out
        # The server checks the reference; the pipeline is imported where it runs, on the server.
        rule = strict_json(cli(*url, "alerts", "rule", "add", "--monitor", "bc-api", "--when",
                               "accuracy < 0 for 2 windows", "--trigger-pipeline",
                               "tests.pipelines.example_pipelines:scheduled", "--json").stdout)
        assert rule == json.loads(alerts.get_rule(2).model_dump_json())
        listed = strict_json(cli(*url, "alerts", "rule", "list", "--monitor", "bc-api", "--json").stdout)
        assert listed == [json.loads(r.model_dump_json()) for r in alerts.list_rules("bc-api")]
        assert [r["name"] for r in listed] == ["traffic", "accuracy < 0 for 2 windows"]
        assert "traffic" in cli(*url, "alerts", "rule", "list").stdout

        run = strict_json(cli(*url, "monitor", "run", "bc-api", "--json").stdout)  # evaluated by the server
        assert [(a["rule"], a["status"]) for a in run["alerts"]] == [("traffic", "firing")]
        assert alerts.notifier.flush(timeout=30)
        fired = strict_json(cli(*url, "alerts", "list", "--status", "firing", "--json").stdout)
        assert fired == [json.loads(a.model_dump_json()) for a in alerts.list_alerts(status="firing")]
        assert [(d["channel"], d["status"]) for d in fired[0]["deliveries"]] == [("log", "delivered")]
        table = cli(*url, "alerts", "list").stdout
        assert "traffic" in table and "firing" in table and "1/1 delivered" in table

        before = dump(deployed)
        add = (*url, "alerts", "rule", "add", "--monitor")
        for args, code, message in [
            ((*add, "bc-api", "--when", "rows >> 1"), 2, "invalid rule"),
            ((*add, "nope", "--when", "rows > 1"), 3, "no monitor named 'nope'"),
            ((*add, "bc-api", "--when", "rows > 1", "--notify", "email:ops@example.com"), 2,
             "unknown notify channel"),
            ((*add, "bc-api", "--when", "rows > 1", "--trigger-pipeline", "no_colon"), 2, "MODULE:FUNCTION"),
            ((*add, "bc-api", "--when", "rows > 1", "--severity", "loud"), 2, "severity"),
            ((*add, "bc-api", "--when", "rows > 2", "--name", "traffic"), 4, "already has a rule named"),
            ((*url, "alerts", "rule", "delete", "999"), 3, "no alert rule with id 999"),
            ((*url, "alerts", "rule", "delete", "0"), 2, "positive integer"),
            ((*url, "alerts", "rule", "list", "--monitor", "nope"), 3, "no monitor named"),
            ((*url, "alerts", "list", "--status", "open"), 2, "status must be"),
        ]:
            result = cli(*args, code=code)
            assert message in result.stderr, (args, result.stderr)
        assert dump(deployed) == before

        assert strict_json(cli(*url, "alerts", "rule", "delete", "1", "--json").stdout) == {"deleted": 1}
        assert [r.id for r in alerts.list_rules()] == [2] and alerts.list_alerts() == []
    alerts.notifier.close(timeout=5)
