"""The HTTP server: the REST API, Prometheus metrics, OpenAPI docs and the dashboard, on FastAPI."""

from arsenale.server.app import create_app, serve

__all__ = ["create_app", "serve"]
