"""The operator's cells page on the public site (`/operator/cells/`): platform operators only — users of
the public schema with the Admin role, signed in on the public site. Workspace users are not operators:
their accounts and sessions live in their workspace's schema, never in the public one."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cells.selectors import cells_overview, moves_finished, moves_under_way
from rbac.roles import Role


def cells_operator_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), "/operator/login/")
    if getattr(request.user, "role", None) != Role.ADMIN:
        raise PermissionDenied("Platform operators only.")
    context = {"cells": cells_overview(), "moves_under_way": moves_under_way(), "moves_finished": moves_finished()}
    return render(request, "cells/operator.html", context)
