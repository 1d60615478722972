"""The API's documentation: the OpenAPI 3 schema (every error documented with the problem schema,
examples, the bearer scheme), Swagger UI and Redoc served offline from the workspace itself."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings

PROBLEM = "application/problem+json"
OPERATIONS = {
    "collections_list",
    "collections_create",
    "collections_retrieve",
    "collections_update",
    "collections_delete",
    "records_list",
    "records_create",
    "records_retrieve",
    "records_update",
    "records_replace",
    "records_delete",
    "records_bulk_upsert",
    "events_list",
    "webhook_endpoints_list",
    "webhook_endpoints_create",
    "webhook_endpoints_retrieve",
    "webhook_endpoints_update",
    "webhook_endpoints_delete",
    "webhook_endpoints_rotate_secret",
    "webhook_endpoints_deliveries_list",
    "webhook_endpoints_deliveries_retrieve",
    "subject_requests_list",
    "subject_requests_create",
    "subject_requests_retrieve",
    "subject_requests_extend",
    "subject_requests_erase",
    "subject_requests_package",
    "subject_requests_rectify",
    "subject_requests_restrict",
    "subject_requests_lift_restriction",
    "subject_requests_close",
    "analytics_query",
    "analytics_saved_queries_list",
    "analytics_saved_query_result",
    "analytics_export_start",
    "analytics_export_get",
    "analytics_export_file",
}


@pytest.fixture(autouse=True)
def _real_limits_and_own_counters(settings):
    settings.TESSERA_RATE_LIMIT_SCALE = 1000
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture
def schema(anon_client) -> dict:
    response = anon_client.get("/api/v1/schema")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_schema_is_valid_openapi_3_with_every_operation(schema):
    from drf_spectacular.validation import validate_schema

    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {op["operationId"] for _, _, op in operations(schema)} == OPERATIONS
    assert all(path.startswith("/api/v1/") for path in schema["paths"])


def test_every_operation_documents_its_errors_as_problems(schema):
    for path, method, op in operations(schema):
        responses = op["responses"]
        statuses = {int(s) for s in responses}
        assert {401, 403, 429} <= statuses, (method, path)
        if method in ("post", "put", "patch"):
            assert {400, 413, 415, 422} <= statuses, (method, path)
        if "{" in path or method != "get":
            assert 404 in statuses or path in (
                "/api/v1/collections",
                "/api/v1/webhook_endpoints",
                "/api/v1/subject_requests",
            ), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (method, path, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
                assert response["description"]
    by_id = {op["operationId"]: op for _, _, op in operations(schema)}
    assert {"409", "412"} <= set(by_id["records_update"]["responses"])
    assert {"409", "412"} <= set(by_id["records_replace"]["responses"])
    assert "304" in by_id["records_retrieve"]["responses"]
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "param", "request_id", "doc_url"} <= set(problem["required"])


def test_headers_security_and_examples_are_documented(schema):
    by_id = {op["operationId"]: op for _, _, op in operations(schema)}
    assert schema["components"]["securitySchemes"] == {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tsk_live_… or tsk_test_…",
            "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
        }
    }
    for op in by_id.values():
        assert op["security"] == [{"apiKey": []}]

    def header_names(op):
        return {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}

    for name in ("collections_create", "records_create", "records_bulk_upsert"):
        assert "Idempotency-Key" in header_names(by_id[name])
    assert {"If-Match", "Tessera-Base-Version"} <= header_names(by_id["records_update"])
    assert "If-None-Match" in header_names(by_id["records_retrieve"])
    assert "ETag" in by_id["records_retrieve"]["responses"]["200"]["headers"]
    create = by_id["records_create"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert create["responses"]["201"]["content"]["application/json"]["examples"]
    assert by_id["records_update"]["responses"]["409"]["content"][PROBLEM]["examples"]
    assert set(by_id["records_update"]["requestBody"]["content"]) == {
        "application/merge-patch+json",
        "application/json",
    }
    assert by_id["collections_create"]["requestBody"]["content"]["application/json"]["examples"]
    assert schema["components"]["schemas"]["RecordCreateRequest"]["additionalProperties"] is False


def test_yaml_too(anon_client):
    response = anon_client.get("/api/v1/schema", {"format": "yaml"})
    assert response.status_code == 200 and response.content.startswith(b"openapi: 3.")


def test_swagger_ui_is_offline_and_needs_no_inline_script(anon_client):
    page = anon_client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert page["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY  # the console's own, unrelaxed
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html and "style=" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/") for url in urls), urls  # nothing from another origin
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle" in url for url in urls)
    script_url = next(url for url in urls if "script" in url and "static" not in url)
    script = anon_client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"/api/v1/schema" in script.content
    for url in urls:
        if url.startswith("/static/"):
            assert anon_client.get(url).status_code == 200, url


def test_redoc_is_offline_with_a_policy_of_its_own(anon_client):
    page = anon_client.get("/api/v1/redoc/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "googleapis" not in html and "https://" not in html and "http://" not in html
    policy = page["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self' 'unsafe-inline'" in policy
    bundle = re.search(r'<script src="([^"]+)"', html).group(1)
    assert "redoc.standalone" in bundle and anon_client.get(bundle).status_code == 200
    assert 'spec-url="/api/v1/schema"' in html


def test_docs_need_no_key_but_the_api_does(anon_client):
    assert anon_client.get("/api/v1/schema").status_code == 200
    assert anon_client.get("/api/v1/collections").status_code == 401
