"""Kubernetes manifests: they read back from their YAML unchanged and have the shape Kubernetes expects."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from arsenale.errors import InvalidInput
from arsenale.serving.k8s import render_manifests, to_yaml

LABELS = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}
NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$"}
METADATA = {"type": "object", "required": ["name", "labels"],
            "properties": {"name": NAME, "labels": LABELS}}


def probe(path: str) -> dict[str, Any]:
    return {"type": "object", "required": ["httpGet", "periodSeconds", "failureThreshold"],
            "properties": {"httpGet": {"type": "object", "required": ["path", "port"],
                                       "properties": {"path": {"const": path},
                                                      "port": {"type": ["string", "integer"]}}},
                           "periodSeconds": {"type": "integer", "minimum": 1},
                           "failureThreshold": {"type": "integer", "minimum": 1}}}


CONTAINER = {
    "type": "object",
    "required": ["name", "image", "command", "ports", "env", "resources", "readinessProbe", "livenessProbe"],
    "properties": {
        "name": NAME,
        "image": {"type": "string", "minLength": 1},
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 2,
                    "prefixItems": [{"const": "arsenale"}, {"const": "serve"}]},
        "ports": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "containerPort"],
            "properties": {"name": {"const": "http"},
                           "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535}}}},
        "env": {"type": "array", "contains": {
            "type": "object", "required": ["name", "valueFrom"],
            "properties": {"name": {"const": "ARSENALE_URI"},
                           "valueFrom": {"type": "object", "required": ["secretKeyRef"], "properties": {
                               "secretKeyRef": {"type": "object", "required": ["name", "key"],
                                                "properties": {"name": NAME, "key": {"type": "string"}}}}}}}},
        "resources": {"type": "object", "required": ["requests", "limits"], "properties": {
            "requests": {"type": "object", "required": ["cpu", "memory"],
                         "properties": {"cpu": QUANTITY, "memory": QUANTITY}},
            "limits": {"type": "object", "required": ["cpu", "memory"],
                       "properties": {"cpu": QUANTITY, "memory": QUANTITY}}}},
        "readinessProbe": probe("/v2/health/ready"),
        "livenessProbe": probe("/v2/health/live"),
    },
}

SCALE_TARGET = {"type": "object", "required": ["apiVersion", "kind", "name"],
                "properties": {"apiVersion": {"const": "apps/v1"}, "kind": {"const": "Deployment"},
                               "name": NAME}}
CPU_TARGET = {"type": "object", "required": ["type", "averageUtilization"],
              "properties": {"type": {"const": "Utilization"},
                             "averageUtilization": {"type": "integer", "minimum": 1, "maximum": 100}}}
CPU_METRIC = {"type": "object", "required": ["type", "resource"],
              "properties": {"type": {"const": "Resource"},
                             "resource": {"type": "object", "required": ["name", "target"],
                                          "properties": {"name": {"const": "cpu"}, "target": CPU_TARGET}}}}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "apps/v1"},
            "kind": {"const": "Deployment"},
            "metadata": METADATA,
            "spec": {"type": "object", "required": ["replicas", "selector", "template"], "properties": {
                "replicas": {"type": "integer", "minimum": 1},
                "selector": {"type": "object", "required": ["matchLabels"],
                             "properties": {"matchLabels": LABELS}},
                "template": {"type": "object", "required": ["metadata", "spec"], "properties": {
                    "metadata": {"type": "object", "required": ["labels", "annotations"], "properties": {
                        "labels": LABELS,
                        "annotations": {"type": "object",
                                        "required": ["prometheus.io/scrape", "prometheus.io/port",
                                                     "prometheus.io/path"],
                                        "properties": {"prometheus.io/scrape": {"const": "true"},
                                                       "prometheus.io/port": {"type": "string",
                                                                              "pattern": "^[0-9]+$"},
                                                       "prometheus.io/path": {"const": "/metrics"}}}}},
                    "spec": {"type": "object", "required": ["containers"], "properties": {
                        "containers": {"type": "array", "minItems": 1, "maxItems": 1, "items": CONTAINER}}},
                }},
            }},
        },
    },
    "Service": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "v1"},
            "kind": {"const": "Service"},
            "metadata": METADATA,
            "spec": {"type": "object", "required": ["selector", "ports"], "properties": {
                "selector": LABELS,
                "ports": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["port", "targetPort"],
                    "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                   "targetPort": {"type": ["string", "integer"]}}}}}},
        },
    },
    "HorizontalPodAutoscaler": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "autoscaling/v2"},
            "kind": {"const": "HorizontalPodAutoscaler"},
            "metadata": METADATA,
            "spec": {"type": "object",
                     "required": ["scaleTargetRef", "minReplicas", "maxReplicas", "metrics"],
                     "properties": {"scaleTargetRef": SCALE_TARGET,
                                    "minReplicas": {"type": "integer", "minimum": 1},
                                    "maxReplicas": {"type": "integer", "minimum": 1},
                                    "metrics": {"type": "array", "minItems": 1, "items": CPU_METRIC}}},
        },
    },
}


def parsed(**kwargs: Any) -> list[dict[str, Any]]:
    manifests = render_manifests("fraud-api", image="registry.local/arsenale:0.1", **kwargs)
    documents = list(yaml.safe_load_all(to_yaml(manifests)))
    assert documents == manifests
    return documents


def test_manifests_read_back_from_yaml_and_match_their_schemas() -> None:
    documents = parsed(replicas=3, min_replicas=2, max_replicas=6, target_cpu=60, workers_per_pod=4,
                       port=9000, uri_secret="fraud-store", cpu="500m", memory="1Gi")
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for document in documents:
        jsonschema.validate(document, SCHEMAS[document["kind"]])
    deployment, service, hpa = documents

    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"] == "arsenale-fraud-api"
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], deployment["spec"]["replicas"]) == (2, 6, 3)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60

    container = pod["spec"]["containers"][0]
    command = container["command"]
    assert command[command.index("--deployment") + 1] == "fraud-api"
    assert command[command.index("--port") + 1] == "9000"
    assert command[command.index("--workers") + 1] == "4"
    assert container["ports"][0]["containerPort"] == 9000 == service["spec"]["ports"][0]["port"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9000"
    uri = next(e for e in container["env"] if e["name"] == "ARSENALE_URI")
    assert uri["valueFrom"]["secretKeyRef"] == {"name": "fraud-store", "key": "uri"}
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_defaults_are_a_valid_highly_available_deployment() -> None:
    deployment, _, hpa = parsed()
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("kwargs", [
    {"deployment": "Fraud_API"}, {"deployment": "fraud-"}, {"deployment": "-fraud"}, {"deployment": ""},
    {"deployment": "a" * 60},  # arsenale-<name> would pass 63 characters
    {"deployment": "fraud.api"}, {"deployment": "fraud-api\n"}, {"uri_secret": "Store"}, {"cpu": "1\n"},
    {"image": ""}, {"image": "img; rm -rf /"},
    {"replicas": 0}, {"replicas": 11}, {"min_replicas": 3, "max_replicas": 2}, {"target_cpu": 0},
    {"workers_per_pod": 0}, {"port": 70000}, {"port": True}, {"cpu": "one"}, {"memory": "2 GB"},
])
def test_invalid_settings_are_refused_with_the_field(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"deployment": "fraud-api", "image": "arsenale:0.1", **kwargs}
    with pytest.raises(InvalidInput) as caught:
        render_manifests(arguments.pop("deployment"), **arguments)
    expected = next(iter(kwargs))
    assert caught.value.field in {expected, "max_replicas"}


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20)
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=10), trees, max_size=5), max_size=3))
def test_any_tree_of_strings_numbers_and_booleans_reads_back_unchanged(documents: list[Any]) -> None:
    assert list(yaml.safe_load_all(to_yaml(documents))) == documents


@pytest.mark.parametrize("key", ["A\n", "é" * 300, "yes", "1", "- x", "a: b", "#", ""])
def test_awkward_keys_and_values_read_back_unchanged(key: str) -> None:
    documents = [{key: key, "nested": {key: [key, {key: {}}]}}]
    assert list(yaml.safe_load_all(to_yaml(documents))) == documents
