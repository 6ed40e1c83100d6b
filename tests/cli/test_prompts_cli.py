"""`arsenale prompts`: register from a file, list, show, versions, label, diff, render; errors exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

from arsenale.platform import Client
from tests.cli.test_cli import cli, home  # noqa: F401  (fixture)


def test_the_prompt_registry_from_the_shell(home: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "answer.j2").write_text("Answer using {{ context }}:\n{{ question }}\n")
    first = cli("prompts", "register", "support-answer", "--template-file", "answer.j2", "--model", "gpt-x",
                "--param", "temperature=0.2", "--param", "stop=[\"\\n\"]", "--param", "style=terse").stdout
    assert "prompts:/support-answer/1" in first and "context, question" in first
    again = json.loads(cli("prompts", "register", "support-answer", "--template-file", "answer.j2", "--model",
                           "gpt-x", "--param", "temperature=0.2", "--param", "stop=[\"\\n\"]", "--param",
                           "style=terse", "--json").stdout)
    assert again["version"] == 1 and again["params"] == {"temperature": 0.2, "stop": ["\n"], "style": "terse"}
    (tmp_path / "answer.j2").write_text("Answer briefly using {{ context }}:\n{{ question }}\n")
    assert "prompts:/support-answer/2" in cli("prompts", "register", "support-answer", "--template-file",
                                              "answer.j2", "--model", "gpt-x").stdout
    assert "support-answer@production -> prompts:/support-answer/1" in cli(
        "prompts", "label", "support-answer", "production", "1", "--reason", "first").stdout
    listed = json.loads(cli("prompts", "list", "--json").stdout)
    assert [(p["name"], p["latest_version"], p["labels"]) for p in listed] == [("support-answer", 2,
                                                                                 {"production": 1})]
    assert "production" in cli("prompts", "versions", "support-answer").stdout
    shown = cli("prompts", "show", "support-answer@production").stdout
    assert "prompts:/support-answer/1" in shown and "Answer using {{ context }}:" in shown
    diff = cli("prompts", "diff", "support-answer", "production", "latest").stdout
    assert "-Answer using {{ context }}:" in diff and "+Answer briefly using {{ context }}:" in diff
    assert "params.temperature: 0.2 -> null" in diff
    (tmp_path / "hits.txt").write_text("{{ 7*7 }} {% raw %}")
    rendered = cli("prompts", "render", "support-answer@production", "--var", "question=Why {{ x }}?",
                   "--var-file", "context=hits.txt").stdout
    assert rendered == "Answer using {{ 7*7 }} {% raw %}:\nWhy {{ x }}?\n"
    assert Client().audit.entries(action="prompt.label", limit=None)[0].details["reason"] == "first"


def test_errors_exit_with_their_code_and_change_nothing(home: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "t.j2").write_text("{{ q }}")
    cli("prompts", "register", "p", "--template-file", "t.j2")
    (tmp_path / "evil.j2").write_text("{{ ''.__class__.__mro__ }}")
    assert "sandbox forbids" in cli("prompts", "register", "p", "--template-file", "evil.j2", code=2).stderr
    assert "cannot read" in cli("prompts", "register", "p", "--template-file", "missing.j2", code=2).stderr
    assert "KEY=VALUE" in cli("prompts", "register", "p", "--template-file", "t.j2", "--param", "x", code=2).stderr
    assert "missing variable q" in cli("prompts", "render", "p", code=2).stderr
    assert "unknown variable 'x'" in cli("prompts", "render", "p", "--var", "q=1", "--var", "x=2", code=2).stderr
    assert cli("prompts", "render", "p", "--var", "q=1", "--var", "x=2", "--no-strict").stdout == "1"
    assert "no version 5" in cli("prompts", "label", "p", "production", "5", code=3).stderr
    assert "name the version" in cli("prompts", "label", "p", "production", code=2).stderr
    cli("prompts", "show", "nope", code=3)
    cli("prompts", "diff", "p", "1", "staging", code=3)
    [p] = Client().prompts.list()
    assert (p.latest_version, p.labels) == (1, {})
    cli("prompts", "label", "p", "staging", "1")
    assert "removed label staging" in cli("prompts", "label", "p", "staging", "--delete").stdout
    assert Client().prompts.get_prompt("p").labels == {}
