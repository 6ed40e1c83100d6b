"""`arsenale models webhooks …` against the embedded store and through a live server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from arsenale.cli.main import app
from arsenale.platform import Client

runner = CliRunner()


def test_add_list_deliveries_delete() -> None:
    out = runner.invoke(app, ["models", "webhooks", "add", "http://127.0.0.1:9/hook", "--event",
                              "model.registered", "--model", "fraud", "--json"])
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    assert created["secret"] and created["events"] == ["model.registered"]
    listed = json.loads(runner.invoke(app, ["models", "webhooks", "list", "--json"]).stdout)
    assert [h["webhook_id"] for h in listed] == [created["webhook_id"]] and "secret" not in listed[0]
    assert runner.invoke(app, ["models", "webhooks", "deliveries", created["webhook_id"]]).exit_code == 0
    assert runner.invoke(app, ["models", "webhooks", "delete", created["webhook_id"]]).exit_code == 0
    assert Client().webhooks.list() == []


def test_bad_input_exits_non_zero_and_stores_nothing() -> None:
    for args in (["add", "ftp://example.com/x"], ["add", "http://127.0.0.1:9/x", "--event", "nope"],
                 ["delete", "does-not-exist"], ["deliveries", "does-not-exist"]):
        out = runner.invoke(app, ["models", "webhooks", *args])
        assert out.exit_code in (2, 3), (args, out.output)
    assert Client().webhooks.list() == []
