"""Indexes for the console's records table (records.query): keyset pages over live rows in id order and
by last update (both runtimes), and on PostgreSQL a trigram index for the table's search.

The search index matches the expression records.selectors.record_search filters on,
`UPPER(data::text) LIKE UPPER('%…%')`; tests/records/test_console.py checks the planner can use it.
Without pg_trgm (no privilege to create it) the migration skips it: search still works, by scanning.
"""

from django.db import migrations, models, transaction

TRIGRAM_INDEX = (
    "CREATE INDEX IF NOT EXISTS records_rec_live_text_trgm ON records_record "
    "USING gin (upper((data)::text) public.gin_trgm_ops) WHERE (livemode AND deleted_at IS NULL)"
)


def trigram_index_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        except Exception:  # no privilege, or the extension is not installed on the server
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
            if cursor.fetchone() is None:
                return
        cursor.execute(TRIGRAM_INDEX)


def trigram_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS records_rec_live_text_trgm")


class Migration(migrations.Migration):

    dependencies = [
        ('records', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='record',
            index=models.Index(condition=models.Q(('deleted_at', None), ('livemode', True)), fields=['collection', 'id'], name='records_rec_live_id'),
        ),
        migrations.AddIndex(
            model_name='record',
            index=models.Index(condition=models.Q(('deleted_at', None), ('livemode', True)), fields=['collection', 'updated_at', 'id'], name='records_rec_live_updated'),
        ),
        migrations.RunPython(trigram_index_create, trigram_index_drop, elidable=False),
    ]
