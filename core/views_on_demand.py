"""A URL's view imported when it is first called, not when the URLconf loads.

For views whose modules pull in large libraries few requests need (SSO: mozilla-django-oidc with
requests, PyJWT and cryptography; SCIM: pydantic and scim2-models): every process that loads the
URLconf (the desktop's always-on app among them) would carry them otherwise. Django reads a view's
`csrf_exempt` before calling it, so that one attribute is declared here and checked against the real
view by tests/core/test_views_on_demand.py."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from django.http import HttpRequest, HttpResponse


def view_on_demand(target: str, *, csrf_exempt: bool = False) -> Callable[..., HttpResponse]:
    """`target` is "module:name", a view function or a class-based view (its `as_view()`)."""
    module_name, _, name = target.partition(":")
    loaded: list[Callable[..., HttpResponse]] = []

    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not loaded:
            found = getattr(import_module(module_name), name)
            loaded.append(found.as_view() if isinstance(found, type) else found)
        return loaded[0](request, *args, **kwargs)

    view.csrf_exempt = csrf_exempt  # type: ignore[attr-defined]
    view.view_on_demand = target  # type: ignore[attr-defined]
    view.__name__ = name
    view.__qualname__ = name
    view.__module__ = module_name
    return view
