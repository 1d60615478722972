from django import forms

from privacy.models import SubjectRequest


class SubjectRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=SubjectRequest.Kind.choices)
    regime = forms.ChoiceField(choices=SubjectRequest.Regime.choices, label="Law")
    subject = forms.CharField(
        max_length=320, label="Subject", help_text="The e-mail, phone or customer id the subject is known by."
    )
    requested_by = forms.CharField(max_length=300, label="Who asked", help_text="e.g. the subject, by e-mail")
    verification = forms.CharField(
        max_length=500, label="How verified", help_text="e.g. replied from the address on file"
    )
    received_on = forms.DateField(
        required=False, label="Received on", widget=forms.DateInput(attrs={"type": "date"}), help_text="Default: today"
    )


class ExtendForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Why more time is needed")


class LiftRestrictionForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Why the restriction is lifted (tell the subject first)")


class RectifyForm(forms.Form):
    corrections = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Corrected values",
        help_text="One per line: field = value (e.g. phone = +44 20 7946 0000).",
    )

    def clean_corrections(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.cleaned_data["corrections"].splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"“{line.strip()[:60]}” is not field = value.")
            out[key.strip()] = value.strip()
        if not out:
            raise forms.ValidationError("Give at least one corrected value.")
        return out


class CloseForm(forms.Form):
    status = forms.ChoiceField(choices=[("completed", "Completed"), ("rejected", "Rejected")])
    note = forms.CharField(max_length=1000, required=False, label="Note (required to reject)")


class ReportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class RetentionPolicyForm(forms.Form):
    collection = forms.ChoiceField()
    days = forms.IntegerField(min_value=1, max_value=36500, label="Keep for (days since the last change)")
    action = forms.ChoiceField(choices=[("erase", "Erase the records"), ("anonymise", "Anonymise (personal fields)")])
    status_field = forms.CharField(required=False, max_length=63, label="Only in status: field (optional)")
    status_value = forms.CharField(required=False, max_length=200, label="Status value")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, collections=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collection"].choices = [(str(c.pk), c.name) for c in collections]


class LogRetentionPolicyForm(forms.Form):
    prefix = "log"
    log = forms.ChoiceField(label="Log")
    days = forms.IntegerField(min_value=1, max_value=36500, label="Keep entries for (days)")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, logs: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["log"].choices = list(logs.items())
