"""LLM monitors' pure pieces: metric names, prompt matching, filter checks (the store-facing behaviour is
tested in tests/llm/test_monitor.py on SQLite, PostgreSQL and over HTTP)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arsenale.errors import InvalidInput
from arsenale.monitoring.alerts import parse_rule
from arsenale.monitoring.llm import METRICS, check_filter, check_llm_metric, prompt_match, score_metric


def test_every_value_is_a_rule_metric() -> None:
    for metric in (*METRICS, "score.groundedness", "score.a.b"):
        check_llm_metric(metric)
        assert parse_rule(f"{metric} > 1").metric == metric
    assert score_metric("groundedness") == "score.groundedness"
    assert score_metric("user rating/v2") == "score.user_rating_v2"
    assert score_metric("a..b") == "score.a._.b"


@given(st.text(min_size=1, max_size=80))
def test_any_score_name_becomes_a_metric_a_rule_can_name(name: str) -> None:
    metric = score_metric(name)
    check_llm_metric(metric)
    assert parse_rule(f"{metric} < 0.7 for 2 windows").metric == metric


@pytest.mark.parametrize("metric", ["drift_share", "rows", "accuracy", "latency_p96", "score.", "scores.x",
                                    "quality.errors"])
def test_metrics_an_llm_monitor_never_has_are_refused(metric: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_llm_metric(metric)
    assert err.value.field == "when" and "score.<name>" in err.value.message


def test_prompt_matching() -> None:
    assert prompt_match("support") == (["support", "prompts:/support"], ["prompts:/support/"])
    assert prompt_match("support/3")[0] == ["prompts:/support/3", "support/3", "support@3"]
    assert prompt_match("support@03")[0][0] == "prompts:/support/3"
    assert prompt_match("prompts:/support/3") == prompt_match("support/3")
    for bad in ("", "a b", "support/v3", "support/3/4", "../x", "prompts:/"):
        with pytest.raises(InvalidInput):
            prompt_match(bad)


def test_filter_checks_name_the_field() -> None:
    assert check_filter().model_dump() == {"trace_name": None, "prompt": None, "tags": {}, "feedback": "thumbs"}
    cases = [({"trace_name": ""}, "trace_name"), ({"trace_name": "a\x00b"}, "trace_name"),
             ({"prompt": 3}, "prompt"), ({"tags": "env=prod"}, "tags"), ({"tags": {"": "x"}}, "tags"),
             ({"tags": {"k": float("nan")}}, "tags"), ({"tags": {"k": None}}, "tags"),
             ({"feedback": None}, "feedback")]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as err:
            check_filter(**kwargs)  # type: ignore[arg-type]
        assert err.value.field == field, kwargs
