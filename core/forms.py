"""ServiceError → console form errors: the one mapping every console view uses."""

from __future__ import annotations

from django import forms

from core.errors import ServiceError


def form_error_add(form: forms.BaseForm, exc: ServiceError) -> None:
    """Show the service's refusal on the form: on the field it names when the form has that field,
    otherwise at the top of the form."""
    form.add_error(exc.param if exc.param in form.fields else None, exc.message)
