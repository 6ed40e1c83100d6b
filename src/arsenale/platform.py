"""`Client`: every component's interface, local or remote, chosen by the URI.

`sqlite:///…` and `postgresql://…` call the services in-process;
`http(s)://…` talks to an `arsenale server` through clients that implement
the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arsenale.audit.delivery import MetricsAPI
from arsenale.audit.service import AuditAPI
from arsenale.config import get_settings
from arsenale.registry.service import RegistryAPI
from arsenale.serving.service import DeploymentAPI
from arsenale.tracking.service import TrackingAPI

if TYPE_CHECKING:  # pandas and pyarrow load only when datasets are used
    from arsenale.data.datasets import DatasetAPI


class Client:
    """Entry point to the platform: `ars.Client()` or `ars.Client("http://host:5000")`."""

    tracking: TrackingAPI
    registry: RegistryAPI
    webhooks: Any  # WebhookService locally, WebhookClient over HTTP: the same methods
    audit: AuditAPI
    deployments: DeploymentAPI
    metrics: MetricsAPI  # delivery metrics from the audit trail

    def __init__(self, uri: str | None = None, *, artifacts: str | None = None, actor: str | None = None,
                 token: str | None = None) -> None:
        """`token` (default `ARSENALE_TOKEN`) authenticates to a server that requires it."""
        settings = get_settings()
        self.uri = uri or settings.resolved_uri()
        actor = actor or settings.resolved_actor()
        if self.uri.startswith(("http://", "https://")):
            from arsenale.client.audit import AuditClient
            from arsenale.client.http import HttpTransport
            from arsenale.client.tracking import TrackingClient

            transport = HttpTransport(self.uri, timeout=settings.http_timeout, actor=actor,
                                      token=token or settings.token)
            from arsenale.client.registry import RegistryClient
            from arsenale.client.webhooks import WebhookClient

            self.tracking = TrackingClient(transport)
            self.registry = RegistryClient(transport)
            self.webhooks = WebhookClient(transport)
            self.audit = AuditClient(transport)
            from arsenale.client.deployments import DeploymentClient

            self.deployments = DeploymentClient(transport)
            from arsenale.client.metrics import MetricsClient

            self.metrics = MetricsClient(transport)
            self._monitors_factory = lambda: _http_monitors(transport)
            self._features_factory: Callable[[], Any] = lambda: _http_features(transport)
            self._gates_factory: Callable[[], Any] = lambda: _http_gates(transport)
            self._tokens_factory: Callable[[], Any] = lambda: _http_tokens(transport)
            self._projects_factory: Callable[[], Any] = lambda: _http_projects(transport)
            self._secrets_factory: Callable[[], Any] = lambda: _http_secrets(transport)
            self._prompts_factory: Callable[[], Any] = lambda: _http_prompts(transport)
            self._traces_factory: Callable[[], Any] = lambda: _http_traces(transport)
            self._indexes_factory: Callable[[], Any] = lambda: _http_indexes(transport, self)
            self._retention_factory: Callable[[], Any] = lambda: _http_retention(transport)
            self._datasets_factory: Callable[[], DatasetAPI] = lambda: _http_datasets(transport)
        else:
            from arsenale.audit.service import AuditService
            from arsenale.store.artifacts import open_artifact_store
            from arsenale.store.db import get_engine
            from arsenale.store.tracking import SqlTrackingStore
            from arsenale.tracking.service import TrackingService

            if "://" not in self.uri:
                self.uri = f"sqlite:///{self.uri}"
            engine = get_engine(self.uri)
            blobs = open_artifact_store(artifacts or settings.resolved_artifacts())
            from arsenale.registry.service import RegistryService
            from arsenale.registry.webhooks import WebhookService
            from arsenale.store.registry import SqlRegistryStore

            tracking = TrackingService(SqlTrackingStore(engine), blobs, actor)
            self.tracking = tracking
            self.webhooks = WebhookService(engine)
            self.registry = RegistryService(SqlRegistryStore(engine), blobs, tracking, actor, self.webhooks)
            self.audit = AuditService(engine, actor)
            from arsenale.serving.service import DeploymentService

            self.deployments = DeploymentService(engine, self.registry, actor)
            from arsenale.audit.delivery import MetricsService

            self.metrics = MetricsService(self.audit, self.registry, self.tracking)
            self._monitors_factory = lambda: _local_monitors(engine, self, actor)
            self._features_factory = lambda: _local_features(engine, actor)
            self._gates_factory = lambda: _local_gates(engine, self, actor)
            self._tokens_factory = lambda: _local_tokens(engine, actor)
            self._projects_factory = lambda: _local_projects(engine)
            self._secrets_factory = lambda: _local_secrets(engine, actor)
            self._prompts_factory = lambda: _local_prompts(engine, actor)
            self._traces_factory = lambda: _local_traces(engine, actor)
            self._indexes_factory = lambda: _local_indexes(self)
            self._retention_factory = lambda: _local_retention(engine, blobs, actor)
            self._datasets_factory = lambda: _local_datasets(engine, blobs, actor)
        self._datasets: DatasetAPI | None = None
        self._monitors: Any = None
        self._features: Any = None
        self._gates: Any = None
        self._tokens: Any = None
        self._secrets: Any = None
        self._prompts: Any = None
        self._traces: Any = None
        self._indexes: Any = None
        self._retention: Any = None

    @property
    def datasets(self) -> DatasetAPI:
        """Versioned datasets; built on first use, so pandas and pyarrow load only when needed."""
        if self._datasets is None:
            self._datasets = self._datasets_factory()
        return self._datasets

    @property
    def monitors(self) -> Any:
        """Monitors (a `MonitorService`, or a `MonitorClient` over HTTP: the same methods); built on first
        use, so pandas and scipy load only when needed."""
        if self._monitors is None:
            self._monitors = self._monitors_factory()
        return self._monitors

    @property
    def features(self) -> Any:
        """Feature definitions and materializations (a `FeatureRegistry`, or a `FeatureRegistryClient` over
        HTTP: the same methods). `ars.FeatureStore` computes features on top of it."""
        if self._features is None:
            self._features = self._features_factory()
        return self._features

    @property
    def gates(self) -> Any:
        """Gate runs: each stored with the model version it judged and audited (a `GateService`, or a
        `GateClient` over HTTP: the same methods). `arsenale.gates.runner` runs the checks themselves."""
        if self._gates is None:
            self._gates = self._gates_factory()
        return self._gates

    @property
    def tokens(self) -> Any:
        """API tokens for a server with auth (a `TokenService` next to the store, or a `TokenClient` over
        HTTP, which needs an admin token: the same methods)."""
        if self._tokens is None:
            self._tokens = self._tokens_factory()
        return self._tokens

    def projects(self) -> list[Any]:
        """Every project in the current scope that holds something, with counts per kind
        (`ProjectSummary`); a token for one project sees its own."""
        return self._projects_factory()  # type: ignore[no-any-return]

    @property
    def secrets(self) -> Any:
        """Named secrets, encrypted at rest (a `SecretService` next to the store, or a `SecretClient` over
        HTTP, which needs an admin token when auth is on): set, list, delete; values are never read back
        over HTTP, only `resolve`d in-process next to the store."""
        if self._secrets is None:
            self._secrets = self._secrets_factory()
        return self._secrets

    @property
    def prompts(self) -> Any:
        """The prompt registry: immutable template versions, labels, diffs (a `PromptService`, or a
        `PromptClient` over HTTP: the same methods)."""
        if self._prompts is None:
            self._prompts = self._prompts_factory()
        return self._prompts

    @property
    def traces(self) -> Any:
        """LLM traces, spans, scores and the price table (a `TraceService`, or a `TraceClient` over HTTP:
        the same methods). `ars.trace` / `ars.span` record into it."""
        if self._traces is None:
            self._traces = self._traces_factory()
        return self._traces

    @property
    def indexes(self) -> Any:
        """Vector indexes by name: list, versions, search, add, delete (a `LocalIndexes`, or an `IndexClient`
        over HTTP: the same methods); `.open(name)` gives the index itself."""
        if self._indexes is None:
            self._indexes = self._indexes_factory()
        return self._indexes

    @property
    def retention(self) -> Any:
        """Retention policies and their application (a `RetentionService` next to the store, or a
        `RetentionClient` over HTTP, which needs an admin token: the same methods)."""
        if self._retention is None:
            self._retention = self._retention_factory()
        return self._retention

    def __repr__(self) -> str:
        return f"Client({self.uri!r})"


def _local_datasets(engine: Any, blobs: Any, actor: str) -> DatasetAPI:
    from arsenale.data.datasets import DatasetService
    from arsenale.store.datasets import SqlDatasetStore

    return DatasetService(SqlDatasetStore(engine), blobs, actor)


def _http_datasets(transport: Any) -> DatasetAPI:
    from arsenale.client.data import DatasetClient

    return DatasetClient(transport)


def _local_monitors(engine: Any, client: Client, actor: str) -> Any:
    from arsenale.monitoring.service import MonitorService

    return MonitorService(engine, client.deployments, client.registry, actor,
                          get_settings().resolved_inference_log())


def _http_monitors(transport: Any) -> Any:
    from arsenale.client.monitoring import MonitorClient

    return MonitorClient(transport)


def _local_features(engine: Any, actor: str) -> Any:
    from arsenale.features.registry import FeatureRegistry

    return FeatureRegistry(engine, actor)


def _http_features(transport: Any) -> Any:
    from arsenale.client.features import FeatureRegistryClient

    return FeatureRegistryClient(transport)


def _local_gates(engine: Any, client: Client, actor: str) -> Any:
    from arsenale.gates.service import GateService

    return GateService(engine, client.registry, client.deployments, actor)


def _local_tokens(engine: Any, actor: str) -> Any:
    from arsenale.security.tokens import TokenService

    return TokenService(engine, actor)


def _http_tokens(transport: Any) -> Any:
    from arsenale.client.tokens import TokenClient

    return TokenClient(transport)


def _local_projects(engine: Any) -> list[Any]:
    from arsenale.security.project_summary import summarize

    return summarize(engine)


def _http_projects(transport: Any) -> list[Any]:
    from arsenale.security.project_summary import ProjectSummary

    return [ProjectSummary(**row) for row in transport.request("GET", "/api/v1/projects").json()]


def _local_secrets(engine: Any, actor: str) -> Any:
    from arsenale.security.secrets import SecretService

    return SecretService(engine, actor)


def _http_secrets(transport: Any) -> Any:
    from arsenale.client.secrets import SecretClient

    return SecretClient(transport)


def _http_gates(transport: Any) -> Any:
    from arsenale.client.gates import GateClient

    return GateClient(transport)


def _local_traces(engine: Any, actor: str) -> Any:
    from arsenale.llm.tracing import TraceService

    return TraceService(engine, actor)


def _http_traces(transport: Any) -> Any:
    from arsenale.client.traces import TraceClient

    return TraceClient(transport)


def _local_prompts(engine: Any, actor: str) -> Any:
    from arsenale.llm.prompts import PromptService

    return PromptService(engine, actor)


def _http_prompts(transport: Any) -> Any:
    from arsenale.client.prompts import PromptClient

    return PromptClient(transport)


def _local_indexes(client: Client) -> Any:
    from arsenale.client.indexes import LocalIndexes

    return LocalIndexes(client)


def _http_indexes(transport: Any, client: Client) -> Any:
    from arsenale.client.indexes import IndexClient

    return IndexClient(transport, client)


def _local_retention(engine: Any, blobs: Any, actor: str) -> Any:
    from arsenale.security.retention import RetentionService

    return RetentionService(engine, blobs, actor, get_settings().resolved_inference_log())


def _http_retention(transport: Any) -> Any:
    from arsenale.client.retention import RetentionClient

    return RetentionClient(transport)
