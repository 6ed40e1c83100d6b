"""Kubernetes manifests for one deployment: the same stateless server, N pods behind a Service.

    manifests = render_manifests("fraud-api", image="registry.example/arsenale:0.1", workers_per_pod=2)
    print(to_yaml(manifests))     # kubectl apply -f -

Every pod runs `arsenale serve` for the deployment and reads the same metadata store (the URI comes from a
Secret, never from the manifest), so pods are interchangeable: the Service balances requests over them,
the HorizontalPodAutoscaler adds pods on CPU, and inside each pod the worker pool spreads batches over
its model processes. Readiness waits for the models to load (`/v2/health/ready`), so a new pod gets no
traffic while it is still loading; the rolling update adds a pod before it removes one, so a new image
rolls out without dropping requests.

Why a small YAML emitter of our own: the manifests are dicts, lists, strings, integers and booleans only,
and an emitter that quotes every string that is not plainly a word keeps `arsenale` free of a YAML
dependency and its output stable (tests read it back with a real YAML parser).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from arsenale.errors import InvalidInput

__all__ = ["render_manifests", "to_yaml"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


def _label(value: Any, what: str, field: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise InvalidInput(f"{what} must be a DNS-1123 label (at most 63 lowercase letters, digits and '-', "
                           f"starting and ending with a letter or digit); got {value!r}", field=field)
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer between {low} and {high}; got {value!r}", field=field)
    return value


def _quantity(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise InvalidInput(f"{field} must be a Kubernetes quantity such as 500m, 1, 2Gi; got {value!r}",
                           field=field)
    return value


def render_manifests(deployment: str, *, image: str, replicas: int = 2, min_replicas: int = 2,
                     max_replicas: int = 10, target_cpu: int = 70, workers_per_pod: int = 2, port: int = 8080,
                     uri_secret: str = "arsenale-store", cpu: str = "1",
                     memory: str = "2Gi") -> list[dict[str, Any]]:
    """A Deployment, a Service and a HorizontalPodAutoscaler (in that order) serving `deployment`."""
    _label(deployment, "a deployment served on Kubernetes", "deployment")
    name = _label(f"arsenale-{deployment}", "the resource name arsenale-<deployment>", "deployment")
    if not isinstance(image, str) or not _IMAGE.fullmatch(image):
        raise InvalidInput(f"image must be a container image reference; got {image!r}", field="image")
    min_replicas = _int(min_replicas, "min_replicas", 1, 1000)
    max_replicas = _int(max_replicas, "max_replicas", min_replicas, 1000)
    replicas = _int(replicas, "replicas", min_replicas, max_replicas)
    target_cpu = _int(target_cpu, "target_cpu", 1, 100)
    workers_per_pod = _int(workers_per_pod, "workers_per_pod", 1, 256)
    port = _int(port, "port", 1, 65535)
    _label(uri_secret, "uri_secret (a Secret's name)", "uri_secret")
    resources = {"cpu": _quantity(cpu, "cpu"), "memory": _quantity(memory, "memory")}

    selector = {"app.kubernetes.io/name": "arsenale", "app.kubernetes.io/instance": deployment}
    labels = {**selector, "app.kubernetes.io/component": "model-server"}
    metadata = {"name": name, "labels": labels}

    def secret(key: str, optional: bool) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": uri_secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"secretKeyRef": ref}

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
                "timeoutSeconds": 2, "failureThreshold": failures}

    container = {
        "name": "server",
        "image": image,
        # 0.0.0.0: inside a pod the Service reaches the server on the pod's address, not on loopback.
        "command": ["arsenale", "serve", "--deployment", deployment, "--host", "0.0.0.0", "--port", str(port),
                    "--workers", str(workers_per_pod)],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "ARSENALE_URI", "valueFrom": secret("uri", False)},
                {"name": "ARSENALE_ARTIFACTS", "valueFrom": secret("artifacts", True)}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        # Loading models can take minutes: the startup probe holds liveness back until the server answers.
        "startupProbe": probe("/v2/health/live", 5, 60),
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    deployment_manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {"terminationGracePeriodSeconds": 30, "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"type": "ClusterIP", "selector": dict(selector),
                 "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target_cpu}}}],
        },
    }
    return [deployment_manifest, service, autoscaler]


# ---- YAML ---------------------------------------------------------------------------------------------


def to_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """A multi-document YAML stream (`kubectl apply -f -` reads it), one document per manifest, keys in the
    order Kubernetes documentation writes them."""
    import yaml

    return yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False, explicit_start=True,
                              allow_unicode=False, width=1_000_000)
