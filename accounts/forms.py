"""Console forms about people. Service errors (AccountError) are turned into form errors by views."""

import zoneinfo

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from billing.plans import ORDER, Plan
from rbac.roles import Role
from tenants.services import ProvisioningError, tenant_slug_check

TIMEZONES = sorted(zoneinfo.available_timezones())


class LoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="E-mail",
        max_length=254,  # as User.email: longer input would overflow the failed-log-in records
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    error_messages = {
        "invalid_login": "That e-mail and password do not match an account in this workspace.",
        "inactive": "This account has been deactivated.",
    }


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class PasswordSetForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=150, required=False)
    password = forms.CharField(
        label="Password", strip=False, min_length=10, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password_confirm = forms.CharField(
        label="Confirm password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return data


class SetupForm(PasswordSetForm):
    workspace_name = forms.CharField(label="Business name", max_length=120)
    email = forms.EmailField(label="E-mail", max_length=254)

    field_order = ["workspace_name", "full_name", "email", "password", "password_confirm"]


class SignupForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=120)
    slug = forms.CharField(label="Workspace address", max_length=40, help_text="Lowercase letters, digits and hyphens.")
    full_name = forms.CharField(label="Your name", max_length=150, required=False)
    email = forms.EmailField(label="Work e-mail")
    password = forms.CharField(
        label="Password", strip=False, min_length=10, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    # Every workspace starts on Free; a paid plan chosen here opens its Checkout (with the trial) next.
    plan = forms.ChoiceField(
        label="Plan",
        choices=[(p.value, p.label if p == Plan.FREE else f"{p.label} (14-day trial)") for p in ORDER],
        initial=Plan.FREE,
        required=False,
    )

    def clean_slug(self) -> str:
        # Checked with the other fields, so one submission shows every error at once.
        try:
            return tenant_slug_check(self.cleaned_data["slug"])
        except ProvisioningError as exc:
            raise forms.ValidationError(exc.message, code="slug") from exc


class WorkspaceSettingsForm(forms.Form):
    name = forms.CharField(label="Workspace name", max_length=120)
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES])
