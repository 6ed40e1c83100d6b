"""`arsenale models` against a temporary SQLite store, seeded through `arsenale.Client`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arsenale import Client
from arsenale.registry.flavors import flavor_for
from arsenale.registry.models import ModelFile
from tests.cli.test_cli import cli, dump, home, strict_json  # noqa: F401  (`home` is a fixture)

NAME = "churn model"  # a space: names are arguments, never parsed


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    """Model 'churn model' with two versions, each from its own run; another model 'empty-ish' with one."""
    from sklearn.linear_model import LogisticRegression

    client = Client()
    exp = client.tracking.create_experiment("churn")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    runs = []
    for i, c in enumerate([1.0, 0.1]):
        run = client.tracking.create_run(exp.experiment_id, run_name=f"lr-{i}", params={"C": c},
                                         tags={"ars.input.customers": str(3 + i),
                                               "ars.source.git_commit": "abc123"})
        client.tracking.log_batch(run.info.run_id, metrics=[("auc", 0.8 + i / 10, 0, 1)])
        model = LogisticRegression(C=c).fit(X, y)
        folder = tmp_path / f"model-{i}"
        folder.mkdir()
        flavor = flavor_for(model)
        meta = flavor.save(model, folder)
        digest, size = client.registry.upload_file(folder / "model.skops")
        columns = [{"name": "tenure", "dtype": "int64"}] + ([{"name": "plan", "dtype": "str"}] if i else [])
        client.registry.create_version(NAME, files=[ModelFile(path="model.skops", digest=digest, size=size)],
                                       flavor=flavor.name, flavor_meta=meta, run_id=run.info.run_id,
                                       contract={"inputs": {"columns": columns}}, description=f"[bold]v{i}")
        runs.append(run.info.run_id)
    client.registry.create_version("other", files=[ModelFile(path="model.skops", digest=digest, size=size)],
                                   flavor="sklearn", flavor_meta=meta)
    return {"runs": runs, "db": home / "arsenale.db"}


def test_list_table_json_and_empty(home: Path) -> None:  # noqa: F811
    assert "no registered models" in cli("models", "list").stdout
    assert strict_json(cli("models", "list", "--json").stdout) == []


def test_list(seeded: dict[str, Any]) -> None:
    out = cli("models", "list").stdout
    assert NAME in out and "other" in out and "v2" in out
    data = strict_json(cli("models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"]) for m in data] == [(NAME, 2), ("other", 1)]


def test_show_aliases_stages_and_latest_versions(seeded: dict[str, Any]) -> None:
    cli("models", "alias", NAME, "champion", "1")
    cli("models", "transition", NAME, "2", "Staging")
    out = cli("models", "show", NAME).stdout
    assert "champion" in out and "Staging" in out and "latest versions" in out
    assert "[bold]v0" in out  # user text is shown literally, never as Rich markup
    data = strict_json(cli("models", "show", NAME, "--json").stdout)
    assert data["name"] == NAME and data["aliases"] == {"champion": 1} and data["stages"] == {"Staging": 2}
    assert [v["version"] for v in data["versions"]] == [2, 1]
    assert data["versions"][1]["run_id"] == seeded["runs"][0]


def test_versions_with_stage_filter(seeded: dict[str, Any]) -> None:
    cli("models", "transition", NAME, "1", "production")
    out = cli("models", "versions", NAME).stdout
    assert "Production" in out and seeded["runs"][1] in out
    prod = strict_json(cli("models", "versions", NAME, "--stage", "Production", "--json").stdout)
    assert [v["version"] for v in prod] == [1]
    both = strict_json(cli("models", "versions", NAME, "--stage", "production", "--stage", "None",
                           "--json").stdout)
    assert [v["version"] for v in both] == [2, 1]
    assert "no versions match" in cli("models", "versions", NAME, "--stage", "Archived").stdout


def test_alias_set_move_undo_and_delete(seeded: dict[str, Any]) -> None:
    assert "none → v1" in cli("models", "alias", NAME, "champion", "1", "--reason", "launch").stdout
    assert "v1 → v2" in cli("models", "alias", NAME, "champion", "2").stdout
    assert Client().registry.get_model(NAME).aliases == {"champion": 2}
    assert "v2 → v1" in cli("models", "alias", NAME, "champion", "--undo").stdout
    assert Client().registry.get_model(NAME).aliases == {"champion": 1}
    assert "v1 → removed" in cli("models", "alias", NAME, "champion", "--undo", "--reason", "oops").stdout
    assert Client().registry.get_model(NAME).aliases == {}
    cli("models", "alias", NAME, "challenger", "2")
    assert "removed alias 'challenger'" in cli("models", "alias", NAME, "challenger", "--delete").stdout
    assert Client().registry.get_model(NAME).aliases == {}
    events = Client().registry.events(NAME)
    assert events[-3].reason == "launch" and events[-3].actor == "tester"
    assert [e.action for e in Client().audit.entries(entity_type="model")][-6:] == [
        "model.alias.set", "model.alias.set", "model.alias.undo", "model.alias.undo", "model.alias.set",
        "model.alias.remove"]


def test_transition_and_archive(seeded: dict[str, Any]) -> None:
    assert "None → Production" in cli("models", "transition", NAME, "1", "Production").stdout
    out = cli("models", "transition", NAME, "2", "Production", "--archive-existing",
              "--reason", "better").stdout
    assert "None → Production" in out
    registry = Client().registry
    assert registry.get_version(NAME, 1).stage.value == "Archived"
    assert "Production → Archived" in cli("models", "archive", NAME, "2", "--reason", "retired").stdout
    assert registry.get_version(NAME, 2).stage.value == "Archived"
    assert registry.events(NAME)[0].reason == "retired"


def test_lineage_tree_and_json(seeded: dict[str, Any]) -> None:
    out = cli("models", "lineage", NAME, "1").stdout
    for expected in (f"model {NAME} v1", f"run lr-0 {seeded['runs'][0]}", "experiment churn", "C = 1.0",
                     "auc = 0.8", "dataset customers@3", "git_commit = abc123", "environment"):
        assert expected in out, expected
    assert out.index("model") < out.index("run") < out.index("data") < out.index("code")
    data = strict_json(cli("models", "lineage", NAME, "2", "--json").stdout)
    assert data["run"]["run_id"] == seeded["runs"][1] and data["run"]["params"] == {"C": "0.1"}
    assert data["data"] == [{"kind": "dataset", "name": "customers", "version": "4"}]
    plain = cli("models", "lineage", "other", "1").stdout
    assert "model other v1" in plain and "run " not in plain


def test_diff_table_and_json(seeded: dict[str, Any]) -> None:
    out = cli("models", "diff", NAME, "1", "2").stdout
    assert "param" in out and "1.0" in out and "0.1" in out
    assert "metric" in out and "auc" in out
    assert "customers@3" in out and "customers@4" in out
    assert "column plan" in out
    data = strict_json(cli("models", "diff", NAME, "1", "2", "--json").stdout)
    assert data["params"] == {"C": ["1.0", "0.1"]}
    assert data["contract"] == {"added_columns": ["plan"]}
    assert "do not differ" in cli("models", "diff", NAME, "2", "2").stdout


def test_history_table_and_json(seeded: dict[str, Any]) -> None:
    cli("models", "alias", NAME, "champion", "1", "--reason", "launch")
    cli("models", "alias", NAME, "champion", "2")
    cli("models", "transition", NAME, "2", "Staging")
    out = cli("models", "history", NAME).stdout
    assert "@champion: none → v1" in out and "@champion: v1 → v2" in out
    assert "v2: None → Staging" in out and "registered v1" in out and "tester" in out and "launch" in out
    data = strict_json(cli("models", "history", NAME, "--json").stdout)
    assert [e["kind"] for e in data] == ["stage", "alias", "alias", "register", "register"]
    assert [e["kind"] for e in strict_json(cli("models", "history", NAME, "--limit", "1", "--json").stdout)] \
        == ["stage"]


BAD_COMMANDS: list[tuple[list[str], int, str]] = [
    (["models", "show", "nope"], 3, "does not exist"),
    (["models", "show", "a/b"], 2, "must not contain '/'"),
    (["models", "versions", NAME, "--stage", "Live"], 2, "stage must be one of"),
    (["models", "versions", "nope"], 3, "does not exist"),
    (["models", "alias", NAME, "latest", "1"], 2, "reserved"),
    (["models", "alias", NAME, "v2", "1"], 2, "reserved"),
    (["models", "alias", NAME, "Production", "1"], 2, "lowercase"),
    (["models", "alias", NAME, "UPPER", "1"], 2, "lowercase"),
    (["models", "alias", NAME, "a b", "1"], 2, "lowercase"),
    (["models", "alias", NAME, "", "1"], 2, "lowercase"),
    (["models", "alias", NAME, "champion", "9"], 3, "no version 9"),
    (["models", "alias", NAME, "champion", "0"], 2, "positive integer"),
    (["models", "alias", NAME, "champion", "one"], 2, ""),
    (["models", "alias", "nope", "champion", "1"], 3, "does not exist"),
    (["models", "alias", NAME, "champion"], 2, "VERSION is required"),
    (["models", "alias", NAME, "champion", "1", "--undo"], 2, "not used with --undo"),
    (["models", "alias", NAME, "champion", "--undo", "--delete"], 2, "cannot be combined"),
    (["models", "alias", NAME, "champion", "--undo"], 3, "no move to undo"),
    (["models", "alias", NAME, "champion", "--delete"], 3, "has no alias"),
    (["models", "alias", NAME, "champion", "1", "--reason", "x" * 2001], 2, "reason"),
    (["models", "transition", NAME, "1", "Live"], 2, "stage must be one of"),
    (["models", "transition", NAME, "7", "Staging"], 3, "no version 7"),
    (["models", "archive", "nope", "1"], 3, "does not exist"),
    (["models", "lineage", NAME, "5"], 3, "no version 5"),
    (["models", "diff", NAME, "1", "5"], 3, "no version 5"),
    (["models", "diff", NAME, "1"], 2, ""),
    (["models", "history", "nope"], 3, "does not exist"),
    (["models", "history", NAME, "--limit", "0"], 2, ""),
    (["models", "frobnicate"], 2, ""),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_COMMANDS,
                         ids=[" ".join(a)[:60] for a, _, _ in BAD_COMMANDS])
def test_bad_commands_fail_cleanly_and_leave_the_store_unchanged(seeded: dict[str, Any], args: list[str],
                                                                 code: int, message: str) -> None:
    before = dump(seeded["db"])
    result = cli(*args, code=code)
    assert result.stderr.strip(), "an error must say what went wrong"
    if message:
        assert result.stderr.startswith("error: ")
        assert message in result.stderr
    assert dump(seeded["db"]) == before
