"""Errors of the webhook services: ServiceErrors, mapped once to problem+json (API) and form errors
(console)."""

from __future__ import annotations

from core.errors import Conflict, Forbidden, ServiceError


class WebhookError(ServiceError):
    """A webhook request that cannot be carried out; `param` names the input at fault."""


class WebhookForbidden(WebhookError, Forbidden):
    status, code = 403, "forbidden"

    def __init__(self, message: str = "Not allowed: this needs the webhooks.manage permission."):
        super().__init__(message)


class EndpointDisabled(WebhookError, Conflict):
    status, code = 409, "endpoint_disabled"

    def __init__(self, message: str = "Enable the endpoint first."):
        super().__init__(message)
