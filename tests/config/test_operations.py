"""Operations: /health, request ids on every response and log line, structured logs, /metrics (SaaS)."""

from __future__ import annotations

import io
import json
import logging
import re
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client, override_settings
from django.utils.module_loading import import_string

from config.logging import RequestContextFilter
from config.settings.base import logging_config
from core.request_context import RequestContext, request_context_reset, request_context_set
from rbac.roles import Role
from tests.conftest import SAAS, host_of

MINTED = re.compile(r"^req_[0-9a-f]{32}$")


@pytest.fixture
def host(tenant):
    return host_of(tenant)


# --- /health ---------------------------------------------------------------------------------------------


def test_health_reports_each_check(anon_client):
    response = anon_client.get("/health")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert isinstance(body["checks"]["database"]["ms"], float | int)
    if SAAS:
        assert body["checks"]["redis"]["ok"] is True
    else:
        assert set(body["checks"]) == {"database", "storage"}, "no Redis on the desktop; its disk and lock instead"
        assert body["checks"]["storage"] == {"ok": True}


def test_health_is_503_when_the_database_fails(anon_client):
    broken = mock.MagicMock()
    broken.cursor.side_effect = OperationalError("connection refused")
    with mock.patch("config.views.connection", broken):
        response = anon_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}


@pytest.mark.saas_only
def test_health_is_503_when_redis_is_down(anon_client, unused_tcp_port):
    from django.conf import settings

    dead = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{unused_tcp_port}/0"}}
    with override_settings(CACHES=dead):
        response = anon_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: nothing listens there


# --- request ids -----------------------------------------------------------------------------------


def test_every_response_carries_a_request_id(tenant, client_for, make_user, anon_client):
    admin = client_for(tenant, make_user(role=Role.ADMIN))
    viewer = client_for(tenant, make_user(role=Role.VIEWER))
    responses = [
        (200, anon_client.get("/health")),
        (200, anon_client.get("/accounts/login/")),
        (302, anon_client.get("/members/")),
        (404, anon_client.get("/no/such/page/")),
        (403, viewer.get("/audit/")),
        (400, admin.get("/audit/", {"date_from": "nope"})),
        (405, admin.put("/members/1/remove/")),
    ]
    for status, response in responses:
        assert response.status_code == status
        assert MINTED.match(response["Request-Id"]), status
    assert len({r["Request-Id"] for _, r in responses}) == len(responses), "a new id per request"


@pytest.mark.saas_only
@pytest.mark.parametrize("host", ["nowhere.tessera.localhost", "tessera.localhost", "evil.example.com"])
def test_request_id_on_responses_outside_any_workspace(tenants_provisioned, db, host):
    for path in ("/", "/health", "/missing"):
        response = Client(HTTP_HOST=host).get(path)
        assert MINTED.match(response["Request-Id"]), (host, path, response.status_code)


@pytest.mark.parametrize("incoming", ["abc-12345678", "trace.id:0042_ABC", "f" * 128])
def test_well_formed_incoming_request_id_is_reused(anon_client, incoming):
    response = anon_client.get("/health", HTTP_X_REQUEST_ID=incoming)
    assert response["Request-Id"] == incoming


@pytest.mark.parametrize(
    "incoming", ["", "short", "has spaces in it", "x" * 129, "<script>alert(1)</script>", "a\u00e9" * 8]
)
def test_malformed_incoming_request_id_is_replaced(anon_client, incoming):
    response = anon_client.get("/health", HTTP_X_REQUEST_ID=incoming)
    assert MINTED.match(response["Request-Id"])


def test_incoming_request_id_reaches_the_audit_event(tenant, admin_user, client_for):
    from audit.models import AuditEvent

    client = client_for(tenant)
    response = client.post(
        "/accounts/login/",
        {"username": admin_user.email, "password": "correct-horse-battery-9"},
        HTTP_X_REQUEST_ID="lb-trace-000123",
    )
    assert response["Request-Id"] == "lb-trace-000123"
    assert AuditEvent.objects.order_by("-seq").first().request_id == "lb-trace-000123"


# --- /metrics -----------------------------------------------------------------------------------------------


METRICS_TOKEN = "scrape-" + "s3cret" * 4


@pytest.mark.saas_only
@pytest.mark.parametrize("host", ["alpha.tessera.localhost", "tessera.localhost", "nowhere.tessera.localhost"])
def test_metrics_expose_prometheus_text_to_the_scraper(tenants_provisioned, db, host, settings):
    settings.TESSERA_METRICS_TOKEN = METRICS_TOKEN
    client = Client(HTTP_HOST=host)
    client.get("/health")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in body
    assert re.search(r'^django_http_requests_total_by_method_total\{method="GET"\} \d', body, flags=re.M)


