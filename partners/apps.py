from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = "Partners (API keys, REST API, usage)"

    def ready(self):
        from partners import keycache  # noqa: F401 (its receivers bump the key generation)
