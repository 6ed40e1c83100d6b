"""The DAG of a pipeline, found by tracing its definition with handles instead of data.

    graph = build(fraud_training, params={"C": 0.5})
    graph.order        # node names, each after everything it reads
    graph.layers()     # [[featurize], [train]]: nodes whose longest path from a source has that length
    print(graph.ascii())

`build` calls the pipeline function once with an `InputHandle` per argument; each step call records a node
and returns a `NodeHandle`. Every argument of a node is one of: the output of another node (`NodeRef`), a
pipeline argument's value (`ValueRef`), or a constant written in the definition (also a `ValueRef`). Run-time
`params` set pipeline arguments (`raw=`), a param of every step that declares it (`C=`), or one step's param
(`train.C=`). A missing input, an unknown param or a cycle is an `InvalidInput` before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from arsenale.errors import InvalidInput
from arsenale.pipelines.steps import TRACER, InputHandle, NodeHandle, Pipeline, Step

__all__ = ["Graph", "Node", "NodeRef", "ValueRef", "build"]


@dataclass(frozen=True)
class NodeRef:
    """An argument read from another node's output."""

    node: str


@dataclass(frozen=True)
class ValueRef:
    """An argument with a value known before the run: a pipeline argument, a constant or a param."""

    value: Any
    source: str  # "input:<name>", "const", "param" or "default"


@dataclass
class Node:
    name: str
    step: Step
    args: dict[str, NodeRef | ValueRef] = field(default_factory=dict)

    @property
    def upstream(self) -> list[str]:
        return list(dict.fromkeys(a.node for a in self.args.values() if isinstance(a, NodeRef)))


