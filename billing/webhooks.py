"""The Stripe webhook receiver, on the public host (`/stripe/webhooks`): verify the signature with the
`stripe` SDK (several endpoint secrets during a rotation, 300 s tolerance), keep the event once by
its id, answer 200 at once and let a Celery task act on it (billing.tasks). A duplicate delivery is
answered 200 and does nothing; a forged, stale or unsigned one 400; never a 500."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_api
from billing.services import event_store
from billing.tasks import stripe_event_process_task

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Stripe's events are far smaller


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": "payload_too_large"}, status=413)
    try:
        event = stripe_api.event_verify(request.body, request.headers.get("Stripe-Signature", ""))
    except stripe_api.SignatureVerificationError:
        return JsonResponse(
            {"error": "invalid_signature", "message": "Signature missing, forged or too old."}, status=400
        )
    except ValueError:
        return JsonResponse({"error": "invalid_payload", "message": "The body is not a Stripe event."}, status=400)
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in ("id", "type")):
        return JsonResponse({"error": "invalid_payload", "message": "The event lacks its id or type."}, status=400)
    stored = event_store(event)
    if stored is None:
        return JsonResponse({"received": True, "duplicate": True})
    transaction.on_commit(lambda: _enqueue(stored.id))
    return JsonResponse({"received": True})


def _enqueue(event_id: str) -> None:
    """Hand the event to a worker; if the broker is away, the sweep (billing.tasks) finds it later."""
    try:
        stripe_event_process_task.delay(event_id)
    except Exception:
        logger.exception("Stripe event %s not queued; the sweep will process it", event_id)
