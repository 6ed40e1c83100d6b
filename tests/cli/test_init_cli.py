"""`arsenale init ci`: the workflow files it writes parse, name the gate the way `arsenale gate run` reads it,
and the commands they hold run: the generated GitHub job's train and gate steps are executed here, in a shell,
against a temporary store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arsenale.cli.main import app

TRAIN = """\
import arsenale as ars
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
X, y = load_breast_cancer(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=5000).fit(X, y)
ars.register_model("bc", model, signature_from=X, reference=X, labels=y.rename("target"))
X.assign(target=y).to_parquet("holdout.parquet")
"""


def _init(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["init", "ci", "--root", str(tmp_path), *args])


def test_github_workflow_runs_as_written(tmp_path: Path) -> None:
    result = _init(tmp_path, "--github", "--model", "bc", "--train", f"{sys.executable} train.py",
                   "--data", "holdout.parquet", "--label", "target", "--metric", "roc_auc")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    workflow = yaml.safe_load((tmp_path / ".github/workflows/arsenale-gate.yml").read_text())
    assert workflow[True]["push"]["branches"] == ["main"] and "pull_request" in workflow[True]  # `on` is a bool key
    steps = {s.get("name"): s for s in workflow["jobs"]["gate"]["steps"]}
    assert steps["Train"]["run"] == f"{sys.executable} train.py"
    gate = steps["Gate"]["run"]
    assert "--candidate \"models:/bc/latest\"" in gate and "--against \"models:/bc@champion\"" in gate
    assert "--junit gate.xml" in gate and "always()" in steps["Comment the report on the pull request"]["if"]
    policy = (tmp_path / "gates.toml").read_text()
    assert 'label = "target"' in policy and '[promote]' in policy

    # The steps as the runner would run them: a pull request (no promotion), then a merge (promotion).
    (tmp_path / "train.py").write_text(TRAIN)
    env = {**os.environ, "ARSENALE_HOME": str(tmp_path / ".arsenale"), "ARSENALE_ACTOR": "ci"}
    env.pop("ARSENALE_URI", None)
    subprocess.run(steps["Train"]["run"], shell=True, check=True, cwd=tmp_path, env=env, timeout=300)
    arsenale = str(Path(sys.executable).parent / "arsenale")
    for event, promoted in (("pull_request", False), ("push", True)):
        flag = "--no-promote" if event == "pull_request" else ""
        command = gate.replace("${{ github.event_name == 'pull_request' && '--no-promote' || '' }}", flag)
        done = subprocess.run(command.replace("arsenale gate run", f"{arsenale} gate run", 1), check=False,
                              shell=True,
                              cwd=tmp_path, env=env, timeout=300, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "gate.md").read_text().startswith("### ✅")
        assert ("promoted: alias challenger" in done.stdout) is promoted


def test_gitlab_pipeline(tmp_path: Path) -> None:
    result = _init(tmp_path, "--gitlab", "--model", "fraud", "--train", "python train.py", "--data",
                   "dataset:transactions@3", "--branch", "release")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    pipeline = yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())
    job = pipeline["arsenale-gate"]
    assert job["script"][1] == "python train.py" and "--data \"dataset:transactions@3\"" in job["script"][2]
    assert job["artifacts"]["reports"]["junit"] == "gate.xml"
    assert [r["variables"]["PROMOTE"] for r in job["rules"]] == ["--no-promote", "--promote"]
    assert job["rules"][1]["if"] == '$CI_COMMIT_BRANCH == "release"'
    assert "merge_requests/$CI_MERGE_REQUEST_IID/notes" in job["after_script"][0]


@pytest.mark.parametrize(("targets", "options", "message"), [
    (["--github", "--gitlab"], {}, "exactly one"),
    ([], {}, "exactly one"),
    (["--github"], {"--data": "x; rm -rf /"}, "may hold only"),
    (["--github"], {"--data": "$(whoami)"}, "may hold only"),
    (["--github"], {"--branch": 'main"\nevil: 1'}, "may hold only"),
    (["--github"], {"--metric": "wizardry"}, "unknown metric"),
    (["--github"], {"--train": "a\nb"}, "one command line"),
    (["--gitlab"], {"--model": "../x"}, "model name"),
])
def test_bad_options_write_nothing(tmp_path: Path, targets: list[str], options: dict[str, str],
                                   message: str) -> None:
    values = {"--model": "bc", "--train": "python train.py", "--data": "holdout.parquet", **options}
    result = _init(tmp_path, *targets, *[x for pair in values.items() for x in pair])
    assert result.exit_code == 2 and message in result.output, result.output  # type: ignore[attr-defined]
    assert not (tmp_path / ".github").exists() and not (tmp_path / "gates.toml").exists()
    assert not (tmp_path / ".gitlab-ci.yml").exists()


def test_an_existing_workflow_is_kept_unless_forced(tmp_path: Path) -> None:
    args = ["--github", "--model", "bc", "--train", "python t.py", "--data", "h.parquet"]
    assert _init(tmp_path, *args).exit_code == 0  # type: ignore[attr-defined]
    (tmp_path / "gates.toml").write_text("# mine\n")
    again = _init(tmp_path, *args)
    assert again.exit_code == 4 and "--force" in again.output  # type: ignore[attr-defined]
    assert _init(tmp_path, *args, "--force").exit_code == 0  # type: ignore[attr-defined]
    assert (tmp_path / "gates.toml").read_text() == "# mine\n"  # a policy is never overwritten
