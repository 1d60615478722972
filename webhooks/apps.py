from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks (endpoints, outbox, deliveries)"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from audit.models import AuditEvent
        from records import hooks
        from webhooks.outbox import audit_outbox_write, record_outbox_write

        if record_outbox_write not in hooks.outbox_writers:
            hooks.outbox_writers.append(record_outbox_write)
        post_save.connect(audit_outbox_write, sender=AuditEvent, dispatch_uid="webhooks.audit_outbox_write")
