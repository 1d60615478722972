"""Console form: start pairing a phone (for which member, with which role)."""

from __future__ import annotations

from django import forms

from accounts.models import User
from rbac.roles import Role
from sync.services import pairing_for_allowed, role_within


class PairingStartForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.none(), label="Member", empty_label=None)
    role = forms.ChoiceField(
        choices=[], label="Device role", help_text="What the phone may do; never more than the member's own role."
    )

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        members = User.objects.filter(is_active=True).order_by("email")
        allowed = [u.pk for u in members if pairing_for_allowed(actor, u)]
        self.fields["user"].queryset = members.filter(pk__in=allowed)
        self.fields["user"].initial = actor.pk
        self.fields["user"].label_from_instance = lambda u: f"{u.email} ({u.get_role_display()})"
        self.fields["role"].choices = [
            (value, label) for value, label in Role.choices if role_within(value, actor.role)
        ]
        self.fields["role"].initial = Role.MANAGER if role_within(Role.MANAGER, actor.role) else Role.VIEWER
