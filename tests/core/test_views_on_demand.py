"""Views imported on their first request (core/views_on_demand.py) behave as the views they stand for:
Django reads `csrf_exempt` before the view runs, so a wrong declaration would refuse an IdP's POST (403)
or drop CSRF protection from a console form."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from core.views_on_demand import view_on_demand


def _patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _on_demand():
    return [(route, view) for route, view in _patterns() if getattr(view, "view_on_demand", None)]


def test_the_sso_and_scim_urls_are_on_demand():
    routes = {route for route, _view in _on_demand()}
    for part in ("oidc/callback", "saml/acs", "scim/v2/Users", "settings/sso/"):
        assert any(part in route for route in routes), (part, sorted(routes))


@pytest.mark.parametrize(("route", "view"), _on_demand(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_on_demand_view_is_csrf_exempt_exactly_when_the_real_view_is(route, view):
    module, _, name = view.view_on_demand.partition(":")
    real = getattr(__import__(module, fromlist=[name]), name)
    real = real.as_view() if isinstance(real, type) else real
    assert view.csrf_exempt == getattr(real, "csrf_exempt", False), route


def test_an_on_demand_view_answers_as_the_view_would(rf):
    view = view_on_demand("django.views.defaults:page_not_found")
    assert view.csrf_exempt is False
    response = view(rf.get("/nowhere"), exception=Exception("gone"))
    assert response.status_code == 404
