"""Console forms about people. Service errors (AccountError) are turned into form errors by views."""

import zoneinfo

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.throttles import throttle_check, throttle_spend
from billing.plans import ORDER, Plan
from core.errors import Throttled
from rbac.roles import Role
from tenants.runtime import workspace_current_or_none
from tenants.services import ProvisioningError, tenant_slug_check
from tenants.topology import regions

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
    retry_after: int | None = None

    def clean(self):
        """Beside the lockout per e-mail + address (axes), a budget per e-mail from every address
        together: guesses spread over many addresses are limited too (accounts.throttles)."""
        email = (self.cleaned_data.get("username") or "").lower()
        scope = f"w{getattr(workspace_current_or_none(), 'pk', 'public')}"
        if email:
            try:
                throttle_check(
                    scope=scope,
                    what="login",
                    keys={"email": email},
                    cost=0,
                    message="Too many failed log-ins for this e-mail.",
                )
            except Throttled as exc:
                self.retry_after = exc.retry_after
                raise forms.ValidationError(exc.message, code="throttled") from None
        try:
            return super().clean()
        except forms.ValidationError as exc:
            if email and getattr(exc, "code", None) == "invalid_login":
                throttle_spend(scope=scope, what="login", keys={"email": email})
            raise


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

    # Where the workspace's data is stored and processed (SaaS cells); shown when there is a choice.
    region = forms.ChoiceField(label="Data region", required=False, help_text="Where your data is stored.")

    # What a sign-up started at another cell's site brings along (never the password).
    PREFILLED = ("name", "slug", "full_name", "email", "plan", "region")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = regions()
        if len(choices) > 1:
            self.fields["region"].choices = choices
            self.fields["region"].initial = choices[0][0]
        else:
            del self.fields["region"]

    def clean_slug(self) -> str:
        # Checked with the other fields, so one submission shows every error at once.
        try:
            return tenant_slug_check(self.cleaned_data["slug"])
        except ProvisioningError as exc:
            raise forms.ValidationError(exc.message, code="slug") from exc


class WorkspaceSettingsForm(forms.Form):
    name = forms.CharField(label="Workspace name", max_length=120)
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES])


class SSOConfigForm(forms.Form):
    """The workspace's identity provider, as the Admin enters it (console: Single sign-on)."""

    enabled = forms.BooleanField(label="Single sign-on is on", required=False)
    protocol = forms.ChoiceField(label="Protocol", choices=[("oidc", "OpenID Connect"), ("saml", "SAML 2.0")])
    display_name = forms.CharField(
        label="Identity provider's name",
        max_length=80,
        required=False,
        help_text="The log-in page says 'Sign in with …'.",
    )
    issuer = forms.URLField(label="Issuer URL", max_length=500, required=False, assume_scheme="https")
    client_id = forms.CharField(label="Client ID", max_length=255, required=False)
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Stored encrypted. Leave empty to keep the current one.",
    )
    scopes = forms.CharField(label="Scopes", max_length=255, initial="openid email profile")
    claim_email = forms.CharField(label="E-mail claim", max_length=64, initial="email")
    claim_name = forms.CharField(label="Name claim", max_length=64, initial="name")
    claim_groups = forms.CharField(label="Groups claim", max_length=64, required=False, initial="groups")
    saml_metadata_url = forms.URLField(
        label="SAML IdP metadata URL", max_length=500, required=False, assume_scheme="https"
    )
    saml_metadata_xml = forms.CharField(
        label="SAML IdP metadata (XML)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Paste it, upload the file below, or give its URL above (read again at every save).",
    )
    saml_metadata_file = forms.FileField(label="SAML IdP metadata file", required=False)
    domains = forms.CharField(
        label="E-mail domains",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line. Existing members with these domains are linked when the IdP verified the e-mail; "
        "typing such an e-mail on the log-in page goes to the IdP.",
    )
    default_role = forms.ChoiceField(label="Role of new people", choices=Role.choices, initial=Role.VIEWER)
    group_roles = forms.CharField(
        label="Groups → roles",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: group = role (admin, manager, analyst, viewer). Applied at every log-in.",
    )
    sso_only = forms.BooleanField(label="Require single sign-on (SSO-only mode)", required=False)
    break_glass_admins = forms.MultipleChoiceField(
        label="Break-glass Admins (may still use a password)", required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, admins=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["break_glass_admins"].choices = [(str(u.pk), u.email) for u in admins]

    def clean_saml_metadata_file(self) -> str:
        upload = self.cleaned_data.get("saml_metadata_file")
        if not upload:
            return ""
        if upload.size > 1_000_000:
            raise forms.ValidationError("The metadata file is over 1 MB.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("The metadata file is not UTF-8 XML.") from exc

    def clean_group_roles(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for n, line in enumerate(self.cleaned_data.get("group_roles", "").splitlines(), start=1):
            if not line.strip():
                continue
            group, sep, role = line.rpartition("=")
            role = role.strip().lower()
            if not sep or not group.strip() or role not in Role.values:
                raise forms.ValidationError(f"Line {n}: write 'group = role' with a role of {', '.join(Role.values)}.")
            mapping[group.strip()] = role
        return mapping
