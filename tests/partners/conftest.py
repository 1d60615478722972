import uuid

import pytest

from tests.conftest import TenantClient

PING = "/api/test/ping"


@pytest.fixture
def real_limits(settings):
    """Rate limits at their real size, and buckets and counters no other test shares (the limits and
    usage tests use it: `pytestmark = pytest.mark.usefixtures("real_limits")`)."""
    settings.TESSERA_RATE_LIMIT_SCALE = 1
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture
def frozen_clock(monkeypatch):
    """The rate limiter's clock, moved only by the test: `frozen_clock.advance(seconds)`."""
    import core.token_buckets

    class Clock:
        now = 1_900_000_000.0

        def __call__(self) -> float:
            return self.now

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(core.token_buckets, "clock", clock)
    return clock


@pytest.fixture
def make_key(admin_user):
    from partners.services import api_key_create

    def make(name: str = "ERP sync", mode: str = "test", scopes=("records:read",), **kw):
        return api_key_create(actor=admin_user, name=name, mode=mode, scopes=list(scopes), **kw)

    return make


@pytest.fixture
def api_for():
    """A client for `tenant`'s host that sends `raw` as its bearer key."""

    def make(tenant, raw: str | None = None) -> TenantClient:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}
        return TenantClient(tenant, **headers)

    return make
