import zoneinfo

from django import forms

TIMEZONES = sorted(zoneinfo.available_timezones())


class SignupForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=120)
    slug = forms.CharField(label="Workspace address", max_length=40, help_text="Lowercase letters, digits and hyphens.")
    full_name = forms.CharField(label="Your name", max_length=150, required=False)
    email = forms.EmailField(label="Work e-mail")
    password = forms.CharField(
        label="Password", strip=False, min_length=10, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_slug(self) -> str:
        # Checked with the other fields, so one submission shows every error at once.
        from tenants.services import ProvisioningError, tenant_slug_check

        try:
            return tenant_slug_check(self.cleaned_data["slug"])
        except ProvisioningError as exc:
            raise forms.ValidationError(exc.message, code="slug") from exc


class WorkspaceSettingsForm(forms.Form):
    name = forms.CharField(label="Workspace name", max_length=120)
    timezone = forms.ChoiceField(choices=[(tz, tz) for tz in TIMEZONES])
