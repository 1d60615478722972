"""What the REST toolkit keeps in each workspace: the answers to POSTs made with an Idempotency-Key."""

from django.db import models


class IdempotencyRecord(models.Model):
    """A POST's Idempotency-Key and the response it got, kept 24 hours. `caller` is the actor the key
    belongs to (`api_key:<id>` or `user:<id>`): the same key from two callers is two requests."""

    caller = models.CharField(max_length=80)
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # null while in flight
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "idempotency_key"], name="api_idem_caller_unique")]
        indexes = [models.Index(fields=["created_at"], name="api_idem_created")]

    def __str__(self) -> str:
        return self.idempotency_key
