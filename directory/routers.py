"""The directory's models live in the `directory` database, and only they do."""

from __future__ import annotations

DIRECTORY_DB = "directory"
APP_LABEL = "directory"


class DirectoryRouter:
    """First in DATABASE_ROUTERS: decides for the directory's models and database, and leaves every
    other model to the next router (django-tenants')."""

    def db_for_read(self, model, **hints):
        return DIRECTORY_DB if model._meta.app_label == APP_LABEL else None

    def db_for_write(self, model, **hints):
        return DIRECTORY_DB if model._meta.app_label == APP_LABEL else None

    def allow_relation(self, obj1, obj2, **hints):
        labels = {obj1._meta.app_label, obj2._meta.app_label}
        if APP_LABEL in labels:
            return labels == {APP_LABEL}
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == DIRECTORY_DB:
            return app_label == APP_LABEL
        if app_label == APP_LABEL:
            return False
        return None
