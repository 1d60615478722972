from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Phone sync (devices, pairing, websocket)"

    def ready(self):
        from records import hooks
        from sync.fanout import change_publish
        from sync.log_redaction import token_redaction_install

        token_redaction_install()
        if change_publish not in hooks.commit_publishers:
            hooks.commit_publishers.append(change_publish)
