from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy (personal-data map, data-subject requests, erasure, retention, reports)"
