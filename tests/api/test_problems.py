"""Every error of /api/ is an RFC 9457 problem (application/problem+json) — also the ones Django answers
itself (no route, unknown host, a crash) — with a code the errors page documents."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.test import Client

from api.problems import PROBLEM_CODES
from tests.conftest import ApiClient

REPO = Path(__file__).resolve().parent.parent.parent
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _real_limits_and_own_counters(settings):
    settings.TESSERA_RATE_LIMIT_SCALE = 1000
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"]
    assert body["request_id"] == response["Request-Id"] and body["request_id"].startswith("req_")
    assert body["type"] == body["doc_url"] and body["doc_url"].endswith(f"/api/v1/docs/errors/#{code}")
    assert code in PROBLEM_CODES
    return body


def test_no_route_is_a_404_problem_not_a_page(api):
    client = api()
    for path in ("/api/v1/nothing-here", "/api/v1/collections/", "/api/v2/collections", "/api/"):
        assert_problem(client.get(path), 404, "not_found")
    assert_problem(client.get("/api/v1/collections/customers/records/not%20an%20id"), 404, "not_found")


def test_a_method_the_endpoint_lacks_is_a_405_problem_with_allow(api):
    response = api().put("/api/v1/collections", {})
    assert_problem(response, 405, "method_not_allowed")
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "HEAD", "OPTIONS"}


def test_a_django_view_refusing_a_method_is_a_405_problem_too(anon_client):
    response = anon_client.put("/api/v1/docs/errors/")
    assert_problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"


def test_malformed_and_oversized_bodies(api, settings):
    client = api()
    body = assert_problem(
        client.post("/api/v1/collections", "{not json", content_type="application/json"), 400, "invalid_json"
    )
    assert "JSON" in body["detail"]
    assert_problem(client.post("/api/v1/collections", '{"name": "\\ud800"}'), 400, "invalid_json")
    assert_problem(
        client.post("/api/v1/collections", "name=x", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert_problem(client.post("/api/v1/collections", {"name": "x" * 200, "slug": "x"}), 413, "payload_too_large")
    assert_problem(
        client.post("/api/v1/collections", {"name": "x" * 200, "slug": "x"}, headers={"Idempotency-Key": "k1"}),
        413,
        "payload_too_large",
    )


def test_only_json_is_served(api):
    assert_problem(api().get("/api/v1/collections", headers={"Accept": "text/html"}), 406, "not_acceptable")


@pytest.mark.urls("tests.partners.api_views")
def test_a_crash_is_a_500_problem(api, tenant):
    client = ApiClient(tenant, api().raw_key, raise_request_exception=False)
    body = assert_problem(client.get("/api/test/crash"), 500, "server_error")
    assert "boom" not in body["detail"]  # no internals


@pytest.mark.saas_only
def test_the_public_site_and_unknown_hosts_have_no_api(tenant):
    from django.conf import settings

    for host in (settings.TESSERA_BASE_DOMAIN, f"nobody.{settings.TESSERA_BASE_DOMAIN}"):
        response = Client(HTTP_HOST=host).get("/api/v1/collections")
        assert_problem(response, 404, "not_found")


def test_the_errors_page_documents_every_code(anon_client):
    page = anon_client.get("/api/v1/docs/errors/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    for code in PROBLEM_CODES:
        assert f'id="{code}"' in html, code


def _raised_codes() -> set[str]:
    """Problem codes the code base can raise: error classes' codes and `code=` at raise sites."""
    from core import errors as core_errors
    from records import errors

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.RecordError)}
    codes |= {cls.code for cls in vars(core_errors).values() if isinstance(cls, type) and issubclass(cls, Exception)}
    # What the API calls: the write spine, the selectors, the API packages, auth and rate limits (the
    # console's own modules — forms, tables, key management — answer with form errors instead).
    sources = [
        REPO / "records" / "services.py",
        REPO / "records" / "selectors.py",
        REPO / "partners" / "auth.py",
        REPO / "partners" / "ratelimit.py",
        *REPO.joinpath("records", "api").rglob("*.py"),
        *REPO.joinpath("api").rglob("*.py"),
    ]
    for path in sources:
        text = path.read_text()
        codes |= set(re.findall(r'raise \w+\([^)]*?code="([a-z_]+)"', text, flags=re.S))
        codes |= set(re.findall(r'ApiProblem\(\s*\d{3},\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'problem_(?:http_)?response\(\s*\w+,\s*\d{3},\s*"([a-z_]+)"', text))
    from api.middleware import CODES
    from api.problems import DRF_CODES

    return codes | set(CODES.values()) | set(DRF_CODES.values())


def test_every_code_the_api_raises_is_documented():
    raised = _raised_codes()
    assert {"merge_conflict", "version_mismatch", "idempotency_key_reused", "duplicate_slug"} <= raised
    undocumented = raised - set(PROBLEM_CODES)
    assert not undocumented, f"add these to api.problems.PROBLEM_CODES: {sorted(undocumented)}"
