"""Console screens for single sign-on: the workspace's identity provider ("Test connection" included),
groups → roles, SSO-only mode, and the SCIM tokens its IdP provisions with."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import SSOConfigForm
from accounts.models import SCIMToken, SSOGroupRole, User
from accounts.oidc import DiscoveryError, oidc_discover, redirect_uri
from accounts.services import AccountError
from accounts.sso import scim_token_create, scim_token_revoke, sso_config_get, sso_config_save, sso_group_roles_set
from core.forms import form_error_add
from rbac.permissions import permission_required
from rbac.roles import Role

CONFIG_FIELDS = (
    "enabled",
    "protocol",
    "display_name",
    "issuer",
    "client_id",
    "scopes",
    "claim_email",
    "claim_name",
    "claim_groups",
    "saml_metadata_url",
    "saml_metadata_xml",
    "default_role",
    "sso_only",
)


def _initial(config) -> dict:
    initial = {name: getattr(config, name) for name in CONFIG_FIELDS}
    initial["domains"] = "\n".join(config.domains or [])
    initial["group_roles"] = "\n".join(f"{g} = {r}" for g, r in SSOGroupRole.objects.values_list("group", "role"))
    initial["break_glass_admins"] = (
        [str(pk) for pk in config.break_glass_admins.values_list("pk", flat=True)] if config.pk else []
    )
    return initial


def _saml_sp(request: HttpRequest, config) -> object | None:
    """What to register at a SAML IdP (entity ID, ACS, SP metadata URL), on a SAML workspace's page."""
    if config.protocol != "saml" and request.POST.get("protocol") != "saml":
        return None
    from accounts import saml  # pysaml2 loads with the first SAML request

    return saml.sp_endpoints(request)


def _saml_metadata(request: HttpRequest, form) -> tuple[dict, object] | None:
    """The IdP metadata the Admin gave (URL, file or pasted XML), read and checked; None with a form
    error when it cannot be used."""
    from accounts import saml  # pysaml2 loads with the first SAML request

    data = form.cleaned_data
    field = "saml_metadata_url" if data["saml_metadata_url"] else "saml_metadata_xml"
    try:
        if data["saml_metadata_url"]:
            xml = saml.saml_metadata_fetch(data["saml_metadata_url"])
        else:
            xml = data.get("saml_metadata_file") or data["saml_metadata_xml"]
        idp = saml.saml_metadata_read(xml)
    except saml.SAMLConfigError as exc:
        form.add_error(field, exc.reason)
        return None
    values = {"saml_metadata_xml": xml, "saml_idp_entity_id": idp.entity_id, "saml_sso_url": idp.sso_url}
    return values, idp


def _context(request: HttpRequest, form, config, **extra) -> dict:
    return {
        "form": form,
        "config": config,
        "saml_sp": _saml_sp(request, config),
        "redirect_uri": redirect_uri(request),
        "scim_base_url": request.build_absolute_uri("/scim/v2/"),
        "scim_tokens": SCIMToken.objects.filter(revoked_at=None),
        **extra,
    }


@permission_required("sso.manage")
def sso_settings(request: HttpRequest) -> HttpResponse:
    config = sso_config_get()
    admins = User.objects.filter(role=Role.ADMIN, is_active=True)
    posted = request.method == "POST"
    form = SSOConfigForm(
        request.POST if posted else None, request.FILES if posted else None, initial=_initial(config), admins=admins
    )
    test = saml_test = None
    if posted and form.is_valid():
        data = form.cleaned_data
        discovery = None
        saml_values: dict = {}
        saml_given = data["saml_metadata_url"] or data["saml_metadata_xml"] or data.get("saml_metadata_file")
        if data["protocol"] == "oidc" and data["issuer"]:
            try:
                test = oidc_discover(data["issuer"])
                discovery = test.document
            except DiscoveryError as exc:
                form.add_error("issuer", str(exc))
        elif data["protocol"] == "saml" and saml_given:
            read = _saml_metadata(request, form)
            if read is not None:
                saml_values, saml_test = read
        elif request.POST.get("action") == "test":
            field = "saml_metadata_url" if data["protocol"] == "saml" else "issuer"
            form.add_error(
                field, "Enter the IdP's metadata to test." if field != "issuer" else "Enter the issuer URL to test."
            )
        if request.POST.get("action") == "test" or form.errors:
            status = 400 if form.errors else 200
            context = _context(request, form, config, test=test, saml_test=saml_test)
            return render(request, "accounts/sso_settings.html", context, status=status)
        values = {name: data[name] for name in CONFIG_FIELDS if name in data}
        values["issuer"] = (data["issuer"] or "").rstrip("/")
        values["domains"] = data["domains"]
        values.update(saml_values)
        try:
            sso_config_save(
                actor=request.user,
                values=values,
                client_secret=data["client_secret"] or None,
                discovery=discovery,
                break_glass=list(admins.filter(pk__in=data["break_glass_admins"] or [])),
            )
            sso_group_roles_set(actor=request.user, mapping=data["group_roles"])
        except AccountError as exc:
            form_error_add(form, exc)
            return render(request, "accounts/sso_settings.html", _context(request, form, config), status=400)
        messages.success(request, "Single sign-on settings saved.")
        return redirect("accounts:sso_settings")
    status = 400 if form.errors else 200
    context = _context(request, form, config, test=test, saml_test=saml_test)
    return render(request, "accounts/sso_settings.html", context, status=status)


@require_POST
@permission_required("sso.manage")
def scim_token_create_view(request: HttpRequest) -> HttpResponse:
    issued = scim_token_create(actor=request.user)
    config = sso_config_get()
    admins = User.objects.filter(role=Role.ADMIN, is_active=True)
    form = SSOConfigForm(initial=_initial(config), admins=admins)
    return render(request, "accounts/sso_settings.html", _context(request, form, config, issued_scim_token=issued.raw))


@require_POST
@permission_required("sso.manage")
def scim_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(SCIMToken, pk=pk)
    scim_token_revoke(actor=request.user, token=token)
    messages.success(request, f"The SCIM token {token.prefix}… was revoked.")
    return redirect("accounts:sso_settings")
