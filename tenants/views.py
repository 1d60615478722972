"""The public site's sign-up, and the workspace settings page."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from rbac.permissions import permission_required
from tenants.forms import SignupForm, WorkspaceSettingsForm
from tenants.runtime import tenant_context, tenant_current
from tenants.services import ProvisioningError, tenant_provision, tenant_settings_update


def _port(request: HttpRequest) -> str:
    host = request.get_host()
    return ":" + host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    from accounts.services import AccountError, login_handoff_create

    form = SignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = tenant_provision(
                name=data["name"],
                slug=data["slug"],
                admin_email=data["email"],
                admin_password=data["password"],
                admin_name=data["full_name"],
            )
        except ProvisioningError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except AccountError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            with tenant_context(result.tenant):
                token = login_handoff_create(user=result.admin)
            scheme = "https" if request.is_secure() else "http"
            url = f"{scheme}://{result.tenant.slug}.{settings.TESSERA_BASE_DOMAIN}{_port(request)}/accounts/handoff/{token}/"
            return HttpResponseRedirect(url)
    return render(
        request,
        "tenants/signup.html",
        {"form": form, "base_domain": settings.TESSERA_BASE_DOMAIN},
        status=400 if form.errors else 200,
    )


@permission_required("settings.manage")
def workspace_settings(request: HttpRequest) -> HttpResponse:
    tenant = tenant_current()
    form = WorkspaceSettingsForm(
        request.POST if request.method == "POST" else None, initial={"name": tenant.name, "timezone": tenant.timezone}
    )
    if request.method == "POST" and form.is_valid():
        tenant_settings_update(
            actor=request.user, tenant=tenant, name=form.cleaned_data["name"], timezone=form.cleaned_data["timezone"]
        )
        messages.success(request, "Settings saved.")
        return redirect("tenants:settings")
    return render(
        request, "tenants/settings.html", {"form": form, "tenant": tenant}, status=400 if form.errors else 200
    )
