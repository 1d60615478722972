from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Phone sync (devices, pairing, websocket)"

    def ready(self):
        from sync.log_redaction import token_redaction_install

        token_redaction_install()
