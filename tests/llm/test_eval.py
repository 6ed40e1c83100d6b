"""LLM evaluation: scorers on known inputs, judge parsing, providers, and `evaluate`/`compare`/`feedback`
against a real store (SQLite, PostgreSQL, HTTP: the `client` fixture) with a deterministic local model."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

import arsenale as ars
import arsenale.llm.eval as ev
from arsenale.errors import InvalidInput, NotFound
from arsenale.llm import tracer

# ---- scorers ----------------------------------------------------------------------------------------------


def test_exact_fuzzy_and_token_f1_on_known_inputs() -> None:
    assert ev.exact_match("The Cat!", "cat") == 1.0
    assert ev.exact_match("The Cat!", "cat", normalize=False) == 0.0
    assert ev.exact_match("dog", ["cat", "Dog."]) == 1.0  # any acceptable answer
    assert ev.exact_match("dog", "cat") == 0.0
    assert ev.fuzzy_match("kitten", "sitting") == pytest.approx(8 / 13)
    assert ev.fuzzy_match("Paris", "  paris ") == 1.0
    # SQuAD: "cat sat" shared; precision 2/4 ("the" dropped twice), recall 2/2 -> F1 2/3.
    assert ev.token_f1("the cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)
    assert ev.token_f1("", "") == 1.0 and ev.token_f1("x", "") == 0.0
    assert ev.token_f1("blue", "red") == 0.0


def test_embedding_similarity_is_the_cosine_of_the_embeddings() -> None:
    vectors = {"x": [3.0, 4.0], "y": [4.0, 3.0], "z": [-4.0, 3.0]}
    assert ev.embedding_similarity("x", "y", embed=vectors.__getitem__) == pytest.approx(24 / 25)
    assert ev.embedding_similarity("x", "z", embed=vectors.__getitem__) == 0.0  # orthogonal
    embed = ev.hashing_embedder(64)
    assert embed("Paris is nice") == embed("paris IS nice")  # deterministic, case-blind
    assert ev.embedding_similarity("the capital is Paris", "Paris is the capital") == pytest.approx(1.0)
    assert ev.embedding_similarity("Paris", "Paris or Rome") < 1.0
    with pytest.raises(InvalidInput, match="dim"):
        ev.hashing_embedder(0)


@dataclass
class Hit:
    text: str


CONTEXT = ["Paris is the capital of France.", {"text": "France has 68 million inhabitants."},
           Hit("The Eiffel Tower was finished in 1889.")]


def test_groundedness_is_high_when_supported_and_low_when_hallucinated() -> None:
    assert ev.groundedness("Paris is the capital of France.", CONTEXT) == 1.0
    assert ev.groundedness("The Eiffel Tower was finished in 1889. France has 68 million inhabitants.",
                           CONTEXT) == 1.0
    # One sentence fully supported, one with 1 of 3 content words (68 million people): (1 + 2/3) / 2.
    assert ev.groundedness("Paris is the capital of France. It has 68 million people.",
                           CONTEXT) == pytest.approx(5 / 6)
    hallucinated = ev.groundedness("Berlin is the capital of Germany, with 83 million residents.", CONTEXT)
    assert hallucinated == pytest.approx(2 / 6)  # only "capital" and "million" are in the context
    assert ev.groundedness("The tower was finished in 1925.", CONTEXT) == pytest.approx(2 / 3)
    assert ev.groundedness("Paris", "") == 0.0
    assert ev.groundedness("", CONTEXT) == 1.0  # claims nothing
    with pytest.raises(InvalidInput, match="context"):
        ev.groundedness("x", 42)


def test_pii_is_found_and_clean_text_passes() -> None:
    text = ("write to jo.doe@example.com or call +44 20 7946 0958; IBAN GB82 WEST 1234 5698 7654 32; "
            "card 4111 1111 1111 1111")
    assert ev.find_pii(text) == [("email", "jo.doe@example.com"), ("iban", "GB82 WEST 1234 5698 7654 32"),
                                 ("card", "4111 1111 1111 1111"), ("phone", "+44 20 7946 0958")]
    assert ev.no_pii(text) == 0.0
    assert ev.no_pii("call 555-123-4567 now") == 0.0
    assert ev.no_pii("Order 12345 shipped on 2024-01-15 at 10:30, total 1,299.99 EUR.") == 1.0
    assert ev.no_pii("ref 4111 1111 1111 1112") == 1.0  # 16 digits failing Luhn: not a card
    assert "iban" not in {kind for kind, _ in ev.find_pii("GB00 WEST 1234 5698 7654 32")}  # bad checksum


def test_toxicity_free_matches_whole_words_in_any_case() -> None:
    assert ev.toxicity_free("You IDIOT.") == 0.0
    assert ev.toxicity_free("please shut   up") == 0.0
    assert ev.toxicity_free("an idiotic plan, a scrappy team") == 1.0  # not whole words
    assert ev.toxicity_free("that is bananas", words=["Bananas"]) == 0.0
    assert ev.toxicity_free("You idiot", words=[]) == 1.0


@pytest.mark.parametrize(("reply", "score"), [
    ("Score: 8", 0.8), ("**Score:** 7/10", 0.7), ("I'd give it 4 out of 5.", 0.8), ("9", 0.9),
    ("Reasoning: mentions 2 facts.\nRating = 6", 0.6), ("score 0", 0.0), ("10/10", 1.0)])
def test_judge_scores_are_read_robustly(reply: str, score: float) -> None:
    assert ev.parse_judge_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", ["The answer is great", "Score: 12", "3 and 4", "", "Score: -1"])
def test_an_unreadable_judge_reply_is_invalid_input(reply: str) -> None:
    with pytest.raises(InvalidInput, match="could not read a judge score"):
        ev.parse_judge_score(reply)


def test_llm_judge_sends_rubric_question_reference_and_answer() -> None:
    judge = ev.DeterministicModel(lambda prompt: "Score: 4" if "Reference answer:\nParis" in prompt else "?")
    assert ev.llm_judge("Paris", question="Capital of France?", expected="Paris", judge=judge,
                        scale=(1, 5)) == pytest.approx(0.75)
    (prompt,) = judge.calls
    assert prompt.startswith(ev.DEFAULT_JUDGE_RUBRIC) and "Question:\nCapital of France?" in prompt
    assert prompt.endswith("Answer to grade:\nParis")
    with pytest.raises(InvalidInput, match="judge score"):
        ev.llm_judge("Paris", judge=lambda p: "no idea")


def test_providers_are_local_and_the_api_key_stays_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    echo = ev.EchoModel()("say hi")
    assert (echo.text, echo.input_tokens, echo.output_tokens) == ("say hi", 2, 2)
    assert ev.DeterministicModel({"hi": "hello"}, default="?")("oh hi there").text == "hello"
    with pytest.raises(InvalidInput, match="no reply"):
        ev.DeterministicModel({"hi": "hello"})("bye")
    model = ev.OpenAICompatible("http://127.0.0.1:9/v1", "gpt-x", api_key_env="ARS_TEST_KEY")
    assert isinstance(model, ev.ChatModel)
    assert repr(model) == "OpenAICompatible('http://127.0.0.1:9/v1', model='gpt-x', api_key_env='ARS_TEST_KEY')"
    monkeypatch.delenv("ARS_TEST_KEY", raising=False)
    with pytest.raises(InvalidInput, match="ARS_TEST_KEY"):
        model("hello")  # refused before any request


# ---- evaluate / compare / feedback on a real store ----------------------------------------------------------

QA = [("Capital of France?", "Paris"), ("Capital of Italy?", "Rome"), ("Capital of Spain?", "Madrid"),
      ("Capital of Japan?", "Tokyo"), ("Capital of Peru?", "Lima"), ("Capital of Kenya?", "Nairobi"),
      ("Capital of Chile?", "Santiago"), ("Capital of Egypt?", "Cairo")]
GUESSES = {"Capital of France?": "Paris", "Capital of Italy?": "Rome"}  # what the model knows without context


def _answer(prompt: str) -> str:
    """With the context in the prompt, the right city; without, a guess right for 2 of 8 questions."""
    question = next(q for q, _ in QA if q in prompt)
    if "Context:" in prompt:
        return dict(QA)[question]
    return GUESSES.get(question, "London")


def _setup(client: Any) -> tuple[Any, Any, str]:
    frame = pd.DataFrame({"question": [q for q, _ in QA], "expected": [a for _, a in QA],
                          "context": [f"The capital is {a}." for _, a in QA]})
    client.datasets.register("capitals", frame)
    bare = client.prompts.register("qa", template="Answer: {{ question }}")
    grounded = client.prompts.register("qa", template="Context: {{ context }}\nAnswer: {{ question }}")
    return bare, grounded, "capitals@1"


def test_evaluate_logs_a_run_and_traces_every_call(client: Any) -> None:
    bare, _, dataset = _setup(client)
    model = ev.DeterministicModel(_answer)
    result = ev.evaluate("qa/1", dataset, model=model, scorers=[ev.exact_match, ev.token_f1, ev.no_pii],
                         run_name="qa-v1", client=client)
    assert result.scores == {"exact_match": 0.25, "token_f1": 0.25, "no_pii": 1.0}
    assert (result.prompt, result.dataset) == ("qa/1", "capitals@1")
    assert list(result.rows["output"])[:3] == ["Paris", "Rome", "London"]
    assert len(model.calls) == 8 and model.calls[0] == "Answer: Capital of France?"

    run = client.tracking.get_run(result.run_id)
    assert (run.info.status, run.info.run_name) == ("FINISHED", "qa-v1")
    assert run.data.metrics["exact_match"] == 0.25 and run.data.metrics["eval.rows"] == 8
    assert run.data.metrics["eval.input_tokens"] == 32  # "Answer: Capital of X?" is 4 words, 8 times
    assert {k: run.data.params[k] for k in ("prompt", "dataset", "model", "scorers")} == {
        "prompt": "qa/1", "dataset": "capitals@1", "model": "deterministic",
        "scorers": "exact_match,token_f1,no_pii"}
    rows = pd.read_parquet(io.BytesIO(client.tracking.read_artifact(result.run_id, "eval/rows.parquet")))
    assert list(rows["exact_match"]) == [1.0, 1.0] + [0.0] * 6
    assert [i.name for i in client.datasets.inputs(result.run_id)] == ["capitals"]

    tracer.flush(client)
    traces = client.traces.search(prompt=bare.uri).traces
    assert len(traces) == 8 and set(result.rows["trace_id"]) == {t.trace_id for t in traces}
    assert client.traces.search(attributes={"arsenale.run_id": result.run_id}).traces[0].prompt == "prompts:/qa/1"
    first = client.traces.get(result.rows["trace_id"][0])
    assert {s.name: (s.value, s.source) for s in first.scores} == {
        "exact_match": (1.0, "auto"), "token_f1": (1.0, "auto"), "no_pii": (1.0, "auto")}
    generation = next(s for s in first.spans if s.name == "generation")
    assert (generation.kind, generation.model, generation.input_tokens, generation.output_tokens) == (
        "llm", "deterministic", 4, 1)
    assert generation.attributes["output"] == "Paris"


def test_compare_finds_the_grounded_prompt_better(client: Any) -> None:
    _, grounded, dataset = _setup(client)
    def grade(prompt: str) -> str:
        reference = prompt.split("Reference answer:\n")[1].split("\n\n")[0]
        return "Score: 10" if prompt.split("Answer to grade:\n")[1] == reference else "Score: 2"

    judge = ev.DeterministicModel(grade)
    scorers: dict[str, Callable[..., float]] = {"exact": ev.exact_match, "judge": functools.partial(ev.llm_judge, judge=judge),
               "grounded": ev.groundedness}
    cmp = ev.compare("qa/1", f"qa/{grounded.version}", dataset, model=ev.DeterministicModel(_answer),
                     scorers=scorers, client=client, run_name="v1-vs-v2")
    exact = cmp.diffs["exact"]
    assert (exact.a, exact.b, exact.diff) == (0.25, 1.0, 0.75)
    assert exact.significant and 0.4 < exact.low <= 0.75 <= exact.high <= 1.0
    assert cmp.diffs["judge"].diff == pytest.approx(0.8 * 0.75) and cmp.diffs["judge"].significant
    parent = client.tracking.get_run(cmp.run_id)
    assert parent.data.metrics["exact.diff"] == 0.75 and parent.data.params["prompt_b"] == "qa/2"
    for child in (cmp.a, cmp.b):
        assert client.tracking.get_run(child.run_id).data.tags["ars.parent_run_id"] == cmp.run_id


def _no_runs(client: Any) -> bool:
    exp = client.tracking.get_experiment_by_name("Default")
    return exp is None or not client.tracking.search_runs([exp.experiment_id]).runs


def test_bad_datasets_fail_before_any_model_call(client: Any) -> None:
    _setup(client)
    model = ev.DeterministicModel(_answer)
    with pytest.raises(NotFound):
        ev.evaluate("qa/1", "no-such-dataset", model=model, scorers=[ev.exact_match], client=client)
    client.datasets.register("questions-only", pd.DataFrame({"q": ["Capital of Peru?"], "expected": ["Lima"]}))
    with pytest.raises(InvalidInput, match="no column 'context' for the template variable 'context'"):
        ev.evaluate("qa/2", "questions-only", model=model, scorers=[ev.exact_match], client=client,
                    variables={"question": "q"})
    with pytest.raises(InvalidInput, match="scorer 'groundedness' needs 'context'"):
        ev.evaluate("qa/1", "questions-only", model=model, scorers=[ev.groundedness], client=client,
                    variables={"question": "q"})
    with pytest.raises(InvalidInput, match="does not use"):
        ev.evaluate("qa/1", "questions-only", model=model, scorers=[ev.exact_match], client=client,
                    variables={"question": "q", "typo": "q"})
    assert model.calls == [] and _no_runs(client)
    tracer.flush(client)
    assert client.traces.search().traces == []
    ok = ev.evaluate("qa/1", "questions-only", model=model, scorers=[ev.exact_match], client=client,
                     variables={"question": "q"})  # the mapping renames the column
    assert ok.scores == {"exact_match": 0.0} and model.calls == ["Answer: Capital of Peru?"]


def test_a_failing_scorer_fails_the_run_with_the_row_named(client: Any) -> None:
    _, _, dataset = _setup(client)

    def boom(output: str, expected: str) -> float:
        if expected == "Rome":
            raise ValueError("cannot score Rome")
        return 1.0

    with pytest.raises(InvalidInput, match="scorer 'boom' failed on row 1: ValueError: cannot score Rome"):
        ev.evaluate("qa/1", dataset, model=ev.DeterministicModel(_answer), scorers=[boom], client=client)
    with pytest.raises(InvalidInput, match=r"scorer 'half' returned 2.0 on row 0"):
        ev.evaluate("qa/1", dataset, model=ev.DeterministicModel(_answer), scorers={"half": lambda o: 2.0},
                    client=client)
    tracer.flush(client)  # the traces of the rows scored before the failure
    exp = client.tracking.get_experiment_by_name("Default")
    runs = client.tracking.search_runs([exp.experiment_id]).runs
    assert [r.info.status for r in runs] == ["FAILED", "FAILED"]
    assert all(not any(k in r.data.metrics for k in ("boom", "half")) for r in runs)


def test_human_feedback_on_a_trace(client: Any) -> None:
    _, _, dataset = _setup(client)
    result = ev.evaluate("qa/1", dataset, model=ev.DeterministicModel(_answer), scorers=[ev.exact_match],
                         client=client)
    tracer.flush(client)
    tid = result.rows["trace_id"][2]
    stored = ev.feedback(tid, thumbs=False, score=0.2, comment="wrong city", client=client)
    assert [(s.name, s.value, s.comment, s.source) for s in stored] == [
        ("thumbs", 0.0, "wrong city", "human"), ("feedback", 0.2, None, "human")]
    ev.feedback(tid, comment="should say Madrid", client=client)
    before = len(client.traces.get(tid).scores)
    with pytest.raises(InvalidInput, match="thumbs, a score or a comment"):
        ev.feedback(tid, client=client)
    with pytest.raises(InvalidInput, match="finite number"):
        ev.feedback(tid, thumbs=True, score=float("nan"), client=client)
    with pytest.raises(InvalidInput, match="thumbs must be"):
        ev.feedback(tid, thumbs=1, client=client)  # type: ignore[arg-type]
    assert len(client.traces.get(tid).scores) == before == 4  # with exact_match's
    thumbs_down = client.traces.search(score="thumbs").traces
    assert [t.trace_id for t in thumbs_down] == [tid]


def test_inside_an_active_run_the_evaluation_nests_in_it() -> None:
    client = ars.get_client()  # the embedded store of the test's own ARSENALE_HOME, as `ars.start_run` uses
    _, _, dataset = _setup(client)
    with ars.start_run(experiment="prompt-work") as outer:
        result = ev.evaluate("qa/2", dataset, model=ev.DeterministicModel(_answer), scorers=[ev.exact_match])
    run = client.tracking.get_run(result.run_id)
    assert run.data.tags["ars.parent_run_id"] == outer.run_id and result.scores == {"exact_match": 1.0}
    assert run.info.experiment_id == outer.info.experiment_id  # joins its parent's experiment


def test_ars_llm_eval_is_reachable_lazily() -> None:
    assert ars.llm.eval.groundedness is ev.groundedness