@pytest.mark.saas_only
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"])
def test_metrics_refuse_anyone_without_the_token(tenants_provisioned, db, settings, authorization):
    settings.TESSERA_METRICS_TOKEN = METRICS_TOKEN
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = Client(HTTP_HOST="alpha.tessera.localhost").get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "django_http_requests" not in response.content.decode()


@pytest.mark.saas_only
def test_metrics_are_off_until_a_token_is_configured(tenants_provisioned, db, settings):
    settings.TESSERA_METRICS_TOKEN = ""
    response = Client(HTTP_HOST="tessera.localhost").get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404


@pytest.mark.desktop_only
def test_no_metrics_on_the_desktop(anon_client):
    assert anon_client.get("/metrics").status_code == 404


# --- structured logs --------------------------------------------------------------------------------------


@pytest.fixture
def json_log():
    """A logger wired like production's console handler: the JSON formatter and the request filter."""
    spec = dict(logging_config("json", "INFO")["formatters"]["json"])
    formatter = import_string(spec.pop("()"))(**spec)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestContextFilter())
    loggers = [logging.getLogger(name) for name in ("tessera.test", "django.request", "tenants.services")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    lines = lambda: [json.loads(line) for line in stream.getvalue().splitlines()]  # noqa: E731
    yield lines
    for lg, (level, propagate) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate


def test_json_log_line_carries_request_id_and_tenant(tenant, json_log):
    token = request_context_set(RequestContext(request_id="req_logtest0001"))
    try:
        logging.getLogger("tessera.test").info("something happened", extra={"records": 3})
    finally:
        request_context_reset(token)
    logging.getLogger("tessera.test").warning("outside a request")

    inside, outside = json_log()
    assert inside["message"] == "something happened"
    assert inside["request_id"] == "req_logtest0001"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "tessera.test"
    assert inside["records"] == 3
    assert re.match(r"^\d{4}-\d\d-\d\d", inside["time"])
    assert inside["tenant"] == (tenant.schema_name if SAAS else "-")
    assert (outside["request_id"], outside["level"]) == ("-", "WARNING")


def test_text_format_carries_the_request_id_too():
    spec = logging_config("text", "INFO")["formatters"]["text"]
    record = logging.LogRecord("tessera.test", logging.INFO, __file__, 1, "hello", None, None)
    token = request_context_set(RequestContext(request_id="req_texttest01"))
    try:
        RequestContextFilter().filter(record)
    finally:
        request_context_reset(token)
    assert "[req_texttest01 " in logging.Formatter(spec["format"]).format(record)


def test_both_runtimes_log_through_the_request_filter():
    for fmt in ("json", "text"):
        config = logging_config(fmt, "INFO")
        assert config["handlers"]["console"]["filters"] == ["request_id"]
        assert config["filters"]["request_id"]["()"] == "config.logging.RequestContextFilter"


def test_log_lines_written_during_a_request_carry_its_id(tenant, client_for, make_user, json_log):
    client = client_for(tenant, make_user(role=Role.ADMIN))
    bad = client.get("/audit/", {"date_from": "nope"})  # a 400, which Django logs as a warning
    denied = client_for(tenant, make_user(role=Role.VIEWER)).get("/audit/")  # a 403

    by_path = {line["message"]: line for line in json_log() if line["logger"] == "django.request"}
    assert by_path["Bad Request: /audit/"]["request_id"] == bad["Request-Id"]
    assert by_path["Forbidden (Permission denied): /audit/"]["request_id"] == denied["Request-Id"]


def test_4xx_log_lines_under_asgi_carry_the_workspace_not_public(tenant):
    """Under ASGI Django logs a 4xx on the event loop's thread, whose database connection never
    entered the workspace (it is per thread): the line must still name the workspace the request was
    for, which the record's request carries."""
    from types import SimpleNamespace

    from tenants.runtime import public_context

    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: /x/", None, None)
    record.request = SimpleNamespace(id="req_asgi0001", tenant=tenant)
    with public_context():  # the loop thread's connection
        RequestContextFilter().filter(record)
    assert record.tenant == tenant.schema_name and record.request_id == "req_asgi0001"


@pytest.mark.saas_only
def test_provisioning_log_line_carries_the_sign_up_request_id(tenants_provisioned, db, json_log):
    response = Client(HTTP_HOST="tessera.localhost").post(
        "/",
        {"name": "Gamma", "slug": "gamma", "email": "g@gamma.test", "password": "correct-horse-battery-9"},
    )
    assert response.status_code == 302
    line = next(line for line in json_log() if line["message"] == "tenant provisioned")
    assert line["request_id"] == response["Request-Id"]
    assert line["tenant"] == "t_gamma"
    assert line["seconds"] > 0