class Graph:
    """Nodes keyed by name; validated on construction (known upstream nodes, no cycles)."""

    def __init__(self, name: str, nodes: Iterable[Node], outputs: Iterable[str] = (),
                 inputs: Mapping[str, Any] | None = None, ref: str = "") -> None:
        self.name = name
        self.ref = ref
        self.nodes: dict[str, Node] = {}
        for n in nodes:
            if n.name in self.nodes:
                raise InvalidInput(f"pipeline {name!r} has two steps named {n.name!r}", field="pipeline")
            self.nodes[n.name] = n
        self.inputs = dict(inputs or {})
        self.outputs = list(outputs)
        for n in self.nodes.values():
            for arg, src in n.args.items():
                if isinstance(src, NodeRef) and src.node not in self.nodes:
                    raise InvalidInput(f"step {n.name!r} reads {arg!r} from {src.node!r}, which is not a step "
                                       f"of pipeline {name!r}", field="pipeline")
        self.order = self._topological_order()

    def _topological_order(self) -> list[str]:
        """Kahn's algorithm; ties keep definition order so the order is stable run to run."""
        indegree = {n: len(node.upstream) for n, node in self.nodes.items()}
        children: dict[str, list[str]] = {n: [] for n in self.nodes}
        for n, node in self.nodes.items():
            for up in node.upstream:
                children[up].append(n)
        ready = [n for n in self.nodes if indegree[n] == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for c in children[n]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        if len(order) != len(self.nodes):
            stuck = [n for n in self.nodes if n not in order]
            raise InvalidInput(f"pipeline {self.name!r} has a cycle through steps {', '.join(stuck)}",
                               field="pipeline")
        return order

    def downstream(self, name: str) -> set[str]:
        """Every node that reads `name`'s output, directly or not."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            cur = frontier.pop()
            for n, node in self.nodes.items():
                if cur in node.upstream and n not in out:
                    out.add(n)
                    frontier.append(n)
        return out

    def layer_of(self) -> dict[str, int]:
        depth: dict[str, int] = {}
        for n in self.order:
            ups = self.nodes[n].upstream
            depth[n] = 1 + max((depth[u] for u in ups), default=-1)
        return depth

    def layers(self) -> list[list[str]]:
        depth = self.layer_of()
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for n in self.order:
            out[depth[n]].append(n)
        return out

    def edges(self) -> list[tuple[str, str]]:
        return [(u, n) for n in self.order for u in self.nodes[n].upstream]

    def ascii(self) -> str:
        """The DAG as text: one block per layer, each step with the steps it reads from."""
        lines = [f"pipeline {self.name}" + (f"  ({self.ref})" if self.ref else "")]
        if self.inputs:
            lines.append("inputs: " + ", ".join(self.inputs))
        for i, layer in enumerate(self.layers()):
            lines.append(f"layer {i}")
            for n in layer:
                node = self.nodes[n]
                reads = [f"{a}<-{s.node}" if isinstance(s, NodeRef) else f"{a}<-{s.source}"
                         for a, s in node.args.items() if isinstance(s, NodeRef) or s.source.startswith("input:")]
                arrow = "  <- " + ", ".join(reads) if reads else ""
                lines.append(f"  [{n}]{arrow}")
        return "\n".join(lines)


class _Tracer:
    def __init__(self, params: Mapping[str, Any], pipeline_args: Mapping[str, Any]) -> None:
        self.nodes: list[Node] = []
        self.names: dict[str, int] = {}
        self.params = params
        self.pipeline_args = pipeline_args
        self.used_params: set[str] = set()

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> NodeHandle:
        if "<locals>" in step.qualname:
            raise InvalidInput(f"step {step.name!r} is defined inside a function ({step.qualname}); define steps "
                               "at module level so worker processes can import them", field="pipeline")
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"step {step.name!r} is called with the wrong arguments in the pipeline: {exc}",
                               field="pipeline") from None
        count = self.names.get(step.name, 0) + 1
        self.names[step.name] = count
        name = step.name if count == 1 else f"{step.name}_{count}"
        node = Node(name, step)
        for pname, p in step.signature.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InvalidInput(f"step {step.name!r} takes *args or **kwargs; pipeline steps need named "
                                   "arguments", field="pipeline")
            override = self._param_for(name, step, pname)
            if override is not None:
                node.args[pname] = override
                continue
            if pname in bound.arguments:
                node.args[pname] = self._ref(bound.arguments[pname], name, pname)
            elif p.default is not inspect.Parameter.empty:
                node.args[pname] = ValueRef(p.default, "default")
            else:
                raise InvalidInput(f"step {name!r} is missing its input {pname!r}: pass it in the pipeline "
                                   "definition", field="pipeline")
        self.nodes.append(node)
        return NodeHandle(name, id(self))

    def _param_for(self, node: str, step: Step, pname: str) -> ValueRef | None:
        if pname not in step.params:
            return None
        for key in (f"{node}.{pname}", f"{step.name}.{pname}"):
            if key in self.params:
                self.used_params.add(key)
                return ValueRef(self.params[key], "param")
        if pname in self.params and pname not in self.pipeline_args:
            self.used_params.add(pname)
            return ValueRef(self.params[pname], "param")
        return None

    def _ref(self, value: Any, node: str, arg: str) -> NodeRef | ValueRef:
        if isinstance(value, NodeHandle):
            if value.tracer_id != id(self):
                raise InvalidInput(f"step {node!r} reads {arg!r} from another pipeline's step", field="pipeline")
            return NodeRef(value.node)
        if isinstance(value, InputHandle):
            return ValueRef(self.pipeline_args[value.name], f"input:{value.name}")
        if isinstance(value, (list, tuple, dict)) and _contains_handle(value):
            raise InvalidInput(f"step {node!r} gets {arg!r} as a container of step outputs; pass each output "
                               "as its own argument", field="pipeline")
        return ValueRef(value, "const")


def _contains_handle(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(v, (NodeHandle, InputHandle)) or (isinstance(v, (list, tuple, dict))
                                                           and _contains_handle(v)) for v in items)


def build(pipeline: Pipeline, params: Mapping[str, Any] | None = None) -> Graph:
    """Trace `pipeline` into a validated `Graph`, with `params` applied."""
    if not isinstance(pipeline, Pipeline):
        raise InvalidInput(f"{pipeline!r} is not a pipeline: decorate its function with @ars.pipeline",
                           field="pipeline")
    params = dict(params or {})
    for key in params:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"param names are strings, got {key!r}", field="params")
    args: dict[str, Any] = {}
    for pname, p in pipeline.signature.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidInput(f"pipeline {pipeline.name!r} takes *args or **kwargs; name its inputs",
                               field="pipeline")
        if pname in params:
            args[pname] = params[pname]
        elif p.default is inspect.Parameter.empty or p.default is Ellipsis:
            raise InvalidInput(f"pipeline {pipeline.name!r} is missing its input {pname!r}: pass "
                               f"params={{{pname!r}: ...}}", field="params")
        else:
            args[pname] = p.default
    tracer = _Tracer(params, args)
    token = TRACER.set(tracer)
    try:
        result = pipeline.func(**{n: InputHandle(n, id(tracer)) for n in args})
    finally:
        TRACER.reset(token)
    unknown = [k for k in params if k not in args and k not in tracer.used_params]
    if unknown:
        raise InvalidInput(f"unknown param(s) {', '.join(sorted(unknown))} for pipeline {pipeline.name!r}: "
                           "use a pipeline argument, a step param name, or STEP.PARAM", field="params")
    if not tracer.nodes:
        raise InvalidInput(f"pipeline {pipeline.name!r} calls no steps", field="pipeline")
    outputs = _outputs(result)
    return Graph(pipeline.name, tracer.nodes, outputs=outputs, inputs=args, ref=pipeline.ref)


def _outputs(result: Any) -> list[str]:
    if isinstance(result, NodeHandle):
        return [result.node]
    if isinstance(result, (list, tuple)):
        return [r.node for r in result if isinstance(r, NodeHandle)]
    if isinstance(result, dict):
        return [r.node for r in result.values() if isinstance(r, NodeHandle)]
    return []
