"""Fuzzing the REST API from its OpenAPI schema: every route, authenticated as an admin, on SQLite and
PostgreSQL. No generated request may get a 5xx, and every answer must match the schema the route declares.
Examples per route are few so that the suite stays fast; run with `ARSENALE_FUZZ_EXAMPLES=200` for a
deeper pass."""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from arsenale.platform import Client
from arsenale.server.app import create_app

EXAMPLES = int(os.environ.get("ARSENALE_FUZZ_EXAMPLES", "4"))


def test_no_server_errors_and_answers_match_the_schema(store_uri: str, tmp_path: Path) -> None:
    client = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    app = create_app(client, auth=True, rate_limit_per_minute=10**9)
    _, admin = client.tokens.create("fuzz", role="admin")
    headers = {"Authorization": f"Bearer {admin}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers,
                                   checks=[checks.not_a_server_error, checks.response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - every route's failure is collected, then reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert operations > 100
    assert not failures, "\n\n".join(failures)
