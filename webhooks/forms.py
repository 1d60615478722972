"""Console forms of webhooks. The rules of an endpoint (URL, custom headers, rate) are the services'
(webhooks.services), so the console and the API refuse the same input with the same words."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError

from webhooks import catalogue
from webhooks.errors import WebhookError
from webhooks.services import RATE_LIMIT_MAX, URL_MAX, endpoint_headers_check, endpoint_url_check

ROTATION_OVERLAPS = {
    "0": ("None: the old secret stops now", timedelta(0)),
    "3600": ("1 hour", timedelta(hours=1)),
    "86400": ("24 hours", timedelta(hours=24)),
    "604800": ("7 days", timedelta(days=7)),
}


def _service_check(check, value):
    """Run one of the services' endpoint rules on a form field's value; its refusal is the field's error."""
    try:
        return check(value)
    except WebhookError as exc:
        raise ValidationError(exc.message) from None


def event_types_check(values) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValidationError("Event types must be a list of event type names.")
    unknown = [v for v in values if not catalogue.event_type_filter_valid(v)]
    if unknown:
        raise ValidationError(f"Unknown event type “{unknown[0][:100]}”. See the event catalogue.")
    return list(dict.fromkeys(values))


def catalogue_choices() -> list[tuple[str, str]]:
    """Every event type of the catalogue, and a `group.*` wildcard per group."""
    groups = [(f"{g}.*", f"Every {g.replace('_', ' ')} event") for g in catalogue.GROUPS]
    return groups + [(e.name, e.description) for e in catalogue.CATALOGUE.values()]


def catalogue_choices_values() -> list[str]:
    return [value for value, _ in catalogue_choices()]


def _headers_parse(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValidationError(f"Line {number}: write each header as “Name: value”.")
        name = name.strip()
        if name in headers:
            raise ValidationError(f"“{name}” is given twice.")
        headers[name] = value.strip()
    return headers


def headers_text(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=URL_MAX,
        error_messages={"required": "Enter the URL that should receive the webhooks."},
        help_text="Where Tessera POSTs each event. Your own server, or this workspace's inspector URL for testing.",
        widget=forms.URLInput(attrs={"autocomplete": "off", "placeholder": "https://example.com/webhooks/tessera"}),
    )
    description = forms.CharField(label="Description", max_length=500, required=False)
    mode = forms.ChoiceField(
        label="Mode",
        choices=[("test", "Test — receives sandbox events only"), ("live", "Live — receives events of your real data")],
        initial="test",
        widget=forms.RadioSelect,
    )
    event_types = forms.MultipleChoiceField(
        label="Events to send",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to receive every event type.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    rate_limit_per_second = forms.IntegerField(
        label="Rate limit (deliveries per second)",
        required=False,
        min_value=1,
        max_value=RATE_LIMIT_MAX,
        help_text="Optional: at most this many deliveries per second to this endpoint.",
    )
    headers = forms.CharField(
        label="Custom headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "X-Api-Token: abc123"}),
        help_text="One “Name: value” per line, sent with every delivery. "
        "Not allowed: webhook-* and connection headers.",
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_types"].choices = catalogue_choices()
        if editing:
            del self.fields["mode"]  # an endpoint stays in the data set it was made for
        else:
            del self.fields["enabled"]  # a new endpoint starts enabled

    def clean_url(self) -> str:
        return _service_check(endpoint_url_check, self.cleaned_data.get("url", ""))

    def clean_headers(self) -> dict[str, str]:
        text = self.cleaned_data.get("headers", "")
        if "\x00" in text:
            raise ValidationError("Headers cannot contain NUL characters.")
        return _service_check(endpoint_headers_check, _headers_parse(text))

    def clean_description(self) -> str:
        text = self.cleaned_data.get("description", "")
        if "\x00" in text:
            raise ValidationError("The description cannot contain NUL characters.")
        return text

    @classmethod
    def initial_for(cls, endpoint) -> dict:
        return {
            "url": endpoint.url,
            "description": endpoint.description,
            "event_types": list(endpoint.event_types),
            "enabled": endpoint.enabled,
            "rate_limit_per_second": endpoint.rate_limit_per_second,
            "headers": headers_text(endpoint.headers),
        }


class SecretRotateForm(forms.Form):
    overlap = forms.ChoiceField(
        label="Keep the old secret valid for",
        choices=[(value, label) for value, (label, _) in ROTATION_OVERLAPS.items()],
        initial="86400",
        widget=forms.RadioSelect,
        help_text="Until then every delivery is signed with both secrets, so receivers can switch at their pace.",
    )

    def overlap_delta(self) -> timedelta:
        return ROTATION_OVERLAPS[self.cleaned_data["overlap"]][1]


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False)
    event_type = forms.ChoiceField(label="Event", required=False)
    endpoint = forms.ChoiceField(label="Endpoint", required=False)

    def __init__(self, *args, endpoints=(), **kwargs):
        super().__init__(*args, **kwargs)
        from webhooks.models import Delivery

        self.fields["status"].choices = [("", "Any status"), *Delivery.Status.choices]
        self.fields["event_type"].choices = [("", "Any event"), *catalogue_choices()]
        self.fields["endpoint"].choices = [("", "Any endpoint")] + [(e.pk, e.url) for e in endpoints]


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
    until = forms.DateTimeField(
        label="Until (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text="Leave empty for “until now”.",
    )

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error("until", "Choose a moment after “From”.")
        return data


class RetentionForm(forms.Form):
    retention_days = forms.IntegerField(
        label="Keep payloads for (days)",
        min_value=1,
        max_value=90,
        help_text="1–90 days. Older event payloads and delivery bodies are deleted by a daily clean-up.",
    )


class InspectorBinForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, required=False)
