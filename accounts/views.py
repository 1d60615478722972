"""Pages about people and their workspace: sign-up (public site), log-in, first-run set-up, invitations,
members and roles, and the workspace's settings."""

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
from audit.services import audit_event_record
from billing.plans import PAID_PLANS, Plan
from core.actors import Actor
from core.errors import ServiceError
from core.forms import form_error_add
from rbac.permissions import has_permission, permission_required
from rbac.roles import Role
from tenants.runtime import workspace_context, workspace_current

PASSWORD_BACKEND = "accounts.backends.EmailPasswordBackend"


class FormErrorStatusMixin:
    """Django's auth views re-render invalid forms with 200; the console answers bad input with 400."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class LoginView(FormErrorStatusMixin, auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class PasswordResetView(FormErrorStatusMixin, auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        email = form.cleaned_data["email"]
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
    if request.method == "POST" and form.is_valid():
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
        {"form": form, "invitation": invitation},
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
                    base_url=request.build_absolute_uri("/"),
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
        "issued_link": request.build_absolute_uri(issued.path()) if issued else "",
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


def _port(request: HttpRequest) -> str:
    host = request.get_host()
    return ":" + host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The public site's sign-up: a new workspace, then its Admin lands logged in on its own host."""
    form = SignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = workspace_signup(
                name=data["name"],
                slug=data["slug"],
                admin_email=data["email"],
                admin_password=data["password"],
                admin_name=data["full_name"],
            )
        except ServiceError as exc:
            form_error_add(form, exc)
        else:
            with workspace_context(result.tenant):
                token = login_handoff_create(user=result.admin)
            scheme = "https" if request.is_secure() else "http"
            url = f"{scheme}://{result.tenant.slug}.{settings.TESSERA_BASE_DOMAIN}{_port(request)}/accounts/handoff/{token}/"
            if data.get("plan") and data["plan"] != Plan.FREE:
                url += f"?plan={data['plan']}"  # the billing page offers its Checkout next
            return HttpResponseRedirect(url)
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "base_domain": settings.TESSERA_BASE_DOMAIN},
        status=400 if form.errors else 200,
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
