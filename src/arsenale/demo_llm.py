"""The demo's LLMOps chapter: a question-answering assistant over the platform's own runbook.

A versioned vector index holds the runbook's paragraphs (the project writes them; nothing is downloaded),
a prompt version carries the template, and a small extractive model answers from the retrieved paragraphs,
so the chapter runs offline and gives the same answers every time. Each question is a trace: a retrieval
span naming the index version and the chunks it returned, a generation span with tokens and cost from the
price table, and a groundedness score. The prompt is then evaluated on a registered question set as a
tracked run, the index's recall@k is measured on the same questions, and the runbook's second version is
compared with the first for embedding drift.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

INDEX = "demo-runbook"
PROMPT = "demo-runbook-answer"
QUESTIONS = "demo-runbook-questions"
MODEL_NAME = "local-extractive"
MONITOR = "runbook-assistant"
RULES = ("score.groundedness < 0.7 for 2 windows", "latency_p95 > 2000")
TEMPLATE = "Answer the operator's question from the runbook.\nQuestion: {{ question }}"

RUNBOOK = {
    "champion": "The champion alias names the model version that serves production traffic; moving it is "
                "recorded in the audit trail with the reason.",
    "canary": "A canary sends a growing share of requests to the challenger and promotes it only while its "
              "error rate and latency stay within the deployment's budget.",
    "rollback": "A rollback restores the previous routing policy at once, without a restart, and the history "
                "names who rolled back and why.",
    "drift": "A drift alert fires when the share of drifted features stays above its threshold for the "
             "configured number of windows, and it can start the retraining pipeline.",
    "gate": "The CI gate compares a candidate with the champion on held-out rows with a paired bootstrap and "
            "refuses it when the interval of its loss reaches below the margin.",
    "features": "Training features come from point-in-time correct joins, so no value from the future of an "
                "entity row leaks into a training set.",
    "lineage": "Lineage links each model version to its run, the dataset versions and feature versions it "
               "was trained on, and the commit of its code.",
    "audit": "The audit trail is a hash chain: editing or deleting an entry breaks the chain, which "
             "verification reports with the first bad sequence number.",
}
ADDED = {"retention": "Retention policies delete old traces and inference logs on a schedule, and never touch "
                      "a model version under legal hold."}
QA = [
    ("Which model version serves production traffic?", "champion"),
    ("How does a canary decide to promote the challenger?", "canary"),
    ("How fast is a rollback and does it need a restart?", "rollback"),
    ("When does a drift alert fire?", "drift"),
    ("How does the CI gate compare a candidate with the champion?", "gate"),
    ("Can a value from the future leak into training features?", "features"),
    ("What does lineage link a model version to?", "lineage"),
    ("How is tampering with the audit trail detected?", "audit"),
]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def assistant(index: Any) -> Any:
    """A deterministic extractive 'model': the retrieved paragraph sharing most words with the question."""
    from arsenale.llm.providers import Completion

    def answer(prompt: str, /, **params: Any) -> Completion:
        question = prompt.rsplit("Question:", 1)[-1].strip()
        hits = index.search(question, k=3)
        best = max(hits, key=lambda h: len(_words(h.text) & _words(question))) if hits else None
        text = best.text if best is not None else "I do not know."
        return Completion(text, MODEL_NAME, len(prompt.split()), len(text.split()))

    return answer


def run_llm_chapter(ars: Any, client: Any) -> dict[str, Any]:
    """Index, prompt, traced answers, evaluation, recall@k and drift; returns what the summary prints."""
    import arsenale.llm.eval as ev
    from arsenale.llm.retrieval import embedding_drift, recall_at_k
    from arsenale.llm.tracer import flush

    index = ars.VectorIndex(INDEX, client=client)
    first = index.add([{"id": key, "text": text} for key, text in RUNBOOK.items()])
    prompt = client.prompts.register(PROMPT, template=TEMPLATE, model=MODEL_NAME, params={"k": 3})
    client.prompts.set_label(PROMPT, "production", version=prompt.version, reason="first version of the demo")
    client.traces.set_price(MODEL_NAME, input_per_million=0.15, output_per_million=0.60)
    model = assistant(index)
    grounded = []
    for i, (question, _) in enumerate(QA):
        with ars.trace("runbook-answer", session=f"operator-{i % 3}", user="demo") as t:
            hits = index.search(question, k=3)
            text = client.prompts.get(f"{PROMPT}@production").render(question=question)
            with ars.span("generation", kind="llm") as g:
                reply = model(text)
                g.set_usage(model=MODEL_NAME, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
            score = ev.groundedness(reply.text, hits)
            t.score("groundedness", score)
            grounded.append(score)
    flush()
    if not client.datasets.list(name_like=QUESTIONS):
        client.datasets.register(QUESTIONS, pd.DataFrame({
            "question": [q for q, _ in QA], "expected": [RUNBOOK[k] for _, k in QA],
            "relevant_ids": [f'["{k}"]' for _, k in QA]}))
    evaluation = ev.evaluate(f"{PROMPT}@production", QUESTIONS, model=model,
                             scorers=[ev.token_f1, ev.exact_match, ev.no_pii], run_name="runbook-answer eval")
    quality = recall_at_k(index, QUESTIONS, k=3, log=True, run_name="runbook retrieval")
    second = index.add([{"id": key, "text": text} for key, text in ADDED.items()])
    drift = embedding_drift(index, first.version, second.version)
    cost = sum(t.cost or 0.0 for t in client.traces.search(name="runbook-answer", limit=100).traces)
    window = _monitor(client)
    print(f"LLMOps: index {INDEX} v{first.version} ({first.count} runbook paragraphs), prompt "
          f"{PROMPT}/{prompt.version} @production, {len(QA)} traced answers (mean groundedness "
          f"{sum(grounded) / len(grounded):.2f}, cost ${cost:.6f})")
    print(f"  evaluation run {evaluation.run_id[:8]}: token F1 {evaluation.scores['token_f1']:.2f}, exact match "
          f"{evaluation.scores['exact_match']:.2f}; retrieval recall@3 {quality.recall:.2f}, MRR {quality.mrr:.2f}")
    print(f"  index v{second.version}: +{drift.added} paragraph, {drift.changed} changed, MMD p-value "
          f"{drift.p_value:.2f} ({'drifted' if drift.drifted else 'no embedding drift'})")
    values = window.values
    print(f"  LLM monitor {MONITOR}: {values['traces']:.0f} traces in the last hour, p95 latency "
          f"{values['latency_p95']:.1f} ms, groundedness {values['score.groundedness']:.2f}; rules "
          f"{', '.join(repr(r) for r in RULES)}: {len(window.alerts)} alert(s)")
    return {"index": INDEX, "prompt": PROMPT, "evaluation_run": evaluation.run_id, "recall": quality.recall,
            "groundedness": sum(grounded) / len(grounded), "index_version": second.version, "monitor": MONITOR,
            "window": values}


def _monitor(client: Any) -> Any:
    """The assistant's answers watched like a model: hourly windows of latency, cost and scores, with the
    same alert rules as drift (they fire after their windows, audited, and can start a pipeline)."""
    from arsenale.errors import NotFound

    monitors = client.monitors
    try:
        monitors.get(MONITOR)
    except NotFound:
        monitors.create_llm(MONITOR, trace_name="runbook-answer", window="1h")
        for rule in RULES:
            monitors.alerts.add_rule(MONITOR, rule)
    return monitors.run(MONITOR)
