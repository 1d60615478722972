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


class CloseForm(forms.Form):
    status = forms.ChoiceField(choices=[("completed", "Completed"), ("rejected", "Rejected")])
    note = forms.CharField(max_length=1000, required=False, label="Note (required to reject)")
