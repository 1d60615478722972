from django.apps import AppConfig
from django.db.backends.signals import connection_created

from analytics.expressions import sqlite_functions_register


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics (queries, dashboards, exports, reports)"

    def ready(self) -> None:
        # SQLite has no time zones or percentile_cont: analytics' SQL calls these two on every connection.
        connection_created.connect(sqlite_functions_register, dispatch_uid="analytics.sqlite_functions")
