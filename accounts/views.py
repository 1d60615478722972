"""Pages about people and their workspace: sign-up (public site), log-in, first-run set-up, invitations,
members and roles, and the workspace's settings."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import (
    InviteForm,
    LoginForm,
    PasswordSetForm,
    RoleForm,
    SetupForm,
    SignupForm,
    WorkspaceSettingsForm,
)
from accounts.identity import email_domain
from accounts.models import Invitation, User
from accounts.onboarding import workspace_admin_setup, workspace_settings_update, workspace_signup
from accounts.selectors import invitation_list_pending, member_list, workspace_needs_setup
from accounts.services import (
    AccountError,
    invitation_accept,
    invitation_create,
    invitation_find,
    invitation_revoke,
    login_handoff_create,
    login_handoff_redeem,
    member_remove,
    member_role_change,
)
from accounts.sso import sso_config_active, sso_only_applies, sso_start_url
from accounts.throttles import throttle_check
from audit.services import audit_event_record
from billing.plans import PAID_PLANS, Plan
from core.actors import Actor
from core.errors import ServiceError, Throttled
from core.forms import form_error_add
from core.request_context import client_ip
from rbac.permissions import has_permission, permission_required
from rbac.roles import Role
from tenants.runtime import workspace_base_url, workspace_context, workspace_current
from tenants.topology import cell_for_region

PASSWORD_BACKEND = "accounts.backends.EmailPasswordBackend"


def sso_only_message() -> str:
    config = sso_config_active()
    name = config.label if config else "your identity provider"
    return (
        f"This workspace requires single sign-on: use 'Sign in with {name}'. "
        "Passwords work only for the break-glass Admins the workspace named."
    )


class FormErrorStatusMixin:
    """Django's auth views re-render invalid forms with 200; the console answers bad input with 400."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class LoginView(FormErrorStatusMixin, auth_views.LoginView):
    """Password log-in, and the way to the workspace's identity provider: its button, or an e-mail of a
    domain it vouches for typed without a password. In SSO-only mode a password works only for the
    named break-glass Admins."""

    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after is not None:
            response.status_code, response["Retry-After"] = 429, str(form.retry_after)
        return response

    def post(self, request, *args, **kwargs):
        config = sso_config_active(request)
        email = (request.POST.get("username") or "").strip().lower()
        if config is not None and email and not request.POST.get("password") and email_domain(email) in config.domains:
            return HttpResponseRedirect(sso_start_url(config, email=email, next_url=request.POST.get("next", "")))
        if config is not None and email and sso_only_applies(User.objects.filter(email__iexact=email).first()):
            form = self.get_form()
            form.is_valid()  # (the backend refuses the password too)
            form.errors.clear()
            form.add_error(None, sso_only_message())
            return self.form_invalid(form)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso"] = config = sso_config_active(self.request)
        context["sso_start"] = sso_start_url(config, next_url=self.get_redirect_url()) if config else ""
        return context


class LogoutView(auth_views.LogoutView):
    """Log-out; a person who signed in with the workspace's provider is logged out there too when it
    offers an end_session_endpoint."""

    def post(self, request, *args, **kwargs):
        idp_logout = None
        if request.session.get("oidc_id_token"):  # signed in with the provider
            from accounts.oidc import oidc_logout_url  # mozilla-django-oidc loads with OpenID's use only

            idp_logout = oidc_logout_url(request)
        response = super().post(request, *args, **kwargs)
        return HttpResponseRedirect(idp_logout) if idp_logout else response


