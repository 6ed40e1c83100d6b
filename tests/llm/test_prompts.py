"""The prompt registry on SQLite, PostgreSQL and over HTTP (the `client` fixture): immutable versions, labels
moved with audit entries, diffs, checked rendering, and bad input that changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import arsenale as ars
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm.prompts import MAX_TEMPLATE_BYTES, PromptVersion, render_template
from arsenale.platform import Client
from tests.conftest import race

NAME = "support-answer"
TEMPLATE = "Answer using {{ context }}:\n{{ question }}"


def _state(client: Any) -> tuple[list[Any], int]:
    """Everything a bad call could have changed: the prompts, their versions and labels, the audit trail."""
    prompts = client.prompts.list()
    return ([(p, client.prompts.versions(p.name)) for p in prompts],
            len(client.audit.entries(limit=None)))


def test_versions_are_immutable_and_identical_content_is_one_version(client: Any) -> None:
    api = client.prompts
    p1 = api.register(NAME, TEMPLATE, model="gpt-x", params={"temperature": 0.2}, description="first")
    assert (p1.version, p1.uri, p1.variables) == (1, f"prompts:/{NAME}/1", ["context", "question"])
    assert p1.model == "gpt-x" and p1.params == {"temperature": 0.2} and len(p1.digest) == 64
    # The same content again (the description is not content) is the same version, unchanged.
    again = api.register(NAME, TEMPLATE, model="gpt-x", params={"temperature": 0.2}, description="other")
    assert again == p1
    p2 = api.register(NAME, TEMPLATE, model="gpt-x", params={"temperature": 0.5})
    p3 = api.register(NAME, TEMPLATE + "\nBe brief.", model="gpt-x", params={"temperature": 0.5})
    p4 = api.register(NAME, TEMPLATE, model="gpt-y", params={"temperature": 0.5})
    assert [p.version for p in (p2, p3, p4)] == [2, 3, 4]
    assert api.register(NAME, TEMPLATE, model="gpt-x", params={"temperature": 0.2}).version == 1
    assert [v.version for v in api.versions(NAME)] == [4, 3, 2, 1]
    assert api.get(NAME) == p4 and api.get(f"{NAME}/latest") == p4 and api.get(f"{NAME}@latest") == p4
    assert api.get(f"{NAME}/1") == p1 and api.get(f"prompts:/{NAME}/3") == p3
    assert api.get(NAME, version=2) == p2 and api.get(NAME, version="2") == p2
    assert api.get(f"{NAME}/1").template == TEMPLATE  # nothing overwrote version 1
    [prompt] = api.list()
    assert (prompt.name, prompt.latest_version, prompt.description, prompt.labels) == (NAME, 4, "first", {})
    registered = client.audit.entries(action="prompt.register", limit=None)
    assert sorted(e.entity_id for e in registered) == [f"{NAME}/{v}" for v in range(1, 5)]
    assert client.audit.verify().ok


def test_labels_move_with_an_audit_entry(client: Any) -> None:
    api = client.prompts
    p1 = api.register(NAME, TEMPLATE)
    p2 = api.register(NAME, TEMPLATE + "!")
    assert api.set_label(NAME, "production", version=p1.version, reason="first release").labels == ["production"]
    api.set_label(NAME, "staging", p2.version)
    assert api.get(f"{NAME}@production") == api.get(NAME, label="production") == api.get(f"{NAME}/1")
    assert api.get(f"prompts:/{NAME}@staging").version == 2
    api.set_label(NAME, "production", 2, reason="v2 is better")
    api.set_label(NAME, "production", 2)  # already there: nothing moves, nothing is audited
    assert api.get(f"{NAME}@production").version == 2
    assert api.get_prompt(NAME).labels == {"production": 2, "staging": 2}
    assert api.get(f"{NAME}/2").labels == ["production", "staging"] and api.get(f"{NAME}/1").labels == []
    moves = client.audit.entries(action="prompt.label", limit=None)
    assert [(e.entity_id, e.details["label"], e.details["previous"], e.details["version"], e.details["reason"])
            for e in moves] == [(NAME, "production", None, 1, "first release"), (NAME, "staging", None, 2, None),
                                (NAME, "production", 1, 2, "v2 is better")]
    api.delete_label(NAME, "staging")
    with pytest.raises(NotFound, match="no label 'staging'"):
        api.get(f"{NAME}@staging")
    with pytest.raises(NotFound):
        api.delete_label(NAME, "staging")
    [deleted] = client.audit.entries(action="prompt.label_delete", limit=None)
    assert deleted.details == {"label": "staging", "previous": 2}
    assert client.audit.verify().ok


def test_a_label_on_a_missing_version_or_prompt_changes_nothing(client: Any) -> None:
    api = client.prompts
    api.register(NAME, TEMPLATE)
    api.set_label(NAME, "production", 1)
    before = _state(client)
    with pytest.raises(NotFound, match="no version 7") as exc:
        api.set_label(NAME, "production", 7)
    assert exc.value.field == "version"
    with pytest.raises(NotFound, match="does not exist"):
        api.set_label("no-such-prompt", "production", 1)
    for bad in ("Production", "latest", "v2", "", "a b", "x" * 65, 3):
        with pytest.raises(InvalidInput) as bad_exc:
            api.set_label(NAME, bad, 1)
        assert bad_exc.value.field == "label"
    for bad_version in (0, -1, True, 2**31, "1"):
        with pytest.raises(InvalidInput):
            api.set_label(NAME, "production", bad_version)
    assert _state(client) == before
    assert api.get(f"{NAME}@production").version == 1


def test_unknown_prompts_versions_and_references(client: Any) -> None:
    api = client.prompts
    with pytest.raises(NotFound, match="'nope' does not exist"):
        api.get("nope")
    for call in (lambda: api.versions("nope"), lambda: api.get_prompt("nope"), lambda: api.diff("nope", 1, 2),
                 lambda: api.get("nope@production"), lambda: api.delete_label("nope", "production")):
        with pytest.raises(NotFound):
            call()
    api.register(NAME, TEMPLATE)
    with pytest.raises(NotFound, match="no version 9"):
        api.get(f"{NAME}/9")
    for ref in (f"{NAME}/x", f"{NAME}/0", f"{NAME}@Bad", "a@b@c", "", f"{NAME}/1/2"):
        with pytest.raises(InvalidInput):
            api.get(ref)
    with pytest.raises(InvalidInput, match="not both"):
        api.get(f"{NAME}/1", label="production")
    with pytest.raises(InvalidInput, match="not both"):
        api.get(NAME, version=1, label="production")


def test_bad_registrations_are_refused_and_store_nothing(client: Any) -> None:
    api = client.prompts
    api.register("kept", "{{ x }}")
    before = _state(client)
    refused: list[tuple[dict[str, Any], str]] = [
        ({"template": "{{ ''.__class__ }}"}, "'__class__'"),
        ({"template": "{{ cycler.__init__.__globals__ }}"}, "sandbox forbids"),
        ({"template": "{{ x['__class__'] }}"}, "'__class__'"),
        ({"template": "{{ x.mro() }}"}, "'mro'"),
        ({"template": "{% for %}"}, "does not parse"),
        ({"template": "{{ x | no_such_filter }}"}, "no_such_filter"),
        ({"template": "{{ x"}, "does not parse"),
        ({"template": "x" * (MAX_TEMPLATE_BYTES + 1)}, "larger than the limit"),
        ({"template": "a\x00b"}, "NUL"),
        ({"template": 42}, "must be a string"),
        ({"template": "ok", "params": {"t": float("nan")}}, "finite"),
        ({"template": "ok", "params": {"t": object()}}, "must be JSON"),
        ({"template": "ok", "params": ["t"]}, "must be an object"),
        ({"template": "ok", "params": {"blob": "x" * 20_000}}, "exceed"),
        ({"template": "ok", "model": ""}, "model"),
    ]
    for kwargs, message in refused:
        template = kwargs.pop("template")
        with pytest.raises(InvalidInput, match=message):
            api.register("refused", template, **kwargs)
    for name in ("a/b", "a@b", "", " padded", "x" * 300, "nul\x00", None):
        with pytest.raises(InvalidInput) as exc:
            api.register(name, "{{ x }}")  # type: ignore[arg-type]
        assert exc.value.field == "name"
    assert _state(client) == before


def test_diff_between_versions_and_labels(client: Any) -> None:
    api = client.prompts
    api.register(NAME, "Hello {{ name }}\nBye\n", model="gpt-x", params={"temperature": 0.2, "top_p": 1})
    api.register(NAME, "Hello {{ name }}, from {{ team }}\nBye\n", model="gpt-y", params={"temperature": 0.5})
    api.set_label(NAME, "production", 1)
    d = api.diff(NAME, "production", "latest")
    assert (d.from_version, d.to_version, d.changed) == (1, 2, True)
    assert "-Hello {{ name }}\n+Hello {{ name }}, from {{ team }}\n Bye\n" in d.template_diff
    assert d.template_diff.startswith(f"--- prompts:/{NAME}/1\n+++ prompts:/{NAME}/2\n")
    assert d.changes == {"model": ["gpt-x", "gpt-y"], "params.temperature": [0.2, 0.5], "params.top_p": [1, None],
                         "variables": [["name"], ["name", "team"]]}
    assert api.diff(NAME, 2, 1).changes["model"] == ["gpt-y", "gpt-x"]
    assert api.diff(NAME, "v1", 2) == d
    same = api.diff(NAME, 1, "production")
    assert not same.changed and same.template_diff == "" and same.changes == {}
    with pytest.raises(NotFound):
        api.diff(NAME, 1, 3)
    with pytest.raises(NotFound):
        api.diff(NAME, 1, "staging")
    with pytest.raises(InvalidInput):
        api.diff(NAME, 1, "Not A Label")


def test_rendering_checks_variables_and_never_executes_values(client: Any) -> None:
    p = client.prompts.register(NAME, TEMPLATE, model="gpt-x")
    prompt = client.prompts.get(f"{NAME}/{p.version}")
    assert prompt.render(context="docs", question="why?") == "Answer using docs:\nwhy?"
    assert prompt.render({"context": "docs", "question": "why?"}) == "Answer using docs:\nwhy?"
    with pytest.raises(InvalidInput, match="missing variable question") as exc:
        prompt.render(context="docs")
    assert exc.value.field == "variables"
    with pytest.raises(InvalidInput, match="missing variables context, question"):
        prompt.render()
    with pytest.raises(InvalidInput, match="unknown variable 'questoin'"):
        prompt.render(context="docs", question="q", questoin="typo")
    assert prompt.render(context="docs", question="q", extra=1, strict=False) == "Answer using docs:\nq"
    # Values are text: Jinja in a value is printed as it is, never evaluated.
    hostile = {"context": "{{ 7*7 }} {% for i in range(3) %}{{ i }}{% endfor %}",
               "question": "{{ ''.__class__.__mro__ }} {{ config }}"}
    assert prompt.render(**hostile) == f"Answer using {hostile['context']}:\n{hostile['question']}"
    assert prompt.render(context=None, question=0) == "Answer using None:\n0"


def test_the_sandbox_refuses_at_render_what_registration_cannot_see() -> None:
    for template, variables in (("{{ x|attr('__class__') }}", {"x": ""}),
                                ("{{ x.append(1) }}", {"x": []}),  # the sandbox is immutable
                                ("{{ 'a' * 100000000000 }}", {}),
                                ("{{ 10 ** 10000000 }}", {}),
                                ("{% for i in range(10**9) %}{% endfor %}", {})):
        with pytest.raises(InvalidInput, match="sandbox|failed to render"):
            render_template(template, variables)
    items = render_template("{% for h in hits %}- {{ h.text }}\n{% endfor %}", {"hits": [{"text": "{{a}}"}]})
    assert items == "- {{a}}\n"


def test_the_fluent_api_follows_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", f"sqlite:///{tmp_path / 'fluent.db'}")
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    p = ars.prompts.register(NAME, template="Answer using {{context}}:\n{{question}}", model="gpt-x",
                             params={"temperature": 0.2})
    ars.prompts.set_label(NAME, "production", version=p.version)
    prompt = ars.prompts.get(f"{NAME}@production")
    assert isinstance(prompt, PromptVersion)
    assert prompt.render(context="hits", question="q?") == "Answer using hits:\nq?"
    assert [x.name for x in ars.prompts.list()] == [NAME] and len(ars.prompts.versions(NAME)) == 1
    assert not ars.prompts.diff(NAME, 1, "production").changed
    ars.prompts.delete_label(NAME, "production")
    assert Client(f"sqlite:///{tmp_path / 'fluent.db'}").prompts.get_prompt(NAME).labels == {}

PROCS, PER_PROC = 3, 3


def _register(uri: str, worker: int, start: Any, out: Any) -> None:
    api = Client(uri, actor=f"worker-{worker}").prompts
    start.wait(30)
    for i in range(PER_PROC):
        mine = api.register(NAME, f"worker {worker} prompt {i}: {{{{ q }}}}")
        shared = api.register(NAME, "the same for everyone: {{ q }}")
        out.put((mine.version, shared.version, worker, i))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_concurrent_registrations_get_distinct_versions(store_uri: str, method: str) -> None:
    results = race(method, PROCS, PER_PROC, _register, store_uri)
    mine = sorted(v for v, _, _, _ in results)
    assert len(set(mine)) == PROCS * PER_PROC  # every distinct content got its own number
    assert len({s for _, s, _, _ in results}) == 1  # the identical content got one, whoever came first
    api = Client(store_uri).prompts
    versions = api.versions(NAME)
    assert [v.version for v in versions] == list(range(PROCS * PER_PROC + 1, 0, -1))
    by_version = {v.version: v.template for v in versions}
    for version, _, worker, i in results:
        assert by_version[version] == f"worker {worker} prompt {i}: {{{{ q }}}}"
