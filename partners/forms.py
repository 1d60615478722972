"""Console forms about API keys. Service errors (ApiKeyError) are turned into form errors by views."""

from datetime import UTC, datetime, time, timedelta

from django import forms

from partners.models import SCOPES, ApiKey

ROTATION_OVERLAPS = {
    "0": ("None: the old key stops now", timedelta(0)),
    "3600": ("1 hour", timedelta(hours=1)),
    "86400": ("24 hours", timedelta(hours=24)),
    "604800": ("7 days", timedelta(days=7)),
}


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What will use it, e.g. “ERP sync”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    mode = forms.ChoiceField(
        label="Mode",
        choices=[
            (ApiKey.Mode.TEST, "Test — works on the sandbox data set only"),
            (ApiKey.Mode.LIVE, "Live — works on your real data"),
        ],
        initial=ApiKey.Mode.TEST,
        widget=forms.RadioSelect,
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=list(SCOPES.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    expires_on = forms.DateField(
        label="Expires on",
        required=False,
        help_text="The key stops working at 00:00 UTC that day. Leave empty for a key that does not expire.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day is not None and day <= datetime.now(UTC).date():
            raise forms.ValidationError("Choose a day after today.")
        return day

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class ApiKeyRotateForm(forms.Form):
    overlap = forms.ChoiceField(
        label="Keep the old key working for",
        choices=[(value, label) for value, (label, _) in ROTATION_OVERLAPS.items()],
        initial="86400",
        widget=forms.RadioSelect,
    )

    def overlap_delta(self) -> timedelta:
        return ROTATION_OVERLAPS[self.cleaned_data["overlap"]][1]
