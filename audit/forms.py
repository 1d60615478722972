from django import forms

from audit.registry import ACTIONS


def _action_choices():
    resources = sorted({a.split(".")[0] for a in ACTIONS})
    return [("", "All actions")] + [(r, f"{r}.*") for r in resources] + [(a, a) for a in ACTIONS]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        required=False, label="Actor", widget=forms.TextInput(attrs={"placeholder": "e-mail or name"})
    )
    action = forms.ChoiceField(required=False, choices=_action_choices)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data
