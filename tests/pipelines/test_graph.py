"""Tracing pipeline definitions into DAGs: order, layers, params, and the errors raised before anything runs."""

from __future__ import annotations

import pytest

import arsenale as ars
from arsenale.errors import InvalidInput
from arsenale.pipelines.graph import Graph, Node, NodeRef, ValueRef, build
from arsenale.pipelines.models import StepStatus
from arsenale.platform import Client
from tests.pipelines import example_pipelines as ex


def test_fraud_graph_order_layers_and_edges() -> None:
    g = build(ex.fraud_training, {"raw": ex.raw_frame()})
    assert set(g.nodes) == {"featurize", "train", "summarize", "evaluate"}
    assert g.order.index("featurize") < g.order.index("train") < g.order.index("evaluate")
    assert g.layers() == [["featurize", "summarize"], ["train"], ["evaluate"]]
    assert set(g.edges()) == {("featurize", "train"), ("train", "evaluate"), ("featurize", "evaluate")}
    assert g.outputs == ["evaluate"]
    assert g.downstream("featurize") == {"train", "evaluate"}
    assert g.nodes["train"].args["C"] == ValueRef(1.0, "input:C")
    text = g.ascii()
    assert "layer 1" in text and "[train]  <- features<-featurize" in text


def test_a_step_outside_a_pipeline_is_the_plain_function() -> None:
    assert ex.source(n=3) == [0, 1, 2]
    assert ex.combine(6, 3) == {"total": 6, "max": 3}
    assert isinstance(ex.train, ars.pipelines.Step) and ex.train.retries == 2 and ex.train.timeout == 600


def test_params_set_pipeline_arguments_step_params_and_one_steps_param() -> None:
    g = build(ex.diamond, {"n": 7, "slow_sum.delay": 0.0})
    assert g.nodes["source"].args["n"] == ValueRef(7, "input:n")
    assert g.nodes["slow_sum"].args["delay"] == ValueRef(0.0, "param")
    assert g.nodes["slow_max"].args["delay"] == ValueRef(1.0, "input:delay")
    g = build(ex.scheduled, {"i": 5})  # a param of every step that declares it
    assert [g.nodes[n].args["i"].value for n in ("chunk", "chunk_2")] == [5, 5]


def test_missing_pipeline_input_is_invalid_before_anything_runs(pclient: Client) -> None:
    with pytest.raises(InvalidInput, match="missing its input 'raw'"):
        ars.run_pipeline(ex.fraud_training, client=pclient)
    from arsenale.pipelines.service import PipelineService

    assert PipelineService.from_client(pclient).list_runs() == []
    assert pclient.tracking.get_experiment_by_name("pipelines/fraud_training") is None


def test_missing_step_input_and_unknown_param_are_invalid() -> None:
    @ars.pipeline
    def broken():  # type: ignore[no-untyped-def]
        return ex.train()

    with pytest.raises(InvalidInput, match="wrong arguments|missing"):
        build(broken)
    with pytest.raises(InvalidInput, match="unknown param.*nope"):
        build(ex.diamond, {"nope": 1})


def test_a_cycle_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="cycle through steps a, b"):
        Graph("loop", [Node("a", ex.after_boom, {"x": NodeRef("b")}), Node("b", ex.after_boom, {"x": NodeRef("a")}),
                       Node("c", ex.source, {})])


def test_an_unknown_upstream_step_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="not a step"):
        Graph("g", [Node("a", ex.after_boom, {"x": NodeRef("ghost")})])


def test_branching_on_a_step_output_is_invalid() -> None:
    @ars.pipeline
    def branchy(n: int = 2):  # type: ignore[no-untyped-def]
        values = ex.source(n=n)
        if values:
            return ex.side(values)
        return None

    with pytest.raises(InvalidInput, match="no value while the pipeline is being defined"):
        build(branchy)


def test_steps_defined_in_a_function_are_refused() -> None:
    @ars.step
    def local_step(n: int = 1) -> int:
        return n

    @ars.pipeline
    def p():  # type: ignore[no-untyped-def]
        return local_step()

    with pytest.raises(InvalidInput, match="module level"):
        build(p)


def test_calling_a_pipeline_directly_is_refused() -> None:
    with pytest.raises(InvalidInput, match="run_pipeline"):
        ex.diamond()


def test_step_options_are_validated() -> None:
    with pytest.raises(InvalidInput, match="retries"):
        ars.step(retries=-1)(ex.source.func)
    with pytest.raises(InvalidInput, match="serializer"):
        ars.step(serializer="pickle")(ex.source.func)  # type: ignore[arg-type]
    assert StepStatus("not_run") is StepStatus.NOT_RUN
