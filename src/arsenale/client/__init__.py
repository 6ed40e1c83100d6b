"""The HTTP client: each component's interface, implemented against an `arsenale server`.

    Client("http://host:5000")  →  HttpTransport  ←  TrackingClient, RegistryClient, AuditClient

Same methods, same return types, same exceptions as the embedded services.
"""

from arsenale.client.audit import AuditClient
from arsenale.client.http import HttpTransport
from arsenale.client.registry import RegistryClient
from arsenale.client.tracking import TrackingClient

__all__ = ["AuditClient", "HttpTransport", "RegistryClient", "TrackingClient"]
