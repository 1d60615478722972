"""SAML 2.0 log-in for the workspace's IdP: the SP metadata, the start (an AuthnRequest by redirect),
and the assertion consumer service (ACS) the IdP posts its answer to. Refusals are a page that says
why (and an audit event), never a 500.

accounts.saml (pysaml2 with xmlschema, ~26 MB resident) is imported inside these views: it loads with
the first SAML request, not with every process — the same rule as the XLSX and PDF libraries.
"""

from __future__ import annotations

from django.contrib import auth
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.identity import SSOLoginRefused, sso_login_resolve
from accounts.models import SSOConfig
from accounts.oidc import sso_failure_page

SAML_BACKEND = "accounts.backends.SAMLSessionBackend"


def _active() -> SSOConfig | None:
    config = SSOConfig.objects.filter(enabled=True, protocol=SSOConfig.Protocol.SAML).first()
    return config if config is not None and config.saml_metadata_xml else None


def _not_set_up(request: HttpRequest) -> HttpResponse:
    return sso_failure_page(
        request,
        "SAML single sign-on is not set up for this workspace.",
        code="not_configured",
        status=404,
        protocol="saml",
    )


@require_GET
def saml_metadata(request: HttpRequest) -> HttpResponse:
    """This workspace's SP metadata, for the IdP's Admin (served whether or not SAML is switched on,
    so the IdP side can be set up first)."""
    from accounts import saml  # pysaml2 loads with the first SAML request

    config = SSOConfig.objects.first() or SSOConfig()
    try:
        xml = saml.sp_metadata_xml(request, config)
    except saml.SAMLConfigError as exc:
        return sso_failure_page(request, exc.reason, code="saml_config", status=503, protocol="saml")
    return HttpResponse(xml, content_type="application/samlmetadata+xml")


@require_GET
def saml_login(request: HttpRequest) -> HttpResponse:
    from accounts import saml

    config = _active()
    if config is None:
        return _not_set_up(request)
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=False):
        next_url = ""
    try:
        location = saml.saml_login_start(request, config, next_url=next_url)
    except SSOLoginRefused as exc:
        return sso_failure_page(request, exc.message, code=exc.code, status=503, protocol="saml")
    return HttpResponseRedirect(location)


@csrf_exempt  # the IdP's page posts here (HTTP-POST binding); the signed assertion and InResponseTo stand in
@require_POST
def saml_acs(request: HttpRequest) -> HttpResponse:
    from accounts import saml

    config = _active()
    if config is None:
        return _not_set_up(request)
    if "saml_requests" not in request.session and not request.POST.get("tessera_same_site"):
        # Posted from the IdP's site: a SameSite=Lax session cookie was not sent. Post once more from here.
        saml_response = request.POST.get("SAMLResponse", "")[: saml.RESPONSE_MAX_BYTES]
        return render(request, "accounts/saml_continue.html", {"saml_response": saml_response})
    try:
        answer = saml.saml_response_check(request, config, request.POST.get("SAMLResponse", ""))
        user = sso_login_resolve(config=config, assertion=answer.assertion)
    except SSOLoginRefused as exc:
        status = 400 if exc.code == "bad_request" else 403
        return sso_failure_page(request, exc.message, code=exc.code, status=status, protocol="saml")
    outstanding = dict(request.session.get("saml_requests") or {})
    outstanding.pop(answer.request_id, None)
    user.backend = SAML_BACKEND  # (as authenticate() would set it: the log-in's audit event names it)
    auth.login(request, user, backend=SAML_BACKEND)
    request.session["saml_requests"] = outstanding
    request.session["sso_logged_in_at"] = timezone.now().isoformat()
    return HttpResponseRedirect(answer.next_url or "/")
