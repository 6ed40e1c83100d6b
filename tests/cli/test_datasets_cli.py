"""`arsenale datasets` against a temporary SQLite store: register, list, show, validate, infer-schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arsenale import Client
from tests.cli.test_cli import cli, home, strict_json  # noqa: F401  (`home` is a fixture)


@pytest.fixture
def files(home: Path, tmp_path: Path) -> dict[str, Path]:  # noqa: F811
    """A clean CSV, a dirty CSV (one amount too large, one unknown country) and a schema inferred from the clean."""
    rng = np.random.default_rng(5)
    clean = pd.DataFrame({"id": np.arange(30), "amount": rng.uniform(0, 50, 30).round(2),
                          "country": rng.choice(["it", "fr"], 30)})
    dirty = clean.copy()
    dirty.loc[2, "amount"] = 999.0
    dirty.loc[4, "country"] = "[bold]zz"
    clean.to_csv(tmp_path / "clean.csv", index=False)
    dirty.to_csv(tmp_path / "dirty.csv", index=False)
    cli("datasets", "infer-schema", str(tmp_path / "clean.csv"), "--output", str(tmp_path / "schema.json"))
    return {"clean": tmp_path / "clean.csv", "dirty": tmp_path / "dirty.csv", "schema": tmp_path / "schema.json"}


def test_validate_file_passes_and_fails_with_exit_2(files: dict[str, Path]) -> None:
    out = cli("datasets", "validate", str(files["clean"]), "--schema", str(files["schema"])).stdout
    assert "passed" in out
    result = cli("datasets", "validate", str(files["dirty"]), "--schema", str(files["schema"]), code=2)
    assert "FAIL" in result.stdout and "max" in result.stdout and "[bold]zz" in result.stdout
    report = strict_json(cli("datasets", "validate", str(files["dirty"]), "--schema", str(files["schema"]),
                             "--json", code=2).stdout)
    assert report["failing_rows"] == 2 and not report["passed"]


def test_register_list_show_versions_and_validate_a_dataset(files: dict[str, Path]) -> None:
    assert "no datasets" in cli("datasets", "list").stdout
    out = cli("datasets", "register", "tx", str(files["clean"]), "--schema", str(files["schema"])).stdout
    assert "published" in out
    quarantined = strict_json(cli("datasets", "register", "tx", str(files["dirty"]), "--schema",
                                  str(files["schema"]), "--policy", "quarantine", "--json").stdout)
    assert (quarantined["version"], quarantined["status"], quarantined["rows"]) == (2, "quarantined", 28)
    rejected = cli("datasets", "register", "tx", str(files["dirty"]), "--schema", str(files["schema"]), code=2)
    assert "rejected" in rejected.stdout
    listed = strict_json(cli("datasets", "list", "--json").stdout)
    assert [(d["name"], d["latest_version"], d["versions"]) for d in listed] == [("tx", 2, 3)]
    assert "tx" in cli("datasets", "list").stdout
    assert [v["version"] for v in strict_json(cli("datasets", "versions", "tx", "--json").stdout)] == [3, 2, 1]
    shown = cli("datasets", "show", "tx@2").stdout
    assert "dataset:tx@2" in shown and "quarantine.parquet" in shown and "amount" in shown
    assert strict_json(cli("datasets", "show", "tx", "--json").stdout)["version"] == 2
    cli("datasets", "validate", "tx@1", "--schema", str(files["schema"]))
    cli("datasets", "validate", "tx@3", "--schema", str(files["schema"]), code=2)
    assert Client().datasets.get("tx", 3).status.value == "rejected"


def test_bad_input_exits_with_a_message(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"columns": [{"name": "x", "min": "low"}]}')
    r = cli("datasets", "validate", str(files["clean"]), "--schema", str(tmp_path / "broken.json"), code=2)
    assert "malformed data schema" in r.stderr
    r = cli("datasets", "register", "tx", str(files["clean"]), "--policy", "maybe", code=2)
    assert "policy" in r.stderr
    r = cli("datasets", "show", "nope", code=3)
    assert "does not exist" in r.stderr
    cli("datasets", "validate", "nope@1", "--schema", str(files["schema"]), code=3)
    cli("datasets", "register", "tx", str(tmp_path / "missing.csv"), code=3)
    assert Client().datasets.list() == []
    schema = json.loads(files["schema"].read_text())
    assert {c["name"] for c in schema["columns"]} == {"id", "amount", "country"}