class PasswordResetView(FormErrorStatusMixin, auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        # The link's address comes from configuration, not from the Host header (whose port anyone
        # can set): see tenants.runtime.workspace_base_url.
        self.extra_email_context = {"base_url": workspace_base_url(self.request)}
        email = form.cleaned_data["email"]
        try:  # per address and per e-mail, member or not (the answer must not tell which)
            throttle_check(
                scope=f"w{workspace_current().pk}",
                what="reset",
                keys={"ip": client_ip(self.request), "email": email},
                message="Too many password-reset requests.",
            )
        except Throttled as exc:
            form_error_add(form, exc)
            response = self.form_invalid(form)
            response.status_code, response["Retry-After"] = 429, str(exc.retry_after)
            return response
        if sso_only_applies(User.objects.filter(email__iexact=email, is_active=True).first()):
            form.add_error("email", sso_only_message())
            return self.form_invalid(form)
        audit_event_record(
            action="user.password_reset_requested", actor=Actor.anonymous(email), target=("user", "", email)
        )
        return super().form_valid(form)


class PasswordResetConfirmView(FormErrorStatusMixin, auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")
    post_reset_login = False

    def form_valid(self, form):
        response = super().form_valid(form)
        audit_event_record(
            action="user.password_changed",
            actor=form.user,
            target=form.user,
            changes={"method": "reset link"},
        )
        return response


@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """First run: create the workspace's first Admin (only while it has no members)."""
    if not workspace_needs_setup():
        raise Http404("This workspace is already set up.")
    tenant = workspace_current()
    form = SetupForm(request.POST if request.method == "POST" else None, initial={"workspace_name": tenant.name})
    if request.method == "POST" and form.is_valid():
        try:
            user = workspace_admin_setup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
            )
        except AccountError as exc:
            form_error_add(form, exc)
        else:
            workspace_settings_update(
                actor=user, tenant=tenant, name=form.cleaned_data["workspace_name"], timezone=tenant.timezone
            )
            auth_login(request, user, backend=PASSWORD_BACKEND)
            messages.success(request, "Welcome to Tessera. Your workspace is ready.")
            return redirect("console:home")
    return render(request, "accounts/setup.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_find(token)
    if invitation is None or invitation.status != "pending":
        status = invitation.status if invitation else "invalid"
        return render(
            request, "accounts/invitation_unusable.html", {"status": status}, status=410 if invitation else 404
        )
    form = PasswordSetForm(request.POST if request.method == "POST" else None)
    sso_only = sso_only_applies(None)
    sso = sso_config_active()
    if sso_only and request.method == "POST":
        form.is_valid()
        form.add_error(None, sso_only_message())
    elif request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(
                token=token, full_name=form.cleaned_data["full_name"], password=form.cleaned_data["password"]
            )
        except AccountError as exc:
            form_error_add(form, exc)
        else:
            auth_login(request, user, backend=PASSWORD_BACKEND)
            messages.success(request, f"Welcome to {workspace_current().name}.")
            return redirect("console:home")
    return render(
        request,
        "accounts/invitation_accept.html",
        {"form": form, "invitation": invitation, "sso_only": sso_only, "sso_start": sso_start_url(sso) if sso else ""},
        status=400 if form.errors else 200,
    )


def handoff(request: HttpRequest, token: str) -> HttpResponse:
    """Sign-up lands here on the new workspace's host: a one-time token becomes a session."""
    user = login_handoff_redeem(token=token)
    if user is None:
        messages.error(request, "That sign-in link has expired. Log in with your e-mail and password.")
        return redirect("accounts:login")
    auth_login(request, user, backend=PASSWORD_BACKEND)
    messages.success(request, "Your workspace is ready. Invite your team from Members.")
    plan = request.GET.get("plan", "")
    if settings.TESSERA_BILLING_ENABLED and plan in PAID_PLANS:  # chosen at sign-up: its trial is one click away
        return redirect(f"/billing/?choose={plan}")
    return redirect("console:home")


@permission_required("members.view")
def members(request: HttpRequest) -> HttpResponse:
    can_manage = has_permission(request.user, "members.manage")
    invite_form = InviteForm(request.POST if request.method == "POST" else None) if can_manage else None
    issued = None
    status = 200
    if request.method == "POST":
        if not can_manage:
            return HttpResponse("Forbidden", status=403)
        if invite_form.is_valid():
            try:
                issued = invitation_create(
                    actor=request.user,
                    email=invite_form.cleaned_data["email"],
                    role=invite_form.cleaned_data["role"],
                    base_url=workspace_base_url(request),
                )
            except AccountError as exc:
                form_error_add(invite_form, exc)
                status = 400
            else:
                invite_form = InviteForm()
        else:
            status = 400
    context = {
        "members": member_list(),
        "invitations": invitation_list_pending() if can_manage else [],
        "invite_form": invite_form,
        "issued": issued,
        "issued_link": workspace_base_url(request) + issued.path() if issued else "",
        "roles": Role.choices,
        "can_manage": can_manage,
    }
    return render(request, "accounts/members.html", context, status=status)


@require_POST
@permission_required("members.manage")
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(User, pk=pk, is_active=True)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    else:
        try:
            member_role_change(actor=request.user, member=member, role=form.cleaned_data["role"])
            messages.success(request, f"{member.display_name} is now {Role(form.cleaned_data['role']).label}.")
        except AccountError as exc:
            messages.error(request, exc.message)
    return redirect("accounts:members")


@require_POST
@permission_required("members.manage")
def member_remove_view(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(User, pk=pk, is_active=True)
    try:
        member_remove(actor=request.user, member=member)
        messages.success(request, f"{member.display_name} was removed from the workspace.")
    except AccountError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:members")


@require_POST
@permission_required("members.manage")
def invitation_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=pk)
    try:
        invitation_revoke(actor=request.user, invitation=invitation)
        messages.success(request, f"The invitation for {invitation.email} was revoked.")
    except AccountError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:members")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The public site's sign-up: a new workspace, then its Admin lands logged in on its own host."""
    prefill = {name: request.GET[name][:200] for name in SignupForm.PREFILLED if name in request.GET}
    form = SignupForm(request.POST if request.method == "POST" else None, initial=prefill)
    throttled = False
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        cell = cell_for_region(data["region"]) if data.get("region") else None
        if cell is not None and cell.name != settings.TESSERA_CELL:
            # Another cell creates (and keeps) workspaces of that region: continue on its site, with
            # what was entered so far (the password is asked again: it never travels in a URL).
            kept = {name: data[name] for name in SignupForm.PREFILLED if data.get(name)}
            return HttpResponseRedirect(f"{cell.public_url}/?{urlencode(kept)}")
        try:
            throttle_check(
                scope="public",
                what="signup",
                keys={"ip": client_ip(request), "site": "all"},
                message="Too many sign-ups right now.",
            )
            result = workspace_signup(
                name=data["name"],
                slug=data["slug"],
                admin_email=data["email"],
                admin_password=data["password"],
                admin_name=data["full_name"],
            )
        except ServiceError as exc:
            form_error_add(form, exc)
            throttled = exc.status == 429
        else:
            with workspace_context(result.tenant):
                token = login_handoff_create(user=result.admin)
            url = f"{result.tenant.base_url()}/accounts/handoff/{token}/"
            if data.get("plan") and data["plan"] != Plan.FREE:
                url += f"?plan={data['plan']}"  # the billing page offers its Checkout next
            return HttpResponseRedirect(url)
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "base_domain": settings.TESSERA_BASE_DOMAIN, "prefilled": bool(prefill)},
        status=429 if throttled else 400 if form.errors else 200,
    )


@permission_required("settings.manage")
def workspace_settings(request: HttpRequest) -> HttpResponse:
    tenant = workspace_current()
    form = WorkspaceSettingsForm(
        request.POST if request.method == "POST" else None, initial={"name": tenant.name, "timezone": tenant.timezone}
    )
    if request.method == "POST" and form.is_valid():
        workspace_settings_update(
            actor=request.user, tenant=tenant, name=form.cleaned_data["name"], timezone=form.cleaned_data["timezone"]
        )
        messages.success(request, "Settings saved.")
        return redirect("accounts:workspace_settings")
    return render(
        request,
        "accounts/workspace_settings.html",
        {"form": form, "tenant": tenant},
        status=400 if form.errors else 200,
    )
