"""A bounded schemathesis run over the API's own OpenAPI schema: generated requests, valid and
invalid, never get a 5xx, and the responses conform to the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from shoplens.service.app import create_app
from shoplens.service.settings import ServiceSettings

EXAMPLES = 12  # per operation: bounded, so the run takes tens of seconds


def operation_labels() -> list[str]:
    schema = schemathesis.openapi.from_dict(create_app(ServiceSettings(index=Path("unused"))).openapi())
    return sorted(result.ok().label for result in schema.get_all_operations())


@pytest.mark.parametrize("label", operation_labels())
def test_no_server_errors(client, label):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    check()
